//! One credentials request, from the connection to the response.
//!
//! `caller → rules → cache → response`, and [`finish`] is the one place that writes the audit
//! record, the metrics and the response: every request to `/v1/credentials`, whatever its
//! outcome, passes through it exactly once. Admin endpoints (`/healthz`, `/readyz`,
//! `/metrics`) need no token and reveal no secret.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::access::Access;
use crate::audit::{AuditLog, CredentialRecord, Event};
use crate::cache::{CacheError, CacheKey, Served, SessionCache, Source};
use crate::caller::{Directory, Identity};
use crate::clock::Clock;
use crate::config::{Config, FallbackMode};
use crate::decision::{self, Verdict};
use crate::imds;
use crate::location::Location;
use crate::metrics::{Metrics, RequestLabels, ResultLabel};
use crate::node::NodeInfo;
use crate::refusal::{ErrorCode, Outcome, Refusal};
use crate::refusals::{self, Tally};
use crate::rules::{Effect, Request as RuleRequest};
use crate::scope::Scope;
use crate::share::CallerLimiter;
use crate::sts::Sts;
use crate::token::Token;

pub type Body = Full<Bytes>;

/// Everything a request needs. The configuration is swapped atomically on reload; a request
/// keeps the one it started with.
pub struct App<S> {
    pub config: ArcSwap<Config>,
    pub cache: SessionCache<S>,
    pub directory: Directory,
    pub audit: AuditLog,
    /// Refusals before any decision, written once a second per caller.
    pub refusals: Tally,
    /// Each caller uid's share of requests (`server.max_requests_per_caller`, read at start).
    pub requests_per_caller: CallerLimiter,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub token: Token,
    pub node: NodeInfo,
    /// The instance-metadata listener's token key and upstream client.
    pub imds: imds::Imds,
    /// Set once the listeners are bound.
    pub listening: AtomicBool,
    next_request: AtomicU64,
    instance: String,
}

