//! The Rust SDK's own container-credentials client (`aws-config` `EcsCredentialsProvider`)
//! fetches from the agent through `AWS_CONTAINER_CREDENTIALS_FULL_URI` and the token variable,
//! and the credentials it gets are the mapped role's (checked with STS GetCallerIdentity on moto).
//!
//! One test in this binary: it sets process environment variables.

mod support;

use aws_credential_types::provider::ProvideCredentials;
use support::TestAgent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_config_ecs_provider_gets_the_mapped_role() {
    let agent = TestAgent::builder()
        .config("[audit]\ndurability = \"sync\"\n[fallback]\nmode = \"deny\"")
        .mappings(|world| {
            let (analytics, engineering) = (world.role("analytics"), world.role("engineering"));
            format!(
                "[[mapping]]\nrole = \"{}\"\nprefixes = [\"s3://{}/\"]\n[[mapping]]\nrole = \"{}\"\nusers = [\"root\"]\n",
                analytics.arn, analytics.bucket, engineering.arn
            )
        })
        .start()
        .await;
    let analytics = agent.world().role("analytics");
    let moto = agent.moto.as_ref().unwrap();
    let base = format!("http://{}/v1/credentials", agent.addr);

    let mut arns = Vec::new();
    for uri in [format!("{base}?location=s3://{}/part-0000", analytics.bucket), base.clone()] {
        // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
        std::env::set_var("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri);
        std::env::set_var("AWS_CONTAINER_AUTHORIZATION_TOKEN", &agent.token);
        let provider = aws_config::ecs::EcsCredentialsProvider::builder().build();
        let creds = provider.provide_credentials().await.expect("the SDK accepts the agent's answer");
        assert!(creds.expiry().is_some());
        let sts = support::sts_client(&moto.endpoint(), creds, false);
        let me = sts.get_caller_identity().send().await.unwrap();
        arns.push(me.arn().unwrap().to_owned());
    }
    assert!(arns[0].contains(":assumed-role/analytics/"), "{arns:?}");
    assert!(arns[1].contains(":assumed-role/engineering/"), "{arns:?}");

    // A wrong token is an error the SDK reports, not credentials.
    std::env::set_var("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong");
    let provider = aws_config::ecs::EcsCredentialsProvider::builder().build();
    assert!(provider.provide_credentials().await.is_err());
    agent.stop().await;
}
