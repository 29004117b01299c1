//! The instance-metadata door (SPEC §5.1): what SDK default chains ask the instance metadata
//! service, answered for the kernel-verified caller on the credential path the API shares
//! ([`crate::path`]); a short allow-list of other paths forwarded to the metadata service the node
//! would otherwise have reached ([`upstream`]); session tokens of its own ([`tokens`]).
//!
//! Callers arrive here because the redirect (`imds-redirect install`, [`crate::redirect`]) rewrote
//! their connections to the metadata service; the caller is the owner of the client socket the kernel
//! reports for the original destination ([`crate::caller::redirected_connection_owner`]).
//!
//! - `PUT /latest/api/token`: an IMDSv2 session token of our own, bound to the caller's uid and
//!   expiring after the TTL asked for (1 s to 6 h).
//! - `GET /latest/meta-data/iam/security-credentials/`: the name of the role the rules give the caller
//!   (the node's own profile name under the instance-profile fallback); 404 when they deny.
//! - `GET .../security-credentials/<name>`: that role's credentials as the metadata service writes
//!   them. Audited like the API, with `"via": "imds"`; there is no location, so prefix rules never match.
//! - `GET /latest/meta-data/iam/info`: 404 when the rules deny; otherwise forwarded.
//! - These are recognised under any version (`/2021-07-15/…` as `/latest/…`), with doubled slashes or
//!   percent-encoding ([`Asked`]).
//! - Forwarded, with the agent's own upstream token in place of the caller's: only what [`Asked::of`]
//!   allows — `meta-data`, `dynamic` and `user-data` under a version, written plainly (no
//!   percent-encoding, no `\`, no empty or dot segments), never a path that names credentials in any
//!   spelling, nor `iam/` below its listing and `info`. Everything else is a 404: the listener does not
//!   have to know how the node's service would read an odd spelling.
//!
//! Every refusal, whatever the path, ends in [`path::finish`] like the API's: audited or tallied, and
//! counted.
//!
//! A request without a token (IMDSv1) gets credentials only if the node's metadata service answers
//! tokenless requests itself; a tokenless request for another path is forwarded as it is, and the
//! metadata service decides.

pub mod tokens;
pub mod upstream;

use std::time::{Instant, SystemTime};

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};

use crate::audit::CredentialRecord;
use crate::cache::{CacheKey, Served};
use crate::config::Config;
use crate::path::{self, App, Body, Conn, Door, Wanted};
use crate::refusal::{ErrorCode, Refusal};
use crate::respond;
use crate::share::Sharer;
use crate::sts::Sts;

use self::tokens::Tokens;
use self::upstream::Upstream;

const TOKEN_PATH: &str = "/latest/api/token";
const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";
const TOKEN: HeaderName = HeaderName::from_static("x-aws-ec2-metadata-token");
const TOKEN_TTL: HeaderName = HeaderName::from_static("x-aws-ec2-metadata-token-ttl-seconds");
/// The longest token life the metadata service grants, and what the agent asks it for.
const MAX_TOKEN_TTL: u64 = 21_600;

/// What the metadata door keeps: its token key, and its client of the upstream service.
#[derive(Default)]
pub struct Imds {
    tokens: Tokens,
    upstream: Upstream,
}

/// Routes one request to the metadata listener.
pub async fn handle<S: Sts>(
    app: &App<S>,
    imds: &Imds,
    conn: &Conn,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let config = app.config.load_full();
    let mut record = app.record(conn);
    match route(app, imds, &config, conn, &req, &mut record).await {
        Routed::Answered(response) => response,
        Routed::Ends(result) => path::finish(app, record, result, &Answer, started).await,
    }
}

/// Where a request went: answered without a decision (a token, a forwarded path, a role name), or to
/// the credential path's end.
enum Routed {
    Answered(Response<Body>),
    Ends(Result<Served, Refusal>),
}

impl From<Refusal> for Routed {
    fn from(refusal: Refusal) -> Routed {
        Routed::Ends(Err(refusal))
    }
}

