//! The one seam between the agent and AWS: [`Sts`], and its `aws-sdk-sts` implementation
//! [`AwsSts`]. SDK errors are sorted here, once, by what the caller does next ([`StsError`]).
//!
//! Retries and the call-rate limit wrap the trait in [`call_with_retries`]: the SDK's own retry
//! is turned off so that every attempt passes the agent's token bucket.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::RequestId;
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::clock::Clock;
use crate::config::Privilege;
use crate::decision::SessionKey;
use crate::grants::{Permission, Target};
use crate::rules::RoleArn;

/// Credentials as handed out. They are rendered once, when issued, into the answer every request
/// they serve gets (a cached request then costs no serialisation, and the secrets are held once,
/// not twice). The secret key and session token live only in that answer, which `Debug` never
/// shows.
pub struct Session {
    pub access_key_id: String,
    pub expiration: SystemTime,
    /// `Expiration` as written in the answer and the audit record.
    pub expiration_text: String,
    /// STS request id of the call that issued them (`None` for instance-profile credentials); the S3
    /// request id for credentials S3 Access Grants vended.
    pub request_id: Option<String>,
    /// For credentials S3 Access Grants vended: the grant that matched (`s3://bucket/prefix/*`).
    pub grant_target: Option<String>,
    answer: Bytes,
}

impl Session {
    /// `role` is the role assumed (`None` for the node's own credentials): the answer names it
    /// and its account.
    pub fn new(
        credentials: &Credentials,
        expiration: SystemTime,
        request_id: Option<String>,
        role: Option<&RoleArn>,
    ) -> Session {
        let expiration_text = crate::text::expiration(expiration);
        let account_id = match role {
            Some(role) => Some(role.account_id().to_owned()),
            None => credentials.account_id().map(|a| a.as_str().to_owned()),
        };
        let body = AnswerBody {
            access_key_id: credentials.access_key_id(),
            secret_access_key: credentials.secret_access_key(),
            token: credentials.session_token(),
            expiration: &expiration_text,
            role_arn: role.map(RoleArn::as_str),
            account_id: account_id.as_deref(),
        };
        let json = serde_json::to_vec(&body).expect("credentials serialise");
        Session {
            access_key_id: credentials.access_key_id().to_owned(),
            expiration,
            expiration_text,
            request_id,
            grant_target: None,
            // Exactly as long as the answer: one per cached session.
            answer: Bytes::copy_from_slice(&json),
        }
    }

    /// These credentials, to sign requests with (S3 Access Grants are asked as a grantee session).
    pub fn credentials(&self) -> Credentials {
        let answer: AnswerBody<'_> = serde_json::from_slice(&self.answer).expect("the answer this session rendered");
        Credentials::new(
            answer.access_key_id,
            answer.secret_access_key,
            answer.token.map(str::to_owned),
            Some(self.expiration),
            "emrfs-role-agent",
        )
    }

    /// The JSON body of the 200 answer (SPEC §5). Holds the secrets.
    pub fn answer(&self) -> Bytes {
        self.answer.clone()
    }
}

impl Session {
    /// The same credentials as the instance metadata service writes them
    /// (`/latest/meta-data/iam/security-credentials/<role>`). Holds the secrets.
    pub fn imds_answer(&self, last_updated: &str) -> Bytes {
        let answer: AnswerBody<'_> = serde_json::from_slice(&self.answer).expect("the answer this session rendered");
        let body = ImdsBody {
            code: "Success",
            last_updated,
            kind: "AWS-HMAC",
            access_key_id: answer.access_key_id,
            secret_access_key: answer.secret_access_key,
            token: answer.token,
            expiration: answer.expiration,
        };
        serde_json::to_vec(&body).expect("credentials serialise").into()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration_text)
            .field("request_id", &self.request_id)
            .field("grant_target", &self.grant_target)
            .finish_non_exhaustive()
    }
}

