//! The test harness itself: moto as STS behind the fault proxy, seen through the Rust SDK.
//!
//! Pins down what moto enforces and how each injected fault reaches an `aws-sdk-sts` caller, so the
//! agent's tests can rely on it (and a moto upgrade that changes it fails here first).

mod support;

use std::time::{Duration, Instant};

use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::{AssumeRoleError, AssumeRoleOutput};
use aws_sdk_sts::operation::RequestId;
use support::{AwsSpec, Fault, FaultProxy, Moto, MotoOptions, RoleSpec};

const OTHER_ACCOUNT: &str = "222222222222";

type AssumeResult = Result<AssumeRoleOutput, SdkError<AssumeRoleError, aws_sdk_sts::config::http::HttpResponse>>;

async fn assume(client: &aws_sdk_sts::Client, role_arn: &str, external_id: Option<&str>) -> AssumeResult {
    client
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("harness-smoke")
        .set_external_id(external_id.map(str::to_owned))
        .send()
        .await
}

/// What a caller can learn from a service error.
#[derive(Debug)]
struct Failure {
    status: u16,
    /// The error code as the SDK parsed it from the body.
    code: Option<String>,
    /// The request id as the SDK parsed it (`RequestId` trait).
    request_id: Option<String>,
    /// The raw `x-amzn-requestid` response header.
    request_id_header: Option<String>,
}

/// Panics unless `result` is a service error.
fn service_error(result: AssumeResult) -> Failure {
    match result {
        Err(SdkError::ServiceError(e)) => Failure {
            status: e.raw().status().as_u16(),
            code: e.err().code().map(str::to_owned),
            request_id: e.err().request_id().map(str::to_owned),
            request_id_header: e.raw().headers().get("x-amzn-requestid").map(str::to_owned),
        },
        Err(other) => panic!("expected a service error, got {other:?}"),
        Ok(out) => panic!("expected a service error, got credentials for {:?}", out.assumed_role_user()),
    }
}

#[tokio::test]
async fn moto_enforces_identity_trust_and_external_id_through_the_proxy() {
    let moto = Moto::start(MotoOptions::default());
    let world = moto.setup(&AwsSpec::new(vec![
        RoleSpec::trusted("trusted"),
        RoleSpec::untrusted("untrusted"),
        RoleSpec::trusted("trust-names-someone-else").trusts_user(false),
        RoleSpec::trusted("partner").external_id("partner-external-id"),
        RoleSpec::trusted("other-account").account(OTHER_ACCOUNT).trusts_user(false),
    ]));
    let proxy = FaultProxy::start(moto.addr());
    let sts = support::sts_client(&proxy.url(), world.source_credentials(), false);

    let out = assume(&sts, &world.role("trusted").arn, None).await.expect("trusted role");
    let creds = out.credentials().expect("credentials");
    assert!(!creds.access_key_id().is_empty() && !creds.session_token().is_empty());
    assert_eq!(
        out.assumed_role_user().unwrap().arn(),
        format!("arn:aws:sts::{}:assumed-role/trusted/harness-smoke", world.account_id)
    );
    assert_eq!((proxy.assume_role_calls(), proxy.requests()), (1, 1));

    // moto's error XML has an extra <Errors> level and no <RequestId>: the SDK reads neither code nor
    // request id from it. The status is right, and the request id is in the x-amzn-requestid header.
    for denied in ["untrusted", "trust-names-someone-else"] {
        let failure = service_error(assume(&sts, &world.role(denied).arn, None).await);
        assert_eq!((failure.status, failure.code.as_deref(), failure.request_id.as_deref()), (403, None, None));
        assert!(failure.request_id_header.is_some_and(|id| !id.is_empty()), "{denied}");
    }

    let partner = &world.role("partner").arn;
    assert_eq!(service_error(assume(&sts, partner, Some("wrong")).await).status, 403);
    assume(&sts, partner, Some("partner-external-id")).await.expect("right external id");
    // moto quirk: no ExternalId at all passes the StringEquals condition.
    assume(&sts, partner, None).await.expect("missing external id (moto does not deny it)");

    // Another account's trust policy is not evaluated; the identity policy still is.
    let other = assume(&sts, &world.role("other-account").arn, None).await.expect("cross-account");
    assert!(other.assumed_role_user().unwrap().arn().starts_with(&format!("arn:aws:sts::{OTHER_ACCOUNT}:")));

    assert_eq!(proxy.assume_role_calls(), 7);
    assert_eq!(proxy.assume_role_arrivals().len(), 7);

    // Unknown keys are refused outright.
    let stranger = aws_credential_types::Credentials::new("AKIAUNKNOWN000000000", "x", None, None, "test");
    let bad = support::sts_client(&moto.endpoint(), stranger, false);
    assert_eq!(service_error(assume(&bad, &world.role("trusted").arn, None).await).status, 403);

    // Enforcement off: anything goes.
    moto.set_enforcement(false);
    assume(&sts, &world.role("untrusted").arn, None).await.expect("no enforcement");
}

