//! The HTTP API door (SPEC §5): `GET /v1/credentials` parsed and answered in the container-credentials
//! format, on the credential path every door shares ([`crate::path`]); and the admin endpoints
//! (`/healthz`, `/readyz`, `/metrics`), which need no token and reveal no secret.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, HOST};
use http::{Method, Request, Response, StatusCode};

use crate::access::Access;
use crate::audit::CredentialRecord;
use crate::cache::Served;
use crate::config::Config;
use crate::grants;
use crate::impersonation;
use crate::location::Location;
use crate::path::{self, App, Body, Conn, Door, Wanted};
use crate::refusal::{ErrorCode, Refusal};
use crate::respond;
use crate::scope::{self, Scope};
use crate::share::Sharer;
use crate::sts::Sts;

/// Routes one HTTP request to the API listener.
pub async fn handle<S: Sts>(app: &App<S>, conn: &Conn, req: Request<hyper::body::Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/v1/credentials" => credentials(app, conn, &req).await,
        "/healthz" | "/readyz" | "/metrics" if req.method() != Method::GET && req.method() != Method::HEAD => {
            error_response(&Refusal::new(ErrorCode::MethodNotAllowed, "use GET"))
        }
        "/healthz" => respond::text(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            let listening = app.listening.load(Ordering::Relaxed);
            let audit_ok = app.audit.is_healthy().await;
            if listening && audit_ok {
                respond::text(StatusCode::OK, "text/plain", "ready\n")
            } else {
                let why = if !listening { "not listening yet" } else { "audit log not writable" };
                respond::text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("not ready: {why}\n"))
            }
        }
        "/metrics" => {
            app.metrics.cache_sessions.set(app.cache.len() as i64);
            respond::text(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                app.metrics.encode(),
            )
        }
        _ => error_response(&Refusal::new(ErrorCode::NotFound, "no such path")),
    }
}

/// `GET /v1/credentials`: decides, fetches, and ends in [`path::finish`].
async fn credentials<S: Sts>(app: &App<S>, conn: &Conn, req: &Request<hyper::body::Incoming>) -> Response<Body> {
    let started = Instant::now();
    let config = app.config.load_full();
    let mut record = app.record(conn);
    // Deciding is synchronous; only the cache (and through it STS) is waited for, so only that
    // runs under request_timeout and only its state lives in this future.
    let mut scope = None;
    let result = match decide(app, &config, conn, req, &mut record) {
        Err(refusal) => Err(refusal),
        Ok(decided) => {
            scope = decided.scope;
            let location = match &decided.key {
                Wanted::Grant { location, .. } => Some(location.clone()),
                Wanted::Session(_) => None,
            };
            let served = path::fetch_in_time(app, &config, decided.key, &decided.sts_sharer, &mut record).await;
            // Credentials S3 Access Grants vended hold as far as the grant that matched, too.
            if let (Ok(served), Some(location)) = (&served, &location) {
                let covered = served.session.grant_target.as_deref().and_then(|t| grants::covered_prefix(t, location));
                scope = scope::narrowed(scope, location, covered);
            }
            served
        }
    };
    path::finish(app, record, result, &Answer { scope: scope.as_ref() }, started).await
}

/// What a request decided: the credentials it needs, how far the answer holds, and whose share of
/// STS calls a fetch takes: the caller uid's, whoever a proxy acts for — one proxy cannot spend the
/// account's STS budget on many users' sessions.
struct Decided {
    key: Wanted,
    scope: Option<Scope>,
    sts_sharer: Sharer,
}