/// The answer's JSON, in the order SPEC §5 shows its keys.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AnswerBody<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: Option<&'a str>,
    expiration: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

/// The instance metadata service's credentials JSON, in its order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ImdsBody<'a> {
    code: &'a str,
    last_updated: &'a str,
    #[serde(rename = "Type")]
    kind: &'a str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: Option<&'a str>,
    expiration: &'a str,
}

/// Why STS gave no credentials, sorted by what happens next.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum StsError {
    /// STS refused (AccessDenied, a bad ExternalId, a malformed policy, …). Not retried; cached
    /// for `negative_cache`; the client gets 403.
    #[error("refused: {code}: {message} (request id {})", request_id.as_deref().unwrap_or("none"))]
    Denied { code: String, message: String, request_id: Option<String> },
    /// STS asked us to slow down. Retried with backoff.
    #[error("STS throttled the call (STS request id {})", request_id.as_deref().unwrap_or("none"))]
    Throttled { request_id: Option<String> },
    /// STS could not be reached or failed (5xx, timeout, connection error). Retried with backoff.
    #[error("STS unavailable: {0}")]
    Unavailable(String),
}

impl StsError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, StsError::Denied { .. })
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            StsError::Denied { request_id, .. } | StsError::Throttled { request_id } => request_id.as_deref(),
            StsError::Unavailable(_) => None,
        }
    }
}

/// Where credentials come from.
pub trait Sts: Send + Sync + 'static {
    /// One AssumeRole call.
    fn assume_role(&self, key: &SessionKey) -> impl Future<Output = Result<Session, StsError>> + Send;
    /// The node's own credentials (instance profile), for `fallback.mode = "instance-profile"`.
    fn instance_credentials(&self) -> impl Future<Output = Result<Session, StsError>> + Send;
    /// One S3 Access Grants `GetDataAccess` call, signed with the `grantee` session's credentials: the
    /// vended credentials, with the grant that matched as their `grant_target`. Sorted like STS's
    /// answers: no grant is `Denied`, throttling and 5xx retryable.
    fn get_data_access(
        &self,
        grantee: &Session,
        request: &GrantRequest<'_>,
    ) -> impl Future<Output = Result<Session, StsError>> + Send;
}

/// What one `GetDataAccess` call asks (SPEC §4.1).
#[derive(Clone, Copy, Debug)]
pub struct GrantRequest<'a> {
    /// The grantee role's account: where the Access Grants instance is.
    pub account_id: &'a str,
    pub target: &'a Target,
    pub permission: Permission,
    pub privilege: Privilege,
    pub duration: Duration,
}

/// [`Sts`] over `aws-sdk-sts` (and `aws-sdk-s3control` for S3 Access Grants), with source credentials
/// from the SDK's default chain.
#[derive(Clone)]
pub struct AwsSts {
    client: aws_sdk_sts::Client,
    source: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    clock: Arc<dyn Clock>,
    /// S3 Control's settings without credentials: each grantee session signs its own calls.
    grants: aws_sdk_s3control::config::Builder,
}

impl AwsSts {
    /// `sdk` comes from `aws_config::defaults(..).load()`; `endpoint_url` overrides STS's
    /// endpoint; each attempt is bounded by `attempt_timeout`; `clock` dates long-lived keys.
    pub fn new(
        sdk: &SdkConfig,
        endpoint_url: Option<&str>,
        attempt_timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> AwsSts {
        // Both clients: each attempt bounded, the SDK's own retries off (the agent retries through its limiter).
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(attempt_timeout)
            .operation_attempt_timeout(attempt_timeout)
            .build();
        let mut builder = aws_sdk_sts::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts.clone());
        if let Some(url) = endpoint_url {
            builder = builder.endpoint_url(url);
        }
        let grants = aws_sdk_s3control::config::Builder::from(sdk)
            .retry_config(aws_sdk_s3control::config::retry::RetryConfig::disabled())
            .timeout_config(timeouts);
        AwsSts {
            client: aws_sdk_sts::Client::from_conf(builder.build()),
            source: sdk.credentials_provider(),
            clock,
            grants,
        }
    }