impl<S: Sts> App<S> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Arc<Config>,
        cache: SessionCache<S>,
        audit: AuditLog,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        node: NodeInfo,
    ) -> App<S> {
        let token = Token::new(config.server.token_file.clone());
        App {
            directory: Directory::new(config.identity.group_cache_ttl),
            requests_per_caller: CallerLimiter::per_second(config.server.max_requests_per_caller),
            config: ArcSwap::new(config),
            cache,
            audit,
            refusals: Tally::default(),
            metrics,
            clock,
            token,
            node,
            imds: imds::Imds::default(),
            listening: AtomicBool::new(false),
            next_request: AtomicU64::new(1),
            // Request ids are unique across restarts: a random prefix per process.
            instance: format!("{:08x}", fastrand::u32(..)),
        }
    }

    pub(crate) fn request_id(&self) -> String {
        format!("{}-{:x}", self.instance, self.next_request.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The HTTP API (SPEC §5): `/v1/credentials` and the admin paths.
    Api,
    /// The instance-metadata listener (SPEC §5.1).
    Imds,
}

/// A client connection: which listener took it, its addresses, and its owner's uid as the kernel
/// said when it was accepted (or why it could not say).
pub struct Conn {
    pub endpoint: Endpoint,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    uid: Result<u32, String>,
}

impl Conn {
    pub fn new(endpoint: Endpoint, local: SocketAddr, peer: SocketAddr, uid: std::io::Result<u32>) -> Conn {
        Conn { endpoint, local, peer, uid: uid.map_err(|e| e.to_string()) }
    }

    /// The uid owning the client's socket.
    pub fn uid(&self) -> Result<u32, &str> {
        self.uid.as_ref().copied().map_err(String::as_str)
    }
}

/// Routes one HTTP request.
pub async fn handle<S: Sts>(app: &App<S>, conn: &Conn, req: Request<hyper::body::Incoming>) -> Response<Body> {
    if conn.endpoint == Endpoint::Imds {
        return imds::handle(app, conn, req).await;
    }
    match req.uri().path() {
        "/v1/credentials" => credentials(app, conn, &req).await,
        "/healthz" | "/readyz" | "/metrics" if req.method() != Method::GET && req.method() != Method::HEAD => {
            error_response(&Refusal::new(ErrorCode::MethodNotAllowed, "use GET"))
        }
        "/healthz" => text_response(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            let listening = app.listening.load(Ordering::Relaxed);
            let audit_ok = app.audit.is_healthy().await;
            if listening && audit_ok {
                text_response(StatusCode::OK, "text/plain", "ready\n")
            } else {
                let why = if !listening { "not listening yet" } else { "audit log not writable" };
                text_response(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("not ready: {why}\n"))
            }
        }
        "/metrics" => {
            app.metrics.cache_sessions.set(app.cache.len() as i64);
            text_response(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                app.metrics.encode(),
            )
        }
        _ => error_response(&Refusal::new(ErrorCode::NotFound, "no such path")),
    }
}

/// `GET /v1/credentials`: decides, fetches, and ends in [`finish`].
async fn credentials<S: Sts>(app: &App<S>, conn: &Conn, req: &Request<hyper::body::Incoming>) -> Response<Body> {
    let started = Instant::now();
    let config = app.config.load_full();
    let mut record = CredentialRecord { request_id: app.request_id(), ..Default::default() };
    // Deciding is synchronous; only the cache (and through it STS) is waited for, so only that
    // runs under request_timeout and only its state lives in this future.
    let mut scope = None;
    let result = match decide(app, &config, conn, req, &mut record) {
        Err(refusal) => Err(refusal),
        Ok((key, decided_scope)) => {
            scope = decided_scope;
            fetch_in_time(app, &config, key, &mut record).await
        }
    };
    finish(app, record, result, Answer::Api { scope: scope.as_ref() }, started).await
}

/// [`fetch`] within `server.request_timeout`.
pub(crate) async fn fetch_in_time<S: Sts>(
    app: &App<S>,
    config: &Config,
    key: CacheKey,
    record: &mut CredentialRecord,
) -> Result<Served, Refusal> {
    match tokio::time::timeout(config.server.request_timeout, fetch(app, key, record)).await {
        Ok(result) => result,
        Err(_) => Err(Refusal::new(
            ErrorCode::Timeout,
            format!("no answer within request_timeout ({:?})", config.server.request_timeout),
        )),
    }
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
) -> Result<(CacheKey, Option<Scope>), Refusal> {
    // Who is asking: the kernel says which uid, the system which user and groups. Looked up
    // before anything else, so that every refusal (a bad Host, a guessed token) names its caller.
    record.caller_uid = conn.uid().ok();
    check_origin(conn, req)?;
    let uid = admit(app, conn)?;
    let instant = Instant::now();
    let caller = caller(app, uid, instant, record)?;
    if config.server.require_token && !app.token.matches(req.headers().get(AUTHORIZATION), app.clock.now()) {
        return Err(Refusal::new(ErrorCode::Unauthorized, "missing or wrong Authorization token"));
    }
    if req.method() != Method::GET {
        return Err(Refusal::new(ErrorCode::MethodNotAllowed, "use GET"));
    }
    let query = Query::parse(req.uri().query().unwrap_or(""))?;
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
            if !config.identity.trusted_proxy_users.contains(&caller.user) {
                return Err(Refusal::new(
                    ErrorCode::ImpersonationDenied,
                    format!("user {} may not ask for user {asserted}", caller.user),
                ));
            }
            let identity = app.directory.by_name(asserted, instant).map_err(|e| {
                Refusal::new(ErrorCode::CredentialsUnavailable, format!("looking up user {asserted}: {e}"))
            })?;
            // Root and the system's own accounts are never anyone's to ask for, named or numbered.
            let uid = identity.uid.or_else(|| asserted.strip_prefix("uid:").and_then(|n| n.parse().ok()));
            if uid.is_some_and(|uid| uid < config.identity.min_asserted_uid) {
                return Err(Refusal::new(
                    ErrorCode::ImpersonationDenied,
                    format!(
                        "a proxy never acts for root or an account below uid {} (identity.min_asserted_uid)",
                        config.identity.min_asserted_uid
                    ),
                ));
            }
            // Like Hadoop's proxyuser settings: a proxy may be limited to some users and groups.
            if let Some(scope) = config.identity.proxies.get(&caller.user) {
                if !scope.allows(&identity.user, &identity.groups) {
                    return Err(Refusal::new(
                        ErrorCode::ImpersonationDenied,
                        format!(
                            "user {} may act only for the users and groups of identity.proxies.{}",
                            caller.user, caller.user
                        ),
                    ));
                }
            }
            identity
        }
        _ => caller,
    };
    rule_key(app, config, &identity, location.as_ref(), record)
}

