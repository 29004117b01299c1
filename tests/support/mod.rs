//! Shared code for the integration tests (`mod support;` in a `tests/*.rs` file).
//!
//! - [`moto`]: a moto server (STS, IAM, S3 emulator) as a child process, and the AWS world built in it:
//!   the agent's source user, roles with trust policies and their own buckets, IAM enforcement.
//! - [`agent`]: an agent inside the test process ([`TestAgent::builder`]): config overrides, moto or the
//!   fault proxy as its STS, rules against the moto world, a manual clock.
//! - [`fault_proxy`]: an HTTP proxy in front of moto that counts AssumeRole calls and injects delay,
//!   throttling, 5xx, AccessDenied and refusal on demand.
//!
//! The Python side (moto itself, boto3) lives in the virtualenv that `scripts/setup-test-env.sh` builds at
//! `$EMRFS_TEST_VENV` (default `~/.cache/emrfs-role-agent/venv`).
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod fault_proxy;
pub mod moto;

pub use agent::{Answer, StsPeer, TestAgent};
pub use fault_proxy::{Fault, FaultControl, FaultProxy};
pub use moto::{AwsSpec, AwsWorld, Moto, MotoOptions, Principal, RoleInfo, RoleSpec};

use std::net::{SocketAddr, TcpListener};

/// A port on 127.0.0.1 that nothing listens on right now (bind to port 0, read it, let it go).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// `127.0.0.1:<port>`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The agent binary built by cargo for these tests (`$EMRFS_ROLE_AGENT_BIN` when set).
pub fn agent_bin() -> std::path::PathBuf {
    match std::env::var_os("EMRFS_ROLE_AGENT_BIN") {
        Some(path) => path.into(),
        None => env!("CARGO_BIN_EXE_emrfs-role-agent").into(),
    }
}

/// An STS client for `endpoint` (moto or a [`FaultProxy`]) signing with `credentials`, region
/// us-east-1. `retries = false` makes one attempt per call, so a fault shows as the call's error.
pub fn sts_client(
    endpoint: &str,
    credentials: aws_credential_types::Credentials,
    retries: bool,
) -> aws_sdk_sts::Client {
    use aws_sdk_sts::config::{retry::RetryConfig, BehaviorVersion, Region};
    let retry = if retries { RetryConfig::standard() } else { RetryConfig::disabled() };
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .retry_config(retry)
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

/// The location of a rule-table case (tests/fixtures/rules.json), with `append.text` repeated
/// `append.times` times when present.
pub fn case_location(case: &serde_json::Value) -> Option<String> {
    let mut loc = case["location"].as_str()?.to_owned();
    if let Some(a) = case.get("append") {
        let times = a["times"].as_u64().expect("append.times") as usize;
        loc.push_str(&a["text"].as_str().expect("append.text").repeat(times));
    }
    Some(loc)
}

/// A rule that maps the moto world's analytics bucket to its analytics role (named "analytics").
pub fn analytics_rule(world: &AwsWorld) -> String {
    let analytics = world.role("analytics");
    format!(
        "[[mapping]]\nname = \"analytics\"\nrole = \"{}\"\nprefixes = [\"s3://{}/\"]\n",
        analytics.arn, analytics.bucket
    )
}

/// The passwd name of the user running the tests.
pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().expect("the test user has a passwd entry").name
}