    /// Sends S3 Access Grants calls to `url` (`access_grants.endpoint_url`) in place of the region's
    /// S3 Control endpoint. The SDK still puts the account id in front of its host, as S3 Control wants.
    pub fn with_access_grants_endpoint(mut self, url: Option<&str>) -> AwsSts {
        if let Some(url) = url {
            self.grants = self.grants.endpoint_url(url);
        }
        self
    }
}

impl Sts for AwsSts {
    async fn assume_role(&self, key: &SessionKey) -> Result<Session, StsError> {
        let out = self
            .client
            .assume_role()
            .role_arn(key.role.as_str())
            .role_session_name(&key.session_name)
            .set_external_id(key.external_id.clone())
            .set_source_identity(key.source_identity.clone())
            .duration_seconds(i32::try_from(key.duration.as_secs()).unwrap_or(i32::MAX))
            .set_policy(key.policy.as_deref().map(str::to_owned))
            .send()
            .await
            .map_err(classify)?;
        let request_id = out.request_id().map(str::to_owned);
        let creds = out
            .credentials
            .ok_or_else(|| StsError::Unavailable("AssumeRole answered without credentials".to_owned()))?;
        let expiration = SystemTime::try_from(*creds.expiration())
            .map_err(|_| StsError::Unavailable("AssumeRole answered with an invalid expiration".to_owned()))?;
        let credentials = Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_owned()),
            Some(expiration),
            "AssumeRole",
        );
        Ok(Session::new(&credentials, expiration, request_id, Some(&key.role)))
    }

    async fn get_data_access(&self, grantee: &Session, request: &GrantRequest<'_>) -> Result<Session, StsError> {
        use aws_sdk_s3control::types::{Permission as ApiPermission, Privilege as ApiPrivilege, S3PrefixType};
        let config = self.grants.clone().credentials_provider(grantee.credentials()).build();
        let client = aws_sdk_s3control::Client::from_conf(config);
        let out = client
            .get_data_access()
            .account_id(request.account_id)
            .target(&request.target.uri)
            .set_target_type(request.target.object.then_some(S3PrefixType::Object))
            .permission(ApiPermission::from(request.permission.as_str()))
            .privilege(match request.privilege {
                Privilege::Default => ApiPrivilege::Default,
                Privilege::Minimal => ApiPrivilege::Minimal,
            })
            .duration_seconds(i32::try_from(request.duration.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| match classify(e) {
                // Said so: the refusal is S3 Access Grants', not STS's.
                StsError::Denied { code, message, request_id } => {
                    StsError::Denied { code, message: format!("S3 Access Grants: {message}"), request_id }
                }
                other => other,
            })?;
        let request_id = aws_sdk_s3control::operation::RequestId::request_id(&out).map(str::to_owned);
        let unusable = |what: &str| StsError::Unavailable(format!("GetDataAccess answered without {what}"));
        let creds = out.credentials().ok_or_else(|| unusable("credentials"))?;
        let expiration = creds
            .expiration()
            .and_then(|e| SystemTime::try_from(*e).ok())
            .ok_or_else(|| unusable("a valid expiration"))?;
        let credentials = Credentials::new(
            creds.access_key_id().ok_or_else(|| unusable("an access key id"))?,
            creds.secret_access_key().ok_or_else(|| unusable("a secret access key"))?,
            creds.session_token().map(str::to_owned),
            Some(expiration),
            "GetDataAccess",
        );
        let matched = out.matched_grant_target().ok_or_else(|| unusable("a matched grant target"))?.to_owned();
        let mut session = Session::new(&credentials, expiration, request_id, None);
        session.grant_target = Some(matched);
        Ok(session)
    }

    async fn instance_credentials(&self) -> Result<Session, StsError> {
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| StsError::Unavailable("no source credentials are configured".to_owned()))?;
        let credentials = source
            .provide_credentials()
            .await
            .map_err(|e| StsError::Unavailable(format!("instance credentials: {}", error_chain(&e))))?;
        // Long-lived keys (no expiry) are handed out as valid for the next hour.
        let expiration = credentials.expiry().unwrap_or_else(|| self.clock.now() + Duration::from_secs(3600));
        Ok(Session::new(&credentials, expiration, None, None))
    }
}

