//! The credential path both doors share: the HTTP API ([`crate::api`], SPEC §5) and the
//! instance-metadata listener ([`crate::imds`], SPEC §5.1) each parse their own protocol, then walk
//! the same steps — [`admit`] (who, within its share), [`caller`] (user and groups), [`rule_key`]
//! (which session the rules give), [`fetch`] (the cache, and through it STS) — and end in [`finish`],
//! the one place that writes the audit record, the metrics and the response, whatever the outcome.
//! A door says only how an answer is written ([`Door`]).
//!
//! Nothing here knows either door: they import this module, never the other way round.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::HeaderValue;
use http::Response;
use http_body_util::Full;

use crate::access::Access;
use crate::audit::{AuditLog, CredentialRecord, Event, Tally, Via};
use crate::cache::{CacheError, CacheKey, Served, SessionCache, Source};
use crate::caller::{Directory, Identity};
use crate::clock::Clock;
use crate::config::{Config, FallbackMode};
use crate::decision::{self, SessionKey, Verdict};
use crate::grants::Permission;
use crate::location::Location;
use crate::metrics::{Metrics, RequestLabels, ResultLabel};
use crate::node::NodeInfo;
use crate::refusal::{ErrorCode, Outcome, Refusal};
use crate::rules::Request as RuleRequest;
use crate::scope::Scope;
use crate::share::{CallerLimiter, Sharer};
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
    /// Each caller's share of requests (`server.max_requests_per_caller`, read at start).
    pub requests_per_caller: CallerLimiter,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub token: Token,
    pub node: NodeInfo,
    /// Set once the listeners are bound.
    pub listening: AtomicBool,
    next_request: AtomicU64,
    instance: String,
}

impl<S: Sts> App<S> {
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
            listening: AtomicBool::new(false),
            next_request: AtomicU64::new(1),
            // Request ids are unique across restarts: a random prefix per process.
            instance: format!("{:08x}", fastrand::u32(..)),
        }
    }
}

impl<S> App<S> {
    fn request_id(&self) -> String {
        format!("{}-{:x}", self.instance, self.next_request.fetch_add(1, Ordering::Relaxed))
    }

