//! The instance-metadata listener (SPEC §5.1): what SDK default chains ask the instance metadata
//! service, answered for the kernel-verified caller by the same rules, cache and audit as the HTTP
//! API; every other path forwarded to the metadata service the node would otherwise have reached.
//!
//! Callers arrive here because the redirect (`imds-redirect install`, [`crate::redirect`]) rewrote
//! their connections to 169.254.169.254:80; the caller is the owner of the client socket the kernel
//! reports for the original destination ([`crate::caller::redirected_connection_owner`]).
//!
//! - `PUT /latest/api/token`: an IMDSv2 session token of our own, bound to the caller's uid and
//!   expiring after the TTL asked for (1 s to 6 h). It is an HMAC over uid and expiry under a key
//!   drawn at start: tokens need no state, cannot be used by another user, and die with the process
//!   (an SDK that gets 401 asks for a new one).
//! - `GET /latest/meta-data/iam/security-credentials/`: the name of the role the rules give the caller
//!   (the node's own profile name under the instance-profile fallback); 404 when they deny.
//! - `GET .../security-credentials/<name>`: that role's credentials as the metadata service writes
//!   them. Audited like the API, with `"via": "imds"`; there is no location, so prefix rules never match.
//! - `GET /latest/meta-data/iam/info`: 404 when the rules deny; otherwise forwarded.
//! - `GET /latest/meta-data/identity-credentials/…`: 404; the instance-identity role is the node's.
//! - These paths are recognised under any version (`/2021-07-15/…` as `/latest/…`), with doubled slashes
//!   or percent-encoding ([`Asked`]): a credential path is never forwarded.
//! - anything else: forwarded to `[imds] upstream`, with the agent's own upstream token in place of the
//!   caller's, so region and instance-identity lookups keep working.
//!
//! A request without a token (IMDSv1) gets credentials only if the node's metadata service answers
//! tokenless requests itself; a tokenless request for another path is forwarded as it is, and the
//! metadata service decides.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;

use crate::audit::{CredentialRecord, Via};
use crate::cache::CacheKey;
use crate::config::Config;
use crate::handler::{self, Answer, App, Body, Conn};
use crate::refusal::{ErrorCode, Refusal};
use crate::sts::{Session, Sts};

const TOKEN_PATH: &str = "/latest/api/token";
const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";
const TOKEN: HeaderName = HeaderName::from_static("x-aws-ec2-metadata-token");
const TOKEN_TTL: HeaderName = HeaderName::from_static("x-aws-ec2-metadata-token-ttl-seconds");
/// The longest token life the metadata service grants, and what the agent asks it for.
const MAX_TOKEN_TTL: u64 = 21_600;
/// An upstream token is used until this long before it expires.
const UPSTREAM_TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// How long the upstream service's instance-profile name and IMDSv1 setting are reused: the
/// service throttles per instance, and neither changes while the node runs.
const UPSTREAM_FACTS_TTL: Duration = Duration::from_secs(60);
/// The largest upstream answer passed on (identity documents and user data are far smaller).
const MAX_UPSTREAM_BODY: usize = 1 << 20;
/// Headers of a forwarded request that are passed on; the rest stay here.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 3] =
    [http::header::ACCEPT, http::header::ACCEPT_ENCODING, http::header::USER_AGENT];

/// What the metadata listener keeps: its token key, and its client of the upstream service.
pub struct Imds {
    tokens: Tokens,
    client: Client<HttpConnector, Full<Bytes>>,
    upstream_token: tokio::sync::Mutex<Option<UpstreamToken>>,
    /// Whether the upstream service answers tokenless requests.
    answers_v1: Remembered<bool>,
    /// The node's instance-profile name, as the upstream service lists it.
    profile_name: Remembered<Option<String>>,
}

/// An upstream fact, reused for [`UPSTREAM_FACTS_TTL`].
struct Remembered<T>(std::sync::Mutex<Option<(T, Instant)>>);

impl<T: Clone> Remembered<T> {
    fn new() -> Self {
        Remembered(std::sync::Mutex::new(None))
    }

    async fn get(&self, ask: impl std::future::Future<Output = T>) -> T {
        let fresh = |(value, at): &(T, Instant)| (at.elapsed() < UPSTREAM_FACTS_TTL).then(|| value.clone());
        if let Some(value) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(fresh) {
            return value;
        }
        let value = ask.await;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((value.clone(), Instant::now()));
        value
    }
}