async fn route<S: Sts>(
    app: &App<S>,
    imds: &Imds,
    config: &Config,
    conn: &Conn,
    req: &Request<hyper::body::Incoming>,
    record: &mut CredentialRecord,
) -> Routed {
    let headers = req.headers();
    if headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded") {
        // As the metadata service does: a proxy on the node is not relaying someone else's request.
        return Refusal::new(ErrorCode::Forbidden, "forwarded requests are refused").into();
    }
    let uid = match path::identified(conn) {
        Ok(uid) => uid,
        Err(refusal) => return refusal.into(),
    };
    let sharer = Sharer::uid(uid);
    if let Err(refusal) = path::admit(app, &sharer) {
        return refusal.into();
    }
    if uid == nix::unistd::geteuid().as_raw() {
        // The agent's own metadata traffic came back to it: forwarding it would loop.
        tracing::error!(
            uid,
            "the agent's own user is redirected to its metadata listener: exempt it from the redirect"
        );
        return Refusal::new(ErrorCode::LoopDetected, "the agent's own user must be exempt from the redirect").into();
    }
    let path = req.uri().path();
    if req.method() == Method::PUT && path == TOKEN_PATH {
        return match issue_token(app, imds, uid, headers) {
            Ok(response) => Routed::Answered(response),
            Err(refusal) => refusal.into(),
        };
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Refusal::new(ErrorCode::MethodNotAllowed, "use GET (or PUT for a token)").into();
    }
    let v2 = match headers.get(TOKEN) {
        Some(token) if imds.tokens.check(token.as_bytes(), uid, unix_seconds(app.clock.now())) => true,
        Some(_) => return Refusal::new(ErrorCode::Unauthorized, "invalid or expired token").into(),
        None => false,
    };
    let asked = Asked::of(path);
    let credential = matches!(asked, Asked::RoleName | Asked::Credentials(_) | Asked::Info);
    if credential && !v2 && !imds.upstream.answers_v1(config).await {
        return Refusal::new(ErrorCode::Unauthorized, "a token is required (PUT /latest/api/token)").into();
    }
    match asked {
        Asked::RoleName => match decide(app, config, uid, record) {
            Ok(CacheKey::Role(key)) => Routed::Answered(text(StatusCode::OK, key.role.name().to_owned())),
            Ok(CacheKey::InstanceProfile) => Routed::Answered(imds.upstream.forward(config, req, true).await),
            Ok(CacheKey::Grant(_)) => Refusal::new(ErrorCode::NotFound, "no role for this caller").into(),
            // A refusal is a decision: it is recorded, and the caller sees no role, as on a node without one.
            Err(refusal) => refusal.into(),
        },
        Asked::Credentials(name) => {
            let decided = decide(app, config, uid, record);
            Routed::Ends(credentials(app, imds, config, &sharer, &name, decided, record).await)
        }
        Asked::Info => match decide(app, config, uid, record) {
            Ok(_) => Routed::Answered(imds.upstream.forward(config, req, v2).await),
            Err(refusal) => refusal.into(),
        },
        Asked::NotServed => Refusal::new(ErrorCode::NotFound, "not served through the agent").into(),
        Asked::Forward => Routed::Answered(imds.upstream.forward(config, req, v2).await),
    }
}

/// The rules' answer for the caller, with no location.
fn decide<S>(app: &App<S>, config: &Config, uid: u32, record: &mut CredentialRecord) -> Result<CacheKey, Refusal> {
    let identity = path::caller(app, uid, Instant::now(), record)?;
    // Metadata callers use the credentials for anything: read and write. With no location, no
    // access-grants rule matches: what the rules give is a session.
    match path::rule_key(app, config, &identity, None, None, record)? {
        (Wanted::Session(key), _) => Ok(key),
        (Wanted::Grant { .. }, _) => {
            Err(Refusal::new(ErrorCode::AccessDenied, "S3 Access Grants answer only for a location"))
        }
    }
}