    /// The record of a new credentials request through `conn`'s door.
    pub fn record(&self, conn: &Conn) -> CredentialRecord {
        let via = match conn.endpoint {
            Endpoint::Api => Via::Api,
            Endpoint::Imds => Via::Imds,
        };
        CredentialRecord { request_id: self.request_id(), via, caller_uid: conn.uid().ok(), ..Default::default() }
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

/// How a door writes the two ends of the path.
pub trait Door {
    /// Credentials, as this door's clients expect them.
    fn allow(&self, served: &Served, now: SystemTime) -> Response<Body>;
    /// A refusal, as this door's clients expect it.
    fn refuse(&self, refusal: &Refusal) -> Response<Body>;
}

/// The uid the kernel named for the caller, or `Forbidden`.
pub fn identified(conn: &Conn) -> Result<u32, Refusal> {
    conn.uid().map_err(|e| Refusal::new(ErrorCode::Forbidden, format!("caller could not be identified: {e}")))
}

/// Whether `sharer` is within its share of requests: one local user — or one user behind a proxy —
/// cannot crowd out the others, whatever it sends.
pub fn admit<S>(app: &App<S>, sharer: &Sharer) -> Result<(), Refusal> {
    if app.requests_per_caller.allows(sharer) {
        return Ok(());
    }
    Err(Refusal::new(
        ErrorCode::Throttled,
        format!("too many requests from {sharer} (server.max_requests_per_caller); retry in a moment"),
    ))
}

/// The user and groups of `uid`, noted in `record`. The group cache runs on its own monotonic clock
/// (`instant`); its TTL is not decision time.
pub fn caller<S>(app: &App<S>, uid: u32, instant: Instant, record: &mut CredentialRecord) -> Result<Identity, Refusal> {
    let caller = app
        .directory
        .by_uid(uid, instant)
        .map_err(|e| Refusal::new(ErrorCode::CredentialsUnavailable, format!("looking up uid {uid}: {e}")))?;
    record.caller_user = Some(caller.user.clone());
    Ok(caller)
}

/// The credentials a request needs.
#[derive(Clone, Debug)]
pub enum Wanted {
    /// A session of the cache: an assumed role, or the node's own credentials.
    Session(CacheKey),
    /// What S3 Access Grants vend to the `grantee` session for `location` with `permission`.
    Grant { grantee: SessionKey, location: Location, permission: Permission },
}

/// What the rules give `identity` for `location` and `access` (`None`: read and write): the
/// credentials it needs and how far that answer holds, or the rules' refusal. Fills in `record`.
pub fn rule_key<S>(
    app: &App<S>,
    config: &Config,
    identity: &Identity,
    location: Option<&Location>,
    access: Option<Access>,
    record: &mut CredentialRecord,
) -> Result<(Wanted, Option<Scope>), Refusal> {
    record.user = Some(identity.user.clone());
    record.groups = Some(identity.groups.clone());

    let request = RuleRequest { user: &identity.user, groups: &identity.groups, location, access };
    let (verdict, scope) = decision::decide(config, &app.node, &request);
    // A refusal by the rules holds as far as the decision does.
    let denied = |message: String| Refusal {
        scope: scope.as_ref().map(ToString::to_string),
        ..Refusal::new(ErrorCode::AccessDenied, message)
    };
    let (rule, key, grants) = match verdict {
        Verdict::Fallback(FallbackMode::InstanceProfile) => {
            return Ok((Wanted::Session(CacheKey::InstanceProfile), scope))
        }
        Verdict::Fallback(FallbackMode::Deny) => {
            return Err(denied("no rule matched and fallback.mode is \"deny\"".into()))
        }
        Verdict::Deny { rule, .. } => (rule, None, false),
        Verdict::Allow { rule, key, .. } => (rule, Some(key), false),
        Verdict::AccessGrants { rule, grantee, .. } => (rule, Some(grantee), true),
    };
    record.rule_index = Some(rule.index);
    record.rule_name = Some(rule.name.clone());
    record.effect = Some(rule.effect.name());
    let Some(key) = key else {
        return Err(denied(format!("denied by rule {}", rule.name)));
    };
    record.role_arn = Some(key.role.as_str().to_owned());
    record.session_name = Some(key.session_name.clone());
    record.source_identity = key.source_identity.clone();
    let wanted = match (grants, location) {
        (true, Some(location)) => {
            Wanted::Grant { grantee: key, location: location.clone(), permission: Permission::for_access(access) }
        }
        _ => Wanted::Session(CacheKey::Role(key)),
    };
    Ok((wanted, scope))
}

/// [`fetch`] within `server.request_timeout`.
pub async fn fetch_in_time<S: Sts>(
    app: &App<S>,
    config: &Config,
    key: Wanted,
    sharer: &Sharer,
    record: &mut CredentialRecord,
) -> Result<Served, Refusal> {
    match tokio::time::timeout(config.server.request_timeout, fetch(app, key, sharer, record)).await {
        Ok(result) => result,
        Err(_) => Err(Refusal::new(
            ErrorCode::Timeout,
            format!("no answer within request_timeout ({:?})", config.server.request_timeout),
        )),
    }
}

/// The credentials `wanted`, from the cache, STS or S3 Access Grants; a call out comes out of
/// `sharer`'s share. The node's own credentials are reported as such whether cached or not.
async fn fetch<S: Sts>(
    app: &App<S>,
    wanted: Wanted,
    sharer: &Sharer,
    record: &mut CredentialRecord,
) -> Result<Served, Refusal> {
    let served = match &wanted {
        Wanted::Session(key) => app.cache.get(key, Some(sharer)).await,
        Wanted::Grant { grantee, location, permission } => {
            app.cache.grant(grantee, location, *permission, Some(sharer)).await
        }
    };
    let served = served.map_err(|e| cache_refusal(e, record))?;
    record.grant_target = served.session.grant_target.clone();
    Ok(match wanted {
        Wanted::Session(CacheKey::InstanceProfile) => Served { source: Source::InstanceProfile, ..served },
        _ => served,
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

/// The one place a credentials request ends, through either door and whatever its outcome: the audit
/// record (or, for a refusal before any decision, the caller's tally), the metrics, the response.
pub async fn finish<S>(
    app: &App<S>,
    mut record: CredentialRecord,
    result: Result<Served, Refusal>,
    door: &(dyn Door + Sync),
    started: Instant,
) -> Response<Body> {
    let now = app.clock.now();
    // Every record names its caller, however early the request ended.
    if let (Some(uid), None) = (record.caller_uid, &record.caller_user) {
        record.caller_user = app.directory.by_uid(uid, Instant::now()).ok().map(|identity| identity.user);
    }
    let mut response = match &result {
        Ok(served) => {
            let session = &served.session;
            record.outcome = Some(Outcome::Allow);
            record.status = 200;
            record.access_key_id = Some(session.access_key_id.clone());
            let response = door.allow(served, now);
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
            let response = door.refuse(refusal);
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
        Some(code) if crate::audit::tally::is_tallied(code) => {
            app.refusals.add(record.caller_uid, record.caller_user.as_deref(), code, &record.request_id, now);
        }
        // The record is lent to the audit log, not cloned (a clone of its ~20 strings was a
        // measurable share of a cached request).
        _ => {
            if let Err(e) = app.audit.write(&Event::Credentials(&record), now).await {
                let refusal = Refusal::new(ErrorCode::AuditUnavailable, e.to_string());
                response = door.refuse(&refusal);
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