/// Everything between the request and the cache: who asks, for what, under which rule, for
/// which session (the key of the credentials it needs), and how far that answer holds. Fills in
/// `record` as it learns.
fn decide<S: Sts>(
    app: &App<S>,
    config: &Config,
    conn: &Conn,
    req: &Request<hyper::body::Incoming>,
    record: &mut CredentialRecord,
) -> Result<Decided, Refusal> {
    // Who is asking: the kernel says which uid, the system which user and groups. Looked up
    // before anything else, so that every refusal (a bad Host, a guessed token) names its caller.
    check_origin(conn, req)?;
    let uid = path::identified(conn)?;
    let instant = Instant::now();
    let caller = path::caller(app, uid, instant, record)?;
    let query = Query::parse(req.uri().query().unwrap_or(""));
    // A proxy's requests come out of the share of the user it acts for: the tenants behind one
    // proxy uid cannot starve each other. Anyone else's come out of their uid's.
    let asserted = query.as_ref().ok().and_then(|q| q.user.as_deref()).filter(|u| *u != caller.user);
    let on_behalf_of = asserted.filter(|_| config.identity.trusted_proxy_users.contains(&caller.user));
    let sharer = Sharer { uid, on_behalf_of: on_behalf_of.map(Arc::from) };
    path::admit(app, &sharer)?;
    if config.server.require_token && !app.token.matches(req.headers().get(AUTHORIZATION), app.clock.now()) {
        return Err(Refusal::new(ErrorCode::Unauthorized, "missing or wrong Authorization token"));
    }
    if req.method() != Method::GET {
        return Err(Refusal::new(ErrorCode::MethodNotAllowed, "use GET"));
    }
    let query = query?;
    // A value from the request that could reach the audit log is bounded.
    if query.user.as_deref().is_some_and(|u| u.len() > MAX_USER_BYTES) {
        return Err(Refusal::new(ErrorCode::InvalidRequest, format!("user is longer than {MAX_USER_BYTES} bytes")));
    }
    let location = match &query.location {
        None => None,
        Some(raw) => {
            Some(Location::parse(raw).map_err(|e| Refusal::new(ErrorCode::InvalidRequest, format!("location: {e}")))?)
        }
    };
    record.location = location.as_ref().map(ToString::to_string);
    record.access = query.access;

    let identity = match &query.user {
        Some(asserted) if *asserted != caller.user => {
            record.user = Some(asserted.clone());
            record.asserted = true;
            impersonation::act_for(&config.identity, &caller.user, asserted, |name| {
                app.directory.by_name(name, instant)
            })?
        }
        _ => caller,
    };
    let (key, scope) = path::rule_key(app, config, &identity, location.as_ref(), query.access, record)?;
    Ok(Decided { key, scope, sts_sharer: Sharer::uid(uid) })
}

/// SPEC §5: the container-credentials JSON, with `Scope` when the request named a location.
struct Answer<'a> {
    scope: Option<&'a Scope>,
}

impl Door for Answer<'_> {
    fn allow(&self, served: &Served, _now: SystemTime) -> Response<Body> {
        // Rendered when the session was issued: a cached request copies a pointer.
        respond::json(StatusCode::OK, with_scope(served.session.answer(), self.scope))
    }

    fn refuse(&self, refusal: &Refusal) -> Response<Body> {
        error_response(refusal)
    }
}

/// Loopback peer; exactly one `Host`, a loopback one; an absolute-form target names a loopback
/// host too; no forwarding headers.
fn check_origin(conn: &Conn, req: &Request<hyper::body::Incoming>) -> Result<(), Refusal> {
    if !conn.peer.ip().is_loopback() && !is_mapped_loopback(conn.peer.ip()) {
        return Err(Refusal::new(ErrorCode::Forbidden, "only loopback clients are served"));
    }
    let headers = req.headers();
    if headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded") {
        return Err(Refusal::new(ErrorCode::Forbidden, "forwarded requests are refused"));
    }
    let mut hosts = headers.get_all(HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().unwrap_or(""),
        (None, _) => return Err(Refusal::new(ErrorCode::Forbidden, "a Host header is required")),
        (Some(_), Some(_)) => return Err(Refusal::new(ErrorCode::Forbidden, "exactly one Host header is allowed")),
    };
    if !is_loopback_host(host) {
        return Err(Refusal::new(ErrorCode::Forbidden, "Host must be a loopback address or localhost"));
    }
    if let Some(authority) = req.uri().authority() {
        if !is_loopback_host(authority.as_str()) {
            return Err(Refusal::new(ErrorCode::Forbidden, "the request target must name a loopback host"));
        }
    }
    Ok(())
}

fn is_mapped_loopback(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

/// `localhost`, `127.x.y.z` or `[::1]`, each with an optional numeric port; nothing else (no user
/// info, no other name, no second colon).
fn is_loopback_host(host: &str) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, "")) => (inside, None),
            Some((inside, after)) => match after.strip_prefix(':') {
                Some(port) => (inside, Some(port)),
                None => return false,
            },
            None => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok());
    port_ok && (name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
}