impl Default for Imds {
    fn default() -> Self {
        Imds {
            tokens: Tokens::new(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            upstream_token: tokio::sync::Mutex::new(None),
            answers_v1: Remembered::new(),
            profile_name: Remembered::new(),
        }
    }
}

/// The agent's own session token with the upstream metadata service.
struct UpstreamToken {
    authority: http::uri::Authority,
    /// `None`: the upstream service issues no tokens (IMDSv1 only).
    value: Option<HeaderValue>,
    renew_at: Instant,
}

/// Routes one request to the metadata listener.
pub async fn handle<S: Sts>(app: &App<S>, conn: &Conn, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let config = app.config.load_full();
    let headers = req.headers();
    if headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded") {
        // As the metadata service does: a proxy on the node is not relaying someone else's request.
        return undecided(app, conn, Refusal::new(ErrorCode::Forbidden, "forwarded requests are refused"));
    }
    let uid = match handler::admit(app, conn) {
        Ok(uid) => uid,
        Err(refusal) => return undecided(app, conn, refusal),
    };
    if uid == nix::unistd::geteuid().as_raw() {
        // The agent's own metadata traffic came back to it: forwarding it would loop.
        tracing::error!(
            uid,
            "the agent's own user is redirected to its metadata listener: exempt it from the redirect"
        );
        return text(StatusCode::LOOP_DETECTED, "the agent's own user must be exempt from the redirect\n");
    }
    let path = req.uri().path();
    if req.method() == Method::PUT && path == TOKEN_PATH {
        return issue_token(app, conn, uid, headers);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return undecided(app, conn, Refusal::new(ErrorCode::MethodNotAllowed, "use GET (or PUT for a token)"));
    }
    let v2 = match headers.get(TOKEN) {
        Some(token) if app.imds.tokens.check(token.as_bytes(), uid, unix_seconds(app.clock.now())) => true,
        Some(_) => return undecided(app, conn, Refusal::new(ErrorCode::Unauthorized, "invalid or expired token")),
        None => false,
    };
    let asked = Asked::of(path);
    let credential = matches!(asked, Asked::RoleName | Asked::Credentials(_));
    if credential && !v2 && !app.imds.upstream_answers_v1(&config).await {
        return undecided(
            app,
            conn,
            Refusal::new(ErrorCode::Unauthorized, "a token is required (PUT /latest/api/token)"),
        );
    }
    match asked {
        Asked::RoleName => role_name(app, &config, conn, uid, &req).await,
        Asked::Credentials(name) => credentials(app, &config, conn, uid, &name).await,
        Asked::Info => {
            let mut record = record(app, conn);
            match decide(app, &config, uid, &mut record) {
                Err(refusal) => error_response(&refusal),
                Ok(_) => app.imds.forward(&config, &req, v2).await,
            }
        }
        Asked::NotServed => text(StatusCode::NOT_FOUND, "not served through the agent\n"),
        Asked::Other => app.imds.forward(&config, &req, v2).await,
    }
}

/// What a request path asks for, however it is written: any version (`latest`, `2021-07-15`, …),
/// doubled slashes, percent-encoding. Whatever reaches credentials is answered here or not at all;
/// only the rest is forwarded.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    /// `<version>/meta-data/iam/security-credentials/`
    RoleName,
    /// `<version>/meta-data/iam/security-credentials/<name>`
    Credentials(String),
    /// `<version>/meta-data/iam/info`
    Info,
    /// Credentials this listener does not hand out (the instance-identity role's, other `iam/` paths),
    /// or a path with `.`/`..` segments or bad encoding: 404.
    NotServed,
    /// Everything else: forwarded as it was written.
    Other,
}

impl Asked {
    fn of(path: &str) -> Asked {
        let Ok(decoded) = percent_encoding::percent_decode_str(path).decode_utf8() else { return Asked::NotServed };
        let segments: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
        if segments.iter().any(|s| *s == "." || *s == "..") {
            return Asked::NotServed;
        }
        match segments.as_slice() {
            [_, "meta-data", "iam", "security-credentials"] => Asked::RoleName,
            [_, "meta-data", "iam", "security-credentials", name] => Asked::Credentials((*name).to_owned()),
            [_, "meta-data", "iam", "info"] => Asked::Info,
            // `iam/` itself lists the two paths above.
            [_, "meta-data", "iam"] => Asked::Other,
            [_, "meta-data", "iam", ..] | [_, "meta-data", "identity-credentials", ..] => Asked::NotServed,
            _ => Asked::Other,
        }
    }
}