/// The caller's uid, if the kernel named one and it is within its share of requests: one local
/// user cannot crowd out the others, whatever it sends.
pub(crate) fn admit<S>(app: &App<S>, conn: &Conn) -> Result<u32, Refusal> {
    let uid =
        conn.uid().map_err(|e| Refusal::new(ErrorCode::Forbidden, format!("caller could not be identified: {e}")))?;
    if !app.requests_per_caller.allows(uid) {
        return Err(Refusal::new(
            ErrorCode::Throttled,
            format!("too many requests from uid {uid} (server.max_requests_per_caller); retry in a moment"),
        ));
    }
    Ok(uid)
}

/// The user and groups of `uid`, noted in `record`. The group cache runs on its own monotonic clock
/// (`instant`); its TTL is not decision time.
pub(crate) fn caller<S>(
    app: &App<S>,
    uid: u32,
    instant: Instant,
    record: &mut CredentialRecord,
) -> Result<Identity, Refusal> {
    let caller = app
        .directory
        .by_uid(uid, instant)
        .map_err(|e| Refusal::new(ErrorCode::CredentialsUnavailable, format!("looking up uid {uid}: {e}")))?;
    record.caller_user = Some(caller.user.clone());
    Ok(caller)
}

/// What the rules give `identity` for `location`: the key of the credentials it gets and how far
/// that answer holds, or the rules' refusal. Fills in `record`.
pub(crate) fn rule_key<S>(
    app: &App<S>,
    config: &Config,
    identity: &Identity,
    location: Option<&Location>,
    record: &mut CredentialRecord,
) -> Result<(CacheKey, Option<Scope>), Refusal> {
    record.user = Some(identity.user.clone());
    record.groups = Some(identity.groups.clone());

    let request = RuleRequest { user: &identity.user, groups: &identity.groups, location };
    let (verdict, scope) = decision::decide(config, &app.node, &request);
    // A refusal by the rules holds as far as the decision does.
    let denied = |message: String| Refusal {
        scope: scope.as_ref().map(ToString::to_string),
        ..Refusal::new(ErrorCode::AccessDenied, message)
    };
    let (rule, key) = match verdict {
        Verdict::Fallback(FallbackMode::InstanceProfile) => return Ok((CacheKey::InstanceProfile, scope)),
        Verdict::Fallback(FallbackMode::Deny) => {
            return Err(denied("no rule matched and fallback.mode is \"deny\"".into()))
        }
        Verdict::Deny { rule, .. } => (rule, None),
        Verdict::Allow { rule, key, .. } => (rule, Some(key)),
    };
    record.rule_index = Some(rule.index);
    record.rule_name = Some(rule.name.clone());
    record.effect = Some(match rule.effect {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    });
    let Some(key) = key else {
        return Err(denied(format!("denied by rule {}", rule.name)));
    };
    record.role_arn = Some(key.role.as_str().to_owned());
    record.session_name = Some(key.session_name.clone());
    record.source_identity = key.source_identity.clone();
    Ok((CacheKey::Role(key), scope))
}

/// The credentials for `key`, from the cache or STS. The node's own credentials are reported as
/// such whether cached or not.
pub(crate) async fn fetch<S: Sts>(
    app: &App<S>,
    key: CacheKey,
    record: &mut CredentialRecord,
) -> Result<Served, Refusal> {
    let served = app.cache.get(&key, record.caller_uid).await.map_err(|e| cache_refusal(e, record))?;
    Ok(match key {
        CacheKey::Role(_) => served,
        CacheKey::InstanceProfile => Served { source: Source::InstanceProfile, ..served },
    })
}