/// The query string: only `location` and `user`, each at most once.
#[derive(Debug, Default)]
struct Query {
    location: Option<String>,
    user: Option<String>,
    access: Option<Access>,
}

impl Query {
    fn parse(raw: &str) -> Result<Query, Refusal> {
        let bad = |m: String| Refusal::new(ErrorCode::InvalidRequest, m);
        let mut query = Query::default();
        let mut access = None;
        // One percent-decoding, the query's own: what results is the location's literal text (SPEC §5).
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            let slot = match &*name {
                "location" => &mut query.location,
                "user" => &mut query.user,
                "access" => &mut access,
                other => return Err(bad(format!("unknown parameter {:?}", truncate(other, 64)))),
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(bad(format!("parameter {name} given twice")));
            }
        }
        query.access = access.map(|a| truncate(&a, 64).parse::<Access>()).transpose().map_err(bad)?;
        if query.user.as_deref() == Some("") {
            return Err(bad("user must not be empty".into()));
        }
        Ok(query)
    }
}

/// The query-string parser of `/v1/credentials`, for the fuzz targets and tests: `(location, user)`
/// as given, or the `InvalidRequest` message.
#[doc(hidden)]
pub fn parse_query(raw: &str) -> Result<(Option<String>, Option<String>), String> {
    Query::parse(raw).map(|q| (q.location, q.user)).map_err(|r| r.message)
}

/// The longest `user=` accepted (user names are far shorter: 32 bytes on Linux).
const MAX_USER_BYTES: usize = 256;

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The session's answer with `"Scope"` added when the request had one (the rendered answer is
/// shared by every request the session serves; the scope is this request's).
fn with_scope(answer: Bytes, scope: Option<&Scope>) -> Bytes {
    let Some(scope) = scope else { return answer };
    let Some(open) = answer.strip_suffix(b"}") else { return answer };
    let mut body = Vec::with_capacity(answer.len() + 64);
    body.extend_from_slice(open);
    body.extend_from_slice(b",\"Scope\":");
    serde_json::to_writer(&mut body, &scope.to_string()).expect("a string serialises");
    body.push(b'}');
    body.into()
}

fn error_response(refusal: &Refusal) -> Response<Body> {
    let mut response = respond::json(refusal.code.status(), refusal.body());
    if refusal.code == ErrorCode::Throttled {
        response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "localhost",
            "localhost:9944",
            "127.0.0.1",
            "127.0.0.1:9944",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:9944",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.com",
            "evil.com:9944",
            "10.0.0.1:9944",
            "[::2]:1",
            "localhost.evil.com",
            "[::1",
            "169.254.169.254",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn query() {
        let q = Query::parse("location=s3%3A%2F%2Fb%2Fk&user=etl").unwrap();
        assert_eq!(q.location.as_deref(), Some("s3://b/k"));
        assert_eq!(q.user.as_deref(), Some("etl"));
        assert_eq!(Query::parse("foo=1").unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(Query::parse("user=a&user=b").unwrap_err().code, ErrorCode::InvalidRequest);
        assert!(Query::parse("").unwrap().location.is_none());
    }

    #[test]
    fn query_decodes_the_location_once() {
        // What a client sends for the key `x%2Fy/100%off+c é` (encoded once, `+` as %2B).
        let q = Query::parse("location=s3%3A%2F%2Flake%2Fx%252Fy%2F100%25off%2Bc+%C3%A9").unwrap();
        assert_eq!(q.location.as_deref(), Some("s3://lake/x%2Fy/100%off+c é"));
        assert_eq!(Location::parse(q.location.as_deref().unwrap()).unwrap().key(), "x%2Fy/100%off+c é");
    }

    #[test]
    fn query_access() {
        assert_eq!(Query::parse("access=read").unwrap().access, Some(Access::Read));
        assert_eq!(Query::parse("access=write&location=s3://b/k").unwrap().access, Some(Access::Write));
        assert_eq!(Query::parse("").unwrap().access, None);
        for bad in ["access=", "access=rw", "access=read&access=write", "access=READ"] {
            assert_eq!(Query::parse(bad).unwrap_err().code, ErrorCode::InvalidRequest, "{bad}");
        }
    }
}