/// Sorts an SDK error. The HTTP status decides, since not every STS-compatible endpoint's error
/// body is understood by the SDK; the error code refines it where the body was understood.
fn classify<E>(err: SdkError<E, aws_smithy_runtime_api::http::Response>) -> StsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let request_id = err.request_id().map(str::to_owned);
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let message = err.message().map(str::to_owned);
    match (status, code.as_deref()) {
        (_, Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded")) | (Some(429), _) => {
            StsError::Throttled { request_id }
        }
        (Some(s), _) if s >= 500 => StsError::Unavailable(format!(
            "HTTP {s} {} (STS request id {})",
            code.as_deref().unwrap_or(""),
            request_id.as_deref().unwrap_or("none")
        )),
        (Some(s), _) => StsError::Denied {
            code: code.unwrap_or_else(|| if s == 403 { "AccessDenied" } else { "InvalidRequest" }.to_owned()),
            message: message.unwrap_or_else(|| format!("HTTP {s}")),
            request_id,
        },
        (None, _) => StsError::Unavailable(error_chain(&err)),
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// The account-wide STS call budget (`sts.max_calls_per_second`).
pub struct CallLimiter(DefaultDirectRateLimiter);

impl CallLimiter {
    pub fn per_second(calls: u32) -> CallLimiter {
        let rate = std::num::NonZeroU32::new(calls.max(1)).expect("non-zero");
        // Burst of one: calls are spread evenly, never bunched at a second boundary.
        CallLimiter(RateLimiter::direct(Quota::per_second(rate).allow_burst(std::num::NonZeroU32::MIN)))
    }

    pub async fn until_ready(&self) {
        self.0.until_ready().await;
    }
}

/// What one STS attempt did, for the audit log and metrics.
pub struct Attempt<'a> {
    pub result: &'a Result<Session, StsError>,
    pub elapsed: Duration,
}

/// Runs `call` until it succeeds, fails for good, or `budget` runs out; retryable failures are
/// retried after a fully jittered exponential backoff; every attempt waits for the limiter.
/// The budget starts with the first attempt: waiting in the limiter's queue before it is bounded
/// by the request's own timeout, not by this one.
pub async fn call_with_retries<F, Fut>(
    limiter: &CallLimiter,
    budget: Duration,
    mut call: F,
    mut observe: impl FnMut(Attempt<'_>),
) -> Result<Session, StsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Session, StsError>>,
{
    limiter.until_ready().await;
    let deadline = tokio::time::Instant::now() + budget;
    let mut backoff = Duration::from_millis(50);
    let mut last = StsError::Unavailable(format!("no attempt finished within {budget:?}"));
    let mut first = true;
    loop {
        let attempt = async {
            if !std::mem::take(&mut first) {
                limiter.until_ready().await;
            }
            let started = Instant::now();
            let result = call().await;
            (result, started.elapsed())
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Err(_) => return Err(last),
            Ok((result, elapsed)) => {
                observe(Attempt { result: &result, elapsed });
                match result {
                    Ok(session) => return Ok(session),
                    Err(e) if !e.is_retryable() => return Err(e),
                    Err(e) => last = e,
                }
            }
        }
        let pause = backoff.mul_f64(fastrand::f64());
        if tokio::time::Instant::now() + pause >= deadline {
            return Err(last);
        }
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