#[tokio::test]
async fn each_fault_reaches_the_sdk_as_sts_would_send_it() {
    let moto = Moto::start(MotoOptions::default());
    let world = moto.setup(&AwsSpec::new(vec![RoleSpec::trusted("trusted")]));
    let role = world.role("trusted").arn.clone();
    let proxy = FaultProxy::start(moto.addr());
    let sts = support::sts_client(&proxy.url(), world.source_credentials(), false);

    // The proxy answers in STS's own format: the SDK parses code and request id.
    proxy.set(Fault::Throttle);
    let failure = service_error(assume(&sts, &role, None).await);
    assert_eq!((failure.status, failure.code.as_deref()), (400, Some("Throttling")));
    assert_eq!(failure.request_id, proxy.fault_request_ids().last().cloned());
    assert_eq!(failure.request_id_header, failure.request_id);

    proxy.set(Fault::ServerError);
    let failure = service_error(assume(&sts, &role, None).await);
    assert_eq!((failure.status, failure.code.as_deref()), (500, Some("InternalFailure")));

    proxy.set(Fault::AccessDenied);
    match assume(&sts, &role, None).await {
        Err(SdkError::ServiceError(e)) => {
            assert_eq!(e.raw().status().as_u16(), 403);
            assert_eq!(e.err().code(), Some("AccessDenied"));
            assert!(e.err().message().unwrap_or_default().contains(&role));
            assert_eq!(e.err().request_id(), proxy.fault_request_ids().last().map(String::as_str));
        }
        other => panic!("expected AccessDenied, got {other:?}"),
    }
    assert_eq!((proxy.assume_role_calls(), proxy.refused()), (3, 0));

    proxy.set(Fault::Down);
    match assume(&sts, &role, None).await {
        Err(SdkError::DispatchFailure(_)) => {}
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
    assert!(proxy.refused() >= 1);
    assert_eq!(proxy.assume_role_calls(), 3, "a refused connection carries no request");

    let delay = Duration::from_millis(400);
    proxy.set(Fault::Delay(delay));
    let started = Instant::now();
    assume(&sts, &role, None).await.expect("delayed call");
    assert!(started.elapsed() >= delay);

    proxy.set(Fault::Pass);
    assume(&sts, &role, None).await.expect("back to normal");
    assert_eq!(proxy.assume_role_calls(), 5);

    // With the SDK's standard retry policy, throttling is retried: three attempts arrive.
    proxy.reset_counts();
    proxy.set(Fault::Throttle);
    let retrying = support::sts_client(&proxy.url(), world.source_credentials(), true);
    assert_eq!(service_error(assume(&retrying, &role, None).await).code.as_deref(), Some("Throttling"));
    assert_eq!(proxy.assume_role_calls(), 3);
    assert_eq!(proxy.max_assume_role_in(Duration::from_secs(3600)), 3);
    assert_eq!(proxy.max_assume_role_in(Duration::ZERO), 1);
}