/// What a request path asks for. Credential paths are recognised however they are written — any
/// version (`latest`, `2021-07-15`, …), doubled slashes, percent-encoding, `\` for `/`, any case — and
/// answered here or not at all. Only an allow-list of plainly written paths is forwarded.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    /// `<version>/meta-data/iam/security-credentials/`
    RoleName,
    /// `<version>/meta-data/iam/security-credentials/<name>`
    Credentials(String),
    /// `<version>/meta-data/iam/info`
    Info,
    /// Everything not answered here nor forwarded: 404.
    NotServed,
    /// On the allow-list: forwarded as it was written.
    Forward,
}

impl Asked {
    fn of(path: &str) -> Asked {
        let Ok(decoded) = percent_encoding::percent_decode_str(path).decode_utf8() else { return Asked::NotServed };
        let decoded = decoded.replace('\\', "/");
        let segments: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
        if segments.iter().any(|s| *s == "." || *s == "..") {
            return Asked::NotServed;
        }
        match segments.as_slice() {
            [v, "meta-data", "iam", "security-credentials"] if is_version(v) => return Asked::RoleName,
            [v, "meta-data", "iam", "security-credentials", name] if is_version(v) => {
                return Asked::Credentials((*name).to_owned())
            }
            [v, "meta-data", "iam", "info"] if is_version(v) => return Asked::Info,
            _ => {}
        }
        // Credentials in any other spelling or place are never passed on.
        if segments.iter().any(|s| s.to_ascii_lowercase().contains("credentials")) {
            return Asked::NotServed;
        }
        if forwardable(path) {
            Asked::Forward
        } else {
            Asked::NotServed
        }
    }
}

/// The allow-list: `/`, a version's listing, and `meta-data`, `dynamic` and `user-data` under a
/// version (`iam/` only as a listing), written plainly.
fn forwardable(path: &str) -> bool {
    let plain = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:=+,@".contains(&b))
    };
    let Some(rest) = path.strip_prefix('/') else { return false };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return true;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    if !segments.iter().all(|s| plain(s)) {
        return false;
    }
    match segments.as_slice() {
        [v] => is_version(v),
        [v, "meta-data" | "dynamic" | "user-data"] => is_version(v),
        [v, "meta-data", "iam"] => is_version(v),
        [_, "meta-data", "iam", ..] => false,
        [v, "meta-data" | "dynamic", ..] => is_version(v),
        _ => false,
    }
}

/// `latest`, `1.0`, or a dated version (`2021-07-15`).
fn is_version(s: &str) -> bool {
    let dated = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    s == "latest" || s == "1.0" || dated
}

/// `PUT /latest/api/token`.
fn issue_token<S: Sts>(app: &App<S>, imds: &Imds, uid: u32, headers: &HeaderMap) -> Result<Response<Body>, Refusal> {
    let ttl = headers.get(TOKEN_TTL).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let Some(ttl) = ttl.filter(|ttl| (1..=MAX_TOKEN_TTL).contains(ttl)) else {
        let message = format!("{TOKEN_TTL} must be a number of seconds from 1 to {MAX_TOKEN_TTL}");
        return Err(Refusal::new(ErrorCode::InvalidRequest, message));
    };
    let token = imds.tokens.issue(uid, unix_seconds(app.clock.now()) + ttl);
    let mut response = text(StatusCode::OK, token);
    response.headers_mut().insert(TOKEN_TTL, HeaderValue::from(ttl));
    Ok(response)
}

/// `GET /latest/meta-data/iam/security-credentials/<name>`: decided, fetched and recorded like
/// `/v1/credentials` without a location.
async fn credentials<S: Sts>(
    app: &App<S>,
    imds: &Imds,
    config: &Config,
    sharer: &Sharer,
    name: &str,
    decided: Result<CacheKey, Refusal>,
    record: &mut CredentialRecord,
) -> Result<Served, Refusal> {
    let key = decided?;
    let known = match &key {
        CacheKey::Role(key) => Some(key.role.name().to_owned()),
        CacheKey::InstanceProfile => imds.upstream.instance_profile_name(config).await,
        CacheKey::Grant(_) => None,
    };
    if known.as_deref() != Some(name) {
        return Err(Refusal::new(ErrorCode::NotFound, "no such role for this caller"));
    }
    path::fetch_in_time(app, config, Wanted::Session(key), sharer, record).await
}