/// `PUT /latest/api/token`.
fn issue_token<S: Sts>(app: &App<S>, conn: &Conn, uid: u32, headers: &HeaderMap) -> Response<Body> {
    let ttl = headers.get(TOKEN_TTL).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let Some(ttl) = ttl.filter(|ttl| (1..=MAX_TOKEN_TTL).contains(ttl)) else {
        let message = format!("{TOKEN_TTL} must be a number of seconds from 1 to {MAX_TOKEN_TTL}");
        return undecided(app, conn, Refusal::new(ErrorCode::InvalidRequest, message));
    };
    let token = app.imds.tokens.issue(uid, unix_seconds(app.clock.now()) + ttl);
    let mut response = text(StatusCode::OK, token);
    response.headers_mut().insert(TOKEN_TTL, HeaderValue::from(ttl));
    response
}

/// `GET /latest/meta-data/iam/security-credentials/`: the one role name the caller may fetch.
async fn role_name<S: Sts>(
    app: &App<S>,
    config: &Config,
    conn: &Conn,
    uid: u32,
    req: &Request<hyper::body::Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let mut record = record(app, conn);
    match decide(app, config, uid, &mut record) {
        Ok(CacheKey::Role(key)) => text(StatusCode::OK, key.role.name().to_owned()),
        Ok(CacheKey::InstanceProfile) => app.imds.forward(config, req, true).await,
        // A refusal is a decision: it is recorded, and the caller sees no role, as on a node without one.
        Err(refusal) => handler::finish(app, record, Err(refusal), Answer::Imds, started).await,
    }
}

/// `GET /latest/meta-data/iam/security-credentials/<name>`: decided, fetched and recorded like
/// `/v1/credentials` without a location.
async fn credentials<S: Sts>(app: &App<S>, config: &Config, conn: &Conn, uid: u32, name: &str) -> Response<Body> {
    let started = Instant::now();
    let mut record = record(app, conn);
    let result = match decide(app, config, uid, &mut record) {
        Err(refusal) => Err(refusal),
        Ok(key) => {
            let known = match &key {
                CacheKey::Role(key) => Some(key.role.name().to_owned()),
                CacheKey::InstanceProfile => app.imds.instance_profile_name(config).await,
            };
            if known.as_deref() == Some(name) {
                handler::fetch_in_time(app, config, key, &mut record).await
            } else {
                Err(Refusal::new(ErrorCode::NotFound, "no such role for this caller"))
            }
        }
    };
    handler::finish(app, record, result, Answer::Imds, started).await
}

/// A credentials record for a request through this listener.
fn record<S: Sts>(app: &App<S>, conn: &Conn) -> CredentialRecord {
    CredentialRecord { request_id: app.request_id(), via: Via::Imds, caller_uid: conn.uid().ok(), ..Default::default() }
}

/// The rules' answer for the caller, with no location.
fn decide<S>(app: &App<S>, config: &Config, uid: u32, record: &mut CredentialRecord) -> Result<CacheKey, Refusal> {
    let identity = handler::caller(app, uid, Instant::now(), record)?;
    handler::rule_key(app, config, &identity, None, record).map(|(key, _scope)| key)
}

/// A refusal before any decision: counted for its caller like the API's (SPEC §7), answered as the
/// metadata service would.
fn undecided<S: Sts>(app: &App<S>, conn: &Conn, refusal: Refusal) -> Response<Body> {
    if crate::refusals::is_tallied(refusal.code) {
        app.refusals.add(conn.uid().ok(), None, refusal.code, &app.request_id(), app.clock.now());
    }
    error_response(&refusal)
}