fn cache_refusal(err: CacheError, record: &mut CredentialRecord) -> Refusal {
    match err {
        CacheError::Denied(e) => {
            record.sts_request_id = e.request_id().map(str::to_owned);
            Refusal::new(ErrorCode::AccessDenied, e.to_string())
        }
        CacheError::Unavailable(e) => {
            Refusal::new(ErrorCode::CredentialsUnavailable, format!("no valid credentials: {e}"))
        }
        throttled @ CacheError::Throttled(_) => Refusal::new(ErrorCode::Throttled, throttled.to_string()),
    }
}

/// The one place a credentials request ends: audit record, metrics, response.
pub(crate) async fn finish<S: Sts>(
    app: &App<S>,
    mut record: CredentialRecord,
    result: Result<Served, Refusal>,
    answer: Answer<'_>,
    started: Instant,
) -> Response<Body> {
    let now = app.clock.now();
    let mut response = match &result {
        Ok(served) => {
            let session = &served.session;
            record.outcome = Some(Outcome::Allow);
            record.status = 200;
            record.access_key_id = Some(session.access_key_id.clone());
            let response = answer.allow(served, now);
            record.expiration = Some(session.expiration_text.clone());
            record.source = Some(served.source.as_str());
            record.sts_request_id = served.session.request_id.clone();
            let lookup = match served.source {
                Source::Cache => "hit",
                Source::Sts => "miss",
                Source::Stale => "stale",
                Source::InstanceProfile => "instance-profile",
            };
            app.metrics.cache_lookups.get_or_create(&ResultLabel { result: lookup }).inc();
            response
        }
        Err(refusal) => {
            let response = answer.refuse(refusal);
            record.outcome = Some(refusal.code.outcome());
            record.status = response.status().as_u16();
            record.error_code = Some(refusal.code);
            response
        }
    };
    record.latency_us = started.elapsed().as_micros() as u64;
    match record.error_code {
        // A refusal before any decision is counted for its caller, not written on its own: a flood of
        // them must not fill the disk (they hand out nothing, so they need not wait for the log).
        Some(code) if refusals::is_tallied(code) => {
            app.refusals.add(record.caller_uid, record.caller_user.as_deref(), code, &record.request_id, now);
        }
        // The record is lent to the audit log, not cloned (a clone of its ~20 strings was a
        // measurable share of a cached request).
        _ => {
            if let Err(e) = app.audit.write(&Event::Credentials(&record), now).await {
                let refusal = Refusal::new(ErrorCode::AuditUnavailable, e.to_string());
                response = answer.refuse(&refusal);
                record.status = response.status().as_u16();
                record.error_code = Some(refusal.code);
                record.outcome = Some(refusal.code.outcome());
            }
        }
    }
    let code = record.error_code.map_or("OK", ErrorCode::as_str);
    app.metrics
        .requests
        .get_or_create(&RequestLabels { outcome: record.outcome.unwrap_or(Outcome::Error).as_str(), code })
        .inc();
    app.metrics.request_duration.observe(started.elapsed().as_secs_f64());
    // The audit record's request id, so a client's answer can be found in the log.
    if let Ok(id) = HeaderValue::from_str(&record.request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

/// How a credentials answer is written for the door it came through.
pub(crate) enum Answer<'a> {
    /// SPEC §5: the container-credentials JSON, with `Scope` when the request named a location.
    Api { scope: Option<&'a Scope> },
    /// SPEC §5.1: the instance-metadata credentials JSON.
    Imds,
}

impl Answer<'_> {
    fn allow(&self, served: &Served, now: std::time::SystemTime) -> Response<Body> {
        match self {
            // Rendered when the session was issued: a cached request copies a pointer.
            Answer::Api { scope } => json_response(StatusCode::OK, with_scope(served.session.answer(), *scope)),
            Answer::Imds => imds::credentials_response(&served.session, now),
        }
    }

    fn refuse(&self, refusal: &Refusal) -> Response<Body> {
        match self {
            Answer::Api { .. } => error_response(refusal),
            Answer::Imds => imds::error_response(refusal),
        }
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

pub(crate) fn error_response(refusal: &Refusal) -> Response<Body> {
    let mut response = json_response(refusal.code.status(), refusal.body());
    if refusal.code == ErrorCode::Throttled {
        response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = text_response(status, "application/json", body);
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn text_response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
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