/// SPEC §5.1: credentials as the metadata service writes them; a refusal as a status and a line of
/// text, a denial looking like a node without a role (404).
struct Answer;

impl Door for Answer {
    fn allow(&self, served: &Served, now: SystemTime) -> Response<Body> {
        let mut response = text(StatusCode::OK, served.session.imds_answer(&crate::text::expiration(now)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    fn refuse(&self, refusal: &Refusal) -> Response<Body> {
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
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    respond::text(status, "text/plain", body)
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
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
            "\\latest\\meta-data\\iam\\security-credentials\\",
        ] {
            assert_eq!(Asked::of(path), Asked::RoleName, "{path}");
        }
        for path in [
            "/latest/meta-data/iam/security-credentials/node-profile",
            "/1.0/meta-data/iam/security-credentials/node-profile",
            "/latest/meta-data/iam/security-credentials//node-profile/",
            "/latest/meta-data/iam/security-credentials%2Fnode-profile",
            "/latest/meta-data/iam\\security-credentials/node-profile",
            "/latest/meta-data/iam/security-credentials%5Cnode-profile",
        ] {
            assert_eq!(Asked::of(path), Asked::Credentials("node-profile".into()), "{path}");
        }
        assert_eq!(Asked::of("/2016-09-02/meta-data/iam/info"), Asked::Info);
    }

    /// Every spelling the node's service might read as a credentials path, and every path off the
    /// allow-list: none is forwarded.
    #[test]
    fn nothing_off_the_allow_list_is_forwarded() {
        for path in [
            "/LATEST/META-DATA/IAM/SECURITY-CREDENTIALS/x",
            "/latest/meta-data/IAM/security-credentials/x",
            "/latest/meta-data/iam/Security-Credentials/x",
            "/meta-data/iam/security-credentials/x",
            "/meta-data/iam/security-credentials/",
            "/iam/security-credentials/x",
            "/latest/iam/security-credentials/x",
            "\\LATEST\\meta-data\\iam\\security-credentials\\x",
            "/latest/meta-data\\iam\\SECURITY-CREDENTIALS/x",
            "/latest/meta-data/iam/%53ECURITY-CREDENTIALS/x",
            "/latest/meta-data/iam/security-credentials/x/y",
            "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
            "/2021-07-15/meta-data/identity-credentials/ec2/info",
            "/latest/meta-data/placement/../iam/security-credentials/node-profile",
            "/latest/meta-data/./iam/security-credentials/node-profile",
            "/latest/meta-data/iam/%ff",
            "/latest/meta-data/iam/anything",
            "/latest/meta-data/iam/info/x",
            "/LATEST/meta-data/placement/region",
            "/latest/Meta-Data/placement/region",
            "/latest//meta-data/placement/region",
            "/latest/meta-data/placement%2Fregion",
            "/latest/meta-data/placement\\region",
            "/latest/api/token",
            "/latest/other",
            "/v1/credentials",
            "/x/meta-data/placement/region",
            "latest/meta-data/placement/region",
        ] {
            assert_eq!(Asked::of(path), Asked::NotServed, "{path}");
        }
        for path in [
            "/",
            "/latest",
            "/latest/",
            "/latest/meta-data/",
            "/latest/meta-data/placement/region",
            "/latest/meta-data/placement/availability-zone",
            "/2021-07-15/meta-data/instance-id",
            "/latest/dynamic/instance-identity/document",
            "/latest/meta-data/iam/",
            "/latest/meta-data/iam",
            "/latest/user-data",
            "/latest/meta-data/tags/instance/aws:elasticmapreduce:job-flow-id",
        ] {
            assert_eq!(Asked::of(path), Asked::Forward, "{path}");
        }
    }
}