/// The credentials answer of this listener.
pub(crate) fn credentials_response(session: &Session, now: SystemTime) -> Response<Body> {
    let mut response = text(StatusCode::OK, session.imds_answer(&crate::text::expiration(now)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A refusal as the metadata service answers: a status and a line of text. A denial looks like a
/// node without a role: 404.
pub(crate) fn error_response(refusal: &Refusal) -> Response<Body> {
    let status = match refusal.code {
        ErrorCode::AccessDenied => StatusCode::NOT_FOUND,
        code => code.status(),
    };
    let mut response = text(status, format!("{}\n", refusal.message));
    if refusal.code == ErrorCode::Throttled {
        response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    handler::text_response(status, "text/plain", body)
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Imds {
    /// Forwards `req` (GET or HEAD) to the upstream service and passes its answer back. `with_token`:
    /// the caller presented a valid token, so the agent presents its own upstream.
    async fn forward(&self, config: &Config, req: &Request<hyper::body::Incoming>, with_token: bool) -> Response<Body> {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        match self.upstream(config, req.method().clone(), path, req.headers(), with_token).await {
            Ok(response) => response.map(Full::new),
            Err(e) => {
                tracing::warn!(error = %e, "instance metadata service unreachable");
                text(StatusCode::BAD_GATEWAY, "the instance metadata service did not answer\n")
            }
        }
    }

    /// The node's own instance-profile name, as the upstream service lists it.
    async fn instance_profile_name(&self, config: &Config) -> Option<String> {
        self.profile_name
            .get(async {
                let response =
                    self.upstream(config, Method::GET, CREDENTIALS_PATH, &HeaderMap::new(), true).await.ok()?;
                let body = std::str::from_utf8(response.body()).ok()?;
                let name = body.lines().next()?.trim();
                (response.status() == StatusCode::OK && !name.is_empty()).then(|| name.to_owned())
            })
            .await
    }

    /// Whether the upstream service answers requests without a token (IMDSv1 allowed on this node).
    async fn upstream_answers_v1(&self, config: &Config) -> bool {
        self.answers_v1
            .get(async {
                let answer = self.upstream(config, Method::GET, "/latest/meta-data/", &HeaderMap::new(), false).await;
                answer.is_ok_and(|r| r.status().is_success())
            })
            .await
    }

    /// One request upstream, within `server.request_timeout`. With a token: the agent's, renewed once
    /// if the service no longer takes it.
    async fn upstream(
        &self,
        config: &Config,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        with_token: bool,
    ) -> Result<Response<Bytes>, String> {
        let authority = &config.imds.upstream.authority;
        let deadline = config.server.request_timeout;
        let mut renew = false;
        loop {
            let token = if with_token { self.token(authority, deadline, renew).await? } else { None };
            let mut request = Request::builder().method(method.clone()).uri(format!("http://{authority}{path}"));
            for name in &FORWARDED_REQUEST_HEADERS {
                for value in headers.get_all(name) {
                    request = request.header(name, value);
                }
            }
            if let Some(token) = &token {
                request = request.header(TOKEN, token);
            }
            let request = request.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
            let response = self.send(request, deadline).await?;
            if response.status() == StatusCode::UNAUTHORIZED && token.is_some() && !renew {
                renew = true;
                continue;
            }
            return Ok(response);
        }
    }

    async fn send(&self, request: Request<Full<Bytes>>, deadline: Duration) -> Result<Response<Bytes>, String> {
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| format!("{e:?}"))?;
            let (mut parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_UPSTREAM_BODY).collect().await.map_err(|e| e.to_string())?.to_bytes();
            for hop in [http::header::CONNECTION, http::header::TRANSFER_ENCODING, http::header::CONTENT_LENGTH] {
                parts.headers.remove(hop);
            }
            parts.headers.remove("keep-alive");
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(deadline, exchange).await.map_err(|_| format!("no answer within {deadline:?}"))?
    }

    /// The agent's upstream token: cached, fetched when missing, near expiry, or `renew`ed.
    async fn token(
        &self,
        authority: &http::uri::Authority,
        deadline: Duration,
        renew: bool,
    ) -> Result<Option<HeaderValue>, String> {
        let mut slot = self.upstream_token.lock().await;
        if let Some(token) = slot.as_ref() {
            if !renew && token.authority == *authority && Instant::now() < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        let request = Request::builder()
            .method(Method::PUT)
            .uri(format!("http://{authority}{TOKEN_PATH}"))
            .header(TOKEN_TTL, MAX_TOKEN_TTL)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = self.send(request, deadline).await?;
        // A service that issues no tokens answers tokenless requests (IMDSv1 only).
        let value = match response.status() {
            StatusCode::OK => Some(HeaderValue::from_maybe_shared(response.into_body()).map_err(|e| e.to_string())?),
            _ => None,
        };
        let renew_at = Instant::now() + Duration::from_secs(MAX_TOKEN_TTL) - UPSTREAM_TOKEN_MARGIN;
        *slot = Some(UpstreamToken { authority: authority.clone(), value: value.clone(), renew_at });
        Ok(value)
    }
}

/// Session tokens bound to a uid: `<uid>.<expiry>.<hex HMAC-SHA256 of "uid.expiry">`.
struct Tokens {
    key: [u8; 32],
}

impl Tokens {
    fn new() -> Tokens {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the kernel's random source");
        Tokens { key }
    }

    fn mac(&self, uid: u32, expires: u64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{uid}.{expires}").as_bytes());
        mac
    }

    fn issue(&self, uid: u32, expires: u64) -> String {
        let tag = self.mac(uid, expires).finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("{uid}.{expires}.{hex}")
    }

    /// Whether `token` was issued here, for `uid`, and has not expired at `now`.
    fn check(&self, token: &[u8], uid: u32, now: u64) -> bool {
        let Ok(token) = std::str::from_utf8(token) else { return false };
        let mut parts = token.split('.');
        let (Some(owner), Some(expires), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let (Ok(owner), Ok(expires)) = (owner.parse::<u32>(), expires.parse::<u64>()) else { return false };
        let Some(tag) = unhex(tag) else { return false };
        owner == uid && now < expires && self.mac(owner, expires).verify_slice(&tag).is_ok()
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_paths_are_recognised_however_written() {
        for path in [
            "/latest/meta-data/iam/security-credentials/",
            "/latest/meta-data/iam/security-credentials",
            "/2021-07-15/meta-data/iam/security-credentials/",
            "//latest//meta-data/iam/security-credentials//",
            "/latest/meta-data/iam/%73ecurity-credentials/",
        ] {
            assert_eq!(Asked::of(path), Asked::RoleName, "{path}");
        }
        for path in [
            "/latest/meta-data/iam/security-credentials/node-profile",
            "/1.0/meta-data/iam/security-credentials/node-profile",
            "/latest/meta-data/iam/security-credentials//node-profile/",
            "/latest/meta-data/iam/security-credentials%2Fnode-profile",
        ] {
            assert_eq!(Asked::of(path), Asked::Credentials("node-profile".into()), "{path}");
        }
        assert_eq!(Asked::of("/2016-09-02/meta-data/iam/info"), Asked::Info);
        for path in [
            "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
            "/2021-07-15/meta-data/identity-credentials/ec2/info",
            "/latest/meta-data/iam/security-credentials/node-profile/extra",
            "/latest/meta-data/placement/../iam/security-credentials/node-profile",
            "/latest/meta-data/./iam/security-credentials/node-profile",
            "/latest/meta-data/iam/%ff",
        ] {
            assert_eq!(Asked::of(path), Asked::NotServed, "{path}");
        }
        for path in [
            "/latest/meta-data/placement/region",
            "/latest/dynamic/instance-identity/document",
            "/latest/meta-data/iam/",
            "/",
        ] {
            assert_eq!(Asked::of(path), Asked::Other, "{path}");
        }
    }

    #[test]
    fn tokens_are_bound_to_their_uid_and_expire() {
        let tokens = Tokens::new();
        let token = tokens.issue(1001, 2_000);
        assert!(tokens.check(token.as_bytes(), 1001, 1_999));
        assert!(!tokens.check(token.as_bytes(), 1001, 2_000), "expired");
        assert!(!tokens.check(token.as_bytes(), 1002, 1_000), "another user's");
        let forged = token.replacen("1001.", "1002.", 1);
        assert!(!tokens.check(forged.as_bytes(), 1002, 1_000), "uid changed");
        let extended = token.replacen(".2000.", ".9000.", 1);
        assert!(!tokens.check(extended.as_bytes(), 1001, 1_000), "expiry changed");
        assert!(!Tokens::new().check(token.as_bytes(), 1001, 1_000), "another process's key");
        for junk in ["", "1001", "1001.2000", "1001.2000.zz", "1001.2000.abc.", "x.y.z"] {
            assert!(!tokens.check(junk.as_bytes(), 1001, 1_000), "{junk:?}");
        }
    }
}
