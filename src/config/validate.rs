//! Validation: the raw TOML ([`super::raw`]) into the checked [`Config`], one function per section.
//! Every default comes from the section's `Default` (in [`super`]); every error names the file, line,
//! column and key.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw::{
    RawAccessGrants, RawAudit, RawCache, RawConfig, RawFallback, RawIdentity, RawImds, RawMapping, RawServer, RawShip,
    RawSts, S,
};
use super::{
    AccessGrantsConfig, AuditConfig, AuditFormat, AuditPath, CacheConfig, Config, ConfigError, Durability,
    FallbackMode, IdentityConfig, ImdsConfig, Privilege, ProxyScope, ServerConfig, ShipConfig, StsConfig, Upstream,
};
use crate::access::Access;
use crate::emr;
use crate::policy;
use crate::rules::{Effect, Prefix, RoleArn, Rule, RuleSet};
use crate::template::Template;
use crate::text::{format_duration, line_col, parse_duration};

/// Where errors point: the text (for line/column) and its file.
pub(super) struct Ctx<'a> {
    pub(super) text: &'a str,
    pub(super) file: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn err(&self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError {
            file: self.file.to_owned(),
            line: Some(line),
            column: Some(column),
            key: key.into(),
            message: message.into(),
        }
    }

    fn duration(&self, v: &Option<S<String>>, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(s.get_ref())
                .map_err(|m| self.err(s.span(), key, format!("invalid duration '{}': {m}", s.get_ref()))),
        }
    }

    fn int(&self, v: &Option<S<i64>>, key: &str, default: i64, range: Range<i64>) -> Result<i64, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) if range.contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(self.err(
                s.span(),
                key,
                format!("{} is out of range (allowed {}..={})", s.get_ref(), range.start, range.end - 1),
            )),
        }
    }
}

/// The checked configuration of `raw`; `mappings` is the path and content of its `mappings_file`.
pub(super) fn build(ctx: &Ctx<'_>, raw: RawConfig, mappings: Option<(&Path, &str)>) -> Result<Config, ConfigError> {
    let server = server(ctx, &raw.server)?;
    let identity = identity(ctx, &raw.identity)?;
    let sts = sts(ctx, &raw.sts, &raw.server, &server)?;
    let cache = cache(ctx, &raw.cache)?;
    let audit = audit(ctx, &raw.audit)?;
    let fallback = fallback(ctx, &raw.fallback)?;
    let imds = imds(ctx, &raw.imds, &server)?;
    let access_grants = access_grants(ctx, &raw.access_grants)?;
    let (rules, mappings_file) = rules(ctx, &raw.mapping, raw.mappings_file.as_ref(), mappings, &sts)?;
    // Vended credentials with less than sts.refresh_before_expiry left are fetched again: with an
    // access-grants rule, they must last long enough to be served from the cache.
    let grants_used = rules.rules().iter().any(|r| matches!(r.effect, Effect::AccessGrants(_)));
    let duration = access_grants.duration;
    if grants_used && !refresh_fits(sts.refresh_before_expiry, duration) {
        let span = raw.access_grants.duration.as_ref().map(Spanned::span);
        return Err(ctx.err(
            span.unwrap_or(0..0),
            "access_grants.duration",
            format!(
                "{} is too short for sts.refresh_before_expiry ({}): refreshing starts that long before expiry, \
                 which must be at most three quarters of the duration",
                format_duration(duration),
                format_duration(sts.refresh_before_expiry)
            ),
        ));
    }
    Ok(Config {
        source: ctx.file.to_owned(),
        server,
        identity,
        sts,
        cache,
        audit,
        fallback,
        imds,
        access_grants,
        rules,
        mappings_file,
    })
}

fn access_grants(ctx: &Ctx<'_>, rg: &RawAccessGrants) -> Result<AccessGrantsConfig, ConfigError> {
    let d = AccessGrantsConfig::default();
    let duration = ctx.duration(&rg.duration, "access_grants.duration", d.duration)?;
    // What GetDataAccess takes (durationSeconds 900 to 43200).
    let span = rg.duration.as_ref().map(Spanned::span);
    check_session_duration(ctx, duration, span, "access_grants.duration")?;
    Ok(AccessGrantsConfig {
        endpoint_url: url(ctx, &rg.endpoint_url, "access_grants.endpoint_url")?,
        privilege: choice(
            ctx,
            &rg.privilege,
            "access_grants.privilege",
            d.privilege,
            &[("default", Privilege::Default), ("minimal", Privilege::Minimal)],
        )?,
        duration,
    })
}

/// An `http://` or `https://` URL, or `None` when empty.
fn url(ctx: &Ctx<'_>, v: &Option<S<String>>, key: &str) -> Result<Option<String>, ConfigError> {
    match v {
        Some(u) if !u.get_ref().is_empty() => {
            let v = u.get_ref();
            let host = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
            if host.is_none_or(str::is_empty) || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ctx.err(u.span(), key, format!("'{v}' is not an http:// or https:// URL")));
            }
            Ok(Some(v.clone()))
        }
        _ => Ok(None),
    }
}

fn server(ctx: &Ctx<'_>, rs: &RawServer) -> Result<ServerConfig, ConfigError> {
    let source = ctx.file;
    let d = ServerConfig::default();

    let listen = match &rs.listen {
        None => d.listen,
        Some(list) => {
            if list.get_ref().is_empty() {
                return Err(ctx.err(list.span(), "server.listen", "needs at least one address"));
            }
            let mut out: Vec<SocketAddr> = Vec::new();
            for (i, a) in list.get_ref().iter().enumerate() {
                let key = format!("server.listen[{i}]");
                let addr: SocketAddr = a.get_ref().parse().map_err(|_| {
                    ctx.err(
                        a.span(),
                        &key,
                        format!("'{}' is not an address:port (e.g. 127.0.0.1:9944 or [::1]:9944)", a.get_ref()),
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(ctx.err(
                        a.span(),
                        &key,
                        format!("'{}' is not a loopback address (only 127.0.0.0/8 and ::1 are allowed)", a.get_ref()),
                    ));
                }
                if out.contains(&addr) {
                    return Err(ctx.err(a.span(), &key, format!("'{}' is listed twice", a.get_ref())));
                }
                out.push(addr);
            }
            out
        }
    };
    let token_file = match &rs.token_file {
        None => d.token_file,
        Some(s) if s.get_ref().is_empty() => return Err(ctx.err(s.span(), "server.token_file", "must not be empty")),
        Some(s) => resolve(source, s.get_ref()),
    };
    Ok(ServerConfig {
        listen,
        token_file,
        require_token: rs.require_token.unwrap_or(d.require_token),
        max_connections: ctx.int(
            &rs.max_connections,
            "server.max_connections",
            d.max_connections as i64,
            1..1_000_001,
        )? as usize,
        max_connections_per_caller: ctx.int(
            &rs.max_connections_per_caller,
            "server.max_connections_per_caller",
            d.max_connections_per_caller as i64,
            1..1_000_001,
        )? as usize,
        max_requests_per_caller: ctx.int(
            &rs.max_requests_per_caller,
            "server.max_requests_per_caller",
            d.max_requests_per_caller.into(),
            1..1_000_001,
        )? as u32,
        header_read_timeout: positive(
            ctx,
            &rs.header_read_timeout,
            "server.header_read_timeout",
            d.header_read_timeout,
        )?,
        request_timeout: positive(ctx, &rs.request_timeout, "server.request_timeout", d.request_timeout)?,
    })
}

fn identity(ctx: &Ctx<'_>, ri: &RawIdentity) -> Result<IdentityConfig, ConfigError> {
    let d = IdentityConfig::default();

    let mut trusted_proxy_users = Vec::new();
    for (i, u) in ri.trusted_proxy_users.iter().flatten().enumerate() {
        let v = u.get_ref();
        if v.is_empty() || v.chars().any(char::is_whitespace) {
            return Err(ctx.err(
                u.span(),
                format!("identity.trusted_proxy_users[{i}]"),
                format!("invalid user name '{v}'"),
            ));
        }
        trusted_proxy_users.push(v.clone());
    }
    let mut proxies = std::collections::BTreeMap::new();
    for (proxy, raw) in ri.proxies.iter().flatten() {
        let key = format!("identity.proxies.{proxy}");
        let span = raw.users.iter().chain(raw.groups.iter()).flatten().next().map_or(0..0, Spanned::span);
        if !trusted_proxy_users.contains(proxy) {
            return Err(ctx.err(span, key, format!("'{proxy}' is not in identity.trusted_proxy_users")));
        }
        let names = |field: &str, list: &Option<Vec<S<String>>>| -> Result<Vec<String>, ConfigError> {
            let mut out = Vec::new();
            for (j, v) in list.iter().flatten().enumerate() {
                if v.get_ref().is_empty() || v.get_ref().chars().any(char::is_whitespace) {
                    return Err(ctx.err(
                        v.span(),
                        format!("{key}.{field}[{j}]"),
                        format!("invalid name '{}'", v.get_ref()),
                    ));
                }
                out.push(v.get_ref().clone());
            }
            Ok(out)
        };
        let scope = ProxyScope { users: names("users", &raw.users)?, groups: names("groups", &raw.groups)? };
        if scope.users.is_empty() && scope.groups.is_empty() {
            return Err(ctx.err(
                span,
                key,
                "names no users and no groups: it could act for nobody (remove it from trusted_proxy_users instead)",
            ));
        }
        proxies.insert(proxy.clone(), scope);
    }
    Ok(IdentityConfig {
        trusted_proxy_users,
        proxies,
        min_asserted_uid: ctx.int(
            &ri.min_asserted_uid,
            "identity.min_asserted_uid",
            d.min_asserted_uid.into(),
            1..i64::from(u32::MAX) + 1,
        )? as u32,
        group_cache_ttl: ctx.duration(&ri.group_cache_ttl, "identity.group_cache_ttl", d.group_cache_ttl)?,
    })
}

fn sts(ctx: &Ctx<'_>, st: &RawSts, raw_server: &RawServer, server: &ServerConfig) -> Result<StsConfig, ConfigError> {
    let d = StsConfig::default();

    let region = match &st.region {
        Some(r) if !r.get_ref().is_empty() => {
            let v = r.get_ref();
            if !v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') || !v.contains('-') {
                return Err(ctx.err(r.span(), "sts.region", format!("'{v}' is not a region name (e.g. us-east-1)")));
            }
            Some(v.clone())
        }
        _ => None,
    };
    let endpoint_url = url(ctx, &st.endpoint_url, "sts.endpoint_url")?;
    let session_duration = ctx.duration(&st.session_duration, "sts.session_duration", d.session_duration)?;
    let session_span = st.session_duration.as_ref().map(Spanned::span);
    check_session_duration(ctx, session_duration, session_span.clone(), "sts.session_duration")?;
    let refresh_before_expiry =
        ctx.duration(&st.refresh_before_expiry, "sts.refresh_before_expiry", d.refresh_before_expiry)?;
    let refresh_span = st.refresh_before_expiry.as_ref().map(Spanned::span);
    if refresh_before_expiry <= FIFTEEN_MINUTES {
        return Err(ctx.err(
            refresh_span.clone().unwrap_or(0..0),
            "sts.refresh_before_expiry",
            "must be more than 15m: clients refetch credentials with less than 15 minutes left on every call",
        ));
    }
    if !refresh_fits(refresh_before_expiry, session_duration) {
        return Err(ctx.err(
            refresh_span.clone().or(session_span).unwrap_or(0..0),
            "sts.refresh_before_expiry",
            format!(
                "{} must be at most three quarters of sts.session_duration ({}): refreshes start up to 10% \
                 early, and a session should serve a while before it is replaced",
                format_duration(refresh_before_expiry),
                format_duration(session_duration)
            ),
        ));
    }
    let min_remaining_when_stale =
        ctx.duration(&st.min_remaining_when_stale, "sts.min_remaining_when_stale", d.min_remaining_when_stale)?;
    if min_remaining_when_stale >= refresh_before_expiry {
        return Err(ctx.err(
            st.min_remaining_when_stale.as_ref().map(Spanned::span).or(refresh_span).unwrap_or(0..0),
            "sts.min_remaining_when_stale",
            format!(
                "{} must be less than sts.refresh_before_expiry ({})",
                format_duration(min_remaining_when_stale),
                format_duration(refresh_before_expiry)
            ),
        ));
    }
    let session_name = match &st.session_name {
        None => d.session_name,
        Some(t) => Template::parse(t.get_ref()).map_err(|m| ctx.err(t.span(), "sts.session_name", m))?,
    };
    let source_identity = match &st.source_identity {
        Some(t) if !t.get_ref().is_empty() => {
            Some(Template::parse(t.get_ref()).map_err(|m| ctx.err(t.span(), "sts.source_identity", m))?)
        }
        _ => None,
    };
    let call_timeout = positive(ctx, &st.call_timeout, "sts.call_timeout", d.call_timeout)?;
    if call_timeout > server.request_timeout {
        return Err(ctx.err(
            st.call_timeout.as_ref().or(raw_server.request_timeout.as_ref()).map_or(0..0, Spanned::span),
            "sts.call_timeout",
            format!(
                "{} is longer than server.request_timeout ({}): requests would time out before STS answers",
                format_duration(call_timeout),
                format_duration(server.request_timeout)
            ),
        ));
    }
    let max_calls_per_second =
        ctx.int(&st.max_calls_per_second, "sts.max_calls_per_second", d.max_calls_per_second.into(), 1..10_001)?;
    // Absent: half of the budget (at least one call a second).
    let max_calls_per_caller =
        ctx.int(&st.max_calls_per_caller, "sts.max_calls_per_caller", (max_calls_per_second / 2).max(1), 1..10_001)?;
    Ok(StsConfig {
        region,
        endpoint_url,
        session_duration,
        refresh_before_expiry,
        min_remaining_when_stale,
        session_name,
        source_identity,
        max_calls_per_second: max_calls_per_second as u32,
        max_calls_per_caller: max_calls_per_caller as u32,
        call_timeout,
        negative_cache: ctx.duration(&st.negative_cache, "sts.negative_cache", d.negative_cache)?,
    })
}

fn cache(ctx: &Ctx<'_>, rc: &RawCache) -> Result<CacheConfig, ConfigError> {
    let d = CacheConfig::default();
    Ok(CacheConfig {
        max_sessions: ctx.int(&rc.max_sessions, "cache.max_sessions", d.max_sessions as i64, 1..100_000_001)? as u64,
        idle_timeout: positive(ctx, &rc.idle_timeout, "cache.idle_timeout", d.idle_timeout)?,
    })
}

fn audit(ctx: &Ctx<'_>, ra: &RawAudit) -> Result<AuditConfig, ConfigError> {
    let source = ctx.file;
    let d = AuditConfig::default();
    Ok(AuditConfig {
        path: match &ra.path {
            None => d.path,
            Some(p) if p.get_ref() == "-" => AuditPath::Stdout,
            Some(p) if p.get_ref().is_empty() => {
                return Err(ctx.err(p.span(), "audit.path", "must not be empty (use \"-\" for stdout)"))
            }
            Some(p) => AuditPath::File(resolve(source, p.get_ref())),
        },
        durability: choice(
            ctx,
            &ra.durability,
            "audit.durability",
            d.durability,
            &[("sync", Durability::Sync), ("buffered", Durability::Buffered)],
        )?,
        format: choice(
            ctx,
            &ra.format,
            "audit.format",
            d.format,
            &[("native", AuditFormat::Native), ("ocsf", AuditFormat::Ocsf)],
        )?,
        chain: ra.chain.unwrap_or(d.chain),
        ship: ship(ctx, &ra.ship)?,
    })
    .and_then(|audit| {
        let span = || ra.ship.bucket.as_ref().map_or(0..0, Spanned::span);
        if audit.ship.is_some() && audit.path == AuditPath::Stdout {
            return Err(ctx.err(span(), "audit.ship.bucket", "shipping needs audit.path to be a file, not \"-\""));
        }
        if audit.ship.is_some() && !audit.chain {
            return Err(ctx.err(
                span(),
                "audit.ship.bucket",
                "shipping needs audit.chain = true: segments and their digests are named and checked by the chain",
            ));
        }
        Ok(audit)
    })
}

fn ship(ctx: &Ctx<'_>, rs: &RawShip) -> Result<Option<ShipConfig>, ConfigError> {
    // The other keys are still checked while shipping is off: a typo shows before it is turned on.
    let interval = positive(ctx, &rs.interval, "audit.ship.interval", ShipConfig::DEFAULT_INTERVAL)?;
    let endpoint_url = url(ctx, &rs.endpoint_url, "audit.ship.endpoint_url")?;
    let size = |v: &Option<S<String>>, key: &str, default: u64| -> Result<u64, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        match v.get_ref().parse::<bytesize::ByteSize>() {
            Ok(size) if size.as_u64() > 0 => Ok(size.as_u64()),
            Ok(_) => Err(ctx.err(v.span(), key, "must be more than zero")),
            Err(e) => Err(ctx.err(v.span(), key, format!("invalid size '{}' (like \"64MiB\"): {e}", v.get_ref()))),
        }
    };
    let max_segment = size(&rs.max_segment, "audit.ship.max_segment", ShipConfig::DEFAULT_MAX_SEGMENT)?;
    let max_backlog = size(&rs.max_backlog, "audit.ship.max_backlog", ShipConfig::DEFAULT_MAX_BACKLOG)?;
    let Some(bucket) = rs.bucket.as_ref().filter(|b| !b.get_ref().is_empty()) else {
        return Ok(None);
    };
    let (name, prefix) = split_s3_uri(bucket.get_ref()).ok_or_else(|| {
        ctx.err(bucket.span(), "audit.ship.bucket", format!("'{}' is not an s3://bucket/prefix/ URI", bucket.get_ref()))
    })?;
    Ok(Some(ShipConfig { bucket: name, prefix, endpoint_url, interval, max_segment, max_backlog }))
}

/// `s3://bucket/prefix` as the bucket and the prefix (empty, or ending in `/`).
pub fn split_s3_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket || prefix.chars().any(char::is_control) {
        return None;
    }
    let mut prefix = prefix.trim_start_matches('/').to_owned();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Some((bucket.to_owned(), prefix))
}

fn fallback(ctx: &Ctx<'_>, rf: &RawFallback) -> Result<FallbackMode, ConfigError> {
    if let Some(m) = &rf.mappings_file {
        return Err(ctx.err(
            m.span(),
            "fallback.mappings_file",
            "mappings_file is a top-level key: move it above the first [table]",
        ));
    }
    choice(
        ctx,
        &rf.mode,
        "fallback.mode",
        FallbackMode::default(),
        &[("instance-profile", FallbackMode::InstanceProfile), ("deny", FallbackMode::Deny)],
    )
}

fn imds(ctx: &Ctx<'_>, ri: &RawImds, server: &ServerConfig) -> Result<ImdsConfig, ConfigError> {
    let d = ImdsConfig::default();
    let listen = match &ri.listen {
        None => None,
        Some(s) if s.get_ref().is_empty() => None,
        Some(s) => {
            let bad = |m: &str| ctx.err(s.span(), "imds.listen", format!("'{}' {m}", s.get_ref()));
            let addr: SocketAddr =
                s.get_ref().parse().map_err(|_| bad("is not an address:port (e.g. 127.0.0.1:254)"))?;
            // The IPv4 redirect rewrites IPv4 destinations; the IPv6 one goes to [::1] at the same port.
            if !addr.is_ipv4() || !addr.ip().is_loopback() || addr.port() == 0 {
                return Err(bad("is not an IPv4 loopback address with a port (e.g. 127.0.0.1:254)"));
            }
            let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()));
            if server.listen.contains(&addr) {
                return Err(bad("is also in server.listen: the metadata listener needs a port of its own"));
            }
            if server.listen.contains(&v6) {
                return Err(bad(&format!(
                    "shares its port with {v6} in server.listen: the metadata listener listens on {v6} too"
                )));
            }
            Some(addr)
        }
    };
    let mut exempt_users = Vec::new();
    for (i, u) in ri.exempt_users.iter().flatten().enumerate() {
        let v = u.get_ref();
        if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ctx.err(u.span(), format!("imds.exempt_users[{i}]"), format!("invalid user name '{v}'")));
        }
        exempt_users.push(v.clone());
    }
    let exempt_uids_below =
        ctx.int(&ri.exempt_uids_below, "imds.exempt_uids_below", d.exempt_uids_below.into(), 0..65_536)? as u32;
    let upstream = match &ri.upstream {
        None => d.upstream,
        Some(s) => Upstream {
            authority: parse_upstream(s.get_ref()).map_err(|m| {
                ctx.err(s.span(), "imds.upstream", format!("'{}' {m} (e.g. http://169.254.169.254)", s.get_ref()))
            })?,
        },
    };
    Ok(ImdsConfig { listen, exempt_users, exempt_uids_below, upstream })
}

/// `http://host[:port]`, nothing more: the metadata service speaks plain HTTP at its root.
fn parse_upstream(text: &str) -> Result<http::uri::Authority, &'static str> {
    let uri: http::Uri = text.parse().map_err(|_| "is not a URL")?;
    if uri.scheme_str() != Some("http") {
        return Err("must be an http:// URL");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must name only a host and port, no path");
    }
    match uri.authority() {
        Some(a) if !a.as_str().contains('@') && !a.host().is_empty() => Ok(a.clone()),
        _ => Err("must name a host"),
    }
}

/// `[[mapping]]` rules, then the rules of `mappings_file`.
fn rules(
    ctx: &Ctx<'_>,
    mapping: &[S<RawMapping>],
    mappings_file_key: Option<&S<String>>,
    mappings: Option<(&Path, &str)>,
    sts: &StsConfig,
) -> Result<(RuleSet, Option<PathBuf>), ConfigError> {
    let mut rules = Vec::new();
    for (i, m) in mapping.iter().enumerate() {
        rules.push(build_rule(ctx, i, m, sts)?);
    }
    let inline = rules.len();
    let mut emr_keys = Vec::new();
    let mappings_file = match mappings_file_key.filter(|m| !m.get_ref().is_empty()) {
        None => None,
        Some(m) => {
            let Some((file, content)) = mappings else {
                return Err(ctx.err(
                    m.span(),
                    "mappings_file",
                    "is set but its content was not read (use Config::load)",
                ));
            };
            let emr_err = |e: emr::EmrError| ConfigError {
                file: file.to_owned(),
                line: e.position.map(|p| p.0),
                column: e.position.map(|p| p.1),
                key: e.key,
                message: e.message,
            };
            let parsed = emr::parse(content).map_err(emr_err)?;
            rules.extend(emr::to_rules(&parsed.mappings, inline).map_err(emr_err)?);
            emr_keys = parsed.mappings.into_iter().map(|m| (m.key, m.position)).collect();
            Some(file.to_owned())
        }
    };
    let rules = RuleSet::new(rules).map_err(|e| {
        if e.index < inline {
            let m = &mapping[e.index];
            ctx.err(field_span(m, &e.field), format!("mapping[{}].{}", e.index, e.field), e.message)
        } else {
            let (key, position) = emr_keys[e.index - inline].clone();
            ConfigError {
                file: mappings_file.clone().unwrap_or_default(),
                line: position.map(|p| p.0),
                column: position.map(|p| p.1),
                key,
                message: e.message,
            }
        }
    })?;

    Ok((rules, mappings_file))
}

pub(super) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.parent().unwrap_or(Path::new("")).join(p)
    }
}

/// Whether sessions of `duration` can be refreshed `refresh` before expiry without refreshing almost at
/// once: the lead must leave at least a quarter of the session's life (jitter only shortens it).
fn refresh_fits(refresh: Duration, duration: Duration) -> bool {
    refresh.saturating_mul(4) <= duration.saturating_mul(3)
}

const FIFTEEN_MINUTES: Duration = Duration::from_secs(15 * 60);
const TWELVE_HOURS: Duration = Duration::from_secs(12 * 3600);

/// The value named by `v` among `choices`; `default` when absent.
fn choice<T: Copy>(
    ctx: &Ctx<'_>,
    v: &Option<S<String>>,
    key: &str,
    default: T,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    match choices.iter().find(|(name, _)| name == v.get_ref()) {
        Some((_, value)) => Ok(*value),
        None => {
            let names: Vec<String> = choices.iter().map(|(name, _)| format!("\"{name}\"")).collect();
            Err(ctx.err(v.span(), key, format!("must be {}, not '{}'", names.join(" or "), v.get_ref())))
        }
    }
}

fn positive(ctx: &Ctx<'_>, v: &Option<S<String>>, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    let d = ctx.duration(v, key, default)?;
    if d.is_zero() {
        return Err(ctx.err(v.as_ref().map_or(0..0, Spanned::span), key, "must be more than zero"));
    }
    Ok(d)
}

fn check_session_duration(
    ctx: &Ctx<'_>,
    d: Duration,
    span: Option<Range<usize>>,
    key: &str,
) -> Result<(), ConfigError> {
    if d < FIFTEEN_MINUTES || d > TWELVE_HOURS {
        return Err(ctx.err(
            span.unwrap_or(0..0),
            key,
            format!("{} is outside what STS allows (15m to 12h)", format_duration(d)),
        ));
    }
    Ok(())
}

/// The span of a mapping's field, or of the whole `[[mapping]]` table when the field is absent.
fn field_span(m: &S<RawMapping>, field: &str) -> Range<usize> {
    let r = m.get_ref();
    // `users[1]`: the list's item.
    let (field, item) = match field.split_once('[') {
        Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (field, None),
    };
    let nth = |list: &Option<Vec<S<String>>>| list.as_ref().and_then(|v| v.get(item.unwrap_or(0))).map(Spanned::span);
    let s = match field {
        "name" => r.name.as_ref().map(Spanned::span),
        "effect" => r.effect.as_ref().map(Spanned::span),
        "role" => r.role.as_ref().map(Spanned::span),
        "external_id" => r.external_id.as_ref().map(Spanned::span),
        "duration" => r.duration.as_ref().map(Spanned::span),
        "session_policy" => r.session_policy.as_ref().map(Spanned::span),
        "scope_to_prefix" => r.scope_to_prefix.as_ref().map(Spanned::span),
        "users" => nth(&r.users),
        "groups" => nth(&r.groups),
        "prefixes" => nth(&r.prefixes),
        "access" => nth(&r.access),
        _ => None,
    };
    // Absent field: point at the `[[mapping]]` table itself.
    s.unwrap_or_else(|| m.span())
}

fn build_rule(ctx: &Ctx<'_>, i: usize, m: &S<RawMapping>, sts: &StsConfig) -> Result<Rule, ConfigError> {
    let r = m.get_ref();
    let key = |f: &str| format!("mapping[{i}].{f}");
    let name = match &r.name {
        None => format!("mapping-{i}"),
        Some(n) => n.get_ref().clone(),
    };
    // The effect and its role are one value: an allow or access-grants rule carries its role, a deny
    // rule none.
    let role = r.role.as_ref().filter(|a| !a.get_ref().is_empty());
    let arn = |a: &S<String>| RoleArn::parse(a.get_ref()).map_err(|msg| ctx.err(a.span(), key("role"), msg));
    let effect = match (r.effect.as_ref().map(|e| e.get_ref().as_str()), role) {
        (None | Some("allow"), Some(a)) => Effect::Allow(arn(a)?),
        (Some("access-grants"), Some(a)) => Effect::AccessGrants(arn(a)?),
        (None | Some("allow"), None) => {
            return Err(ctx.err(field_span(m, "role"), key("role"), "an allow rule needs a role"));
        }
        (Some("access-grants"), None) => {
            return Err(ctx.err(
                field_span(m, "role"),
                key("role"),
                "an access-grants rule needs a role: the grantee S3 Access Grants are asked as",
            ));
        }
        (Some("deny"), None) => Effect::Deny,
        (Some("deny"), Some(a)) => {
            return Err(ctx.err(a.span(), key("role"), "a deny rule assumes no role, so role has no meaning here"));
        }
        (Some(other), _) => {
            let span = r.effect.as_ref().map_or(m.span(), Spanned::span);
            return Err(ctx.err(
                span,
                key("effect"),
                format!("must be \"allow\", \"deny\" or \"access-grants\", not '{other}'"),
            ));
        }
    };
    let names = |list: &Option<Vec<S<String>>>| list.iter().flatten().map(|v| v.get_ref().clone()).collect();
    let users: Vec<String> = names(&r.users);
    let groups: Vec<String> = names(&r.groups);
    let mut prefixes = Vec::new();
    for (j, p) in r.prefixes.iter().flatten().enumerate() {
        prefixes.push(
            Prefix::parse(p.get_ref()).map_err(|msg| ctx.err(p.span(), format!("mapping[{i}].prefixes[{j}]"), msg))?,
        );
    }
    let external_id = match &r.external_id {
        Some(x) if !x.get_ref().is_empty() => {
            let v = x.get_ref();
            let ok_char = |c: char| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c);
            if !(2..=1224).contains(&v.len()) || !v.chars().all(ok_char) {
                return Err(ctx.err(
                    x.span(),
                    key("external_id"),
                    "must be 2 to 1224 characters of letters, digits and _+=,.@:/- (as STS requires)",
                ));
            }
            Some(v.clone())
        }
        _ => None,
    };
    let duration = match &r.duration {
        Some(d) if !d.get_ref().is_empty() => {
            let v = parse_duration(d.get_ref()).map_err(|msg| {
                ctx.err(d.span(), key("duration"), format!("invalid duration '{}': {msg}", d.get_ref()))
            })?;
            check_session_duration(ctx, v, Some(d.span()), &key("duration"))?;
            if !refresh_fits(sts.refresh_before_expiry, v) {
                return Err(ctx.err(
                    d.span(),
                    key("duration"),
                    format!(
                        "{} is too short for sts.refresh_before_expiry ({}): it must be at most three quarters \
                         of every session duration",
                        format_duration(v),
                        format_duration(sts.refresh_before_expiry)
                    ),
                ));
            }
            Some(v)
        }
        _ => None,
    };
    let session_policy = match &r.session_policy {
        Some(p) if !p.get_ref().is_empty() => {
            let value: serde_json::Value = serde_json::from_str(p.get_ref())
                .map_err(|e| ctx.err(p.span(), key("session_policy"), format!("not valid JSON: {e}")))?;
            if !value.is_object() {
                return Err(ctx.err(p.span(), key("session_policy"), "must be a JSON object (an IAM policy document)"));
            }
            let compact = value.to_string();
            if compact.len() > 2048 {
                return Err(ctx.err(
                    p.span(),
                    key("session_policy"),
                    format!("is {} characters without white space; STS allows 2048", compact.len()),
                ));
            }
            Some(compact)
        }
        _ => None,
    };
    let scope_to_prefix = r.scope_to_prefix.as_ref().is_some_and(|s| *s.get_ref());
    if let (true, Some(role)) = (scope_to_prefix, effect.role()) {
        for (j, (prefix, raw)) in prefixes.iter().zip(r.prefixes.iter().flatten()).enumerate() {
            policy::check(role.partition(), prefix)
                .map_err(|msg| ctx.err(raw.span(), format!("mapping[{i}].prefixes[{j}]"), msg))?;
        }
    }
    let access = rule_access(ctx, i, m)?;
    Ok(Rule {
        index: i,
        name,
        effect,
        users,
        groups,
        prefixes,
        access,
        external_id,
        duration,
        session_policy,
        scope_to_prefix,
    })
}

/// `access = ["read"]`, `["write"]`; both, or empty, is any access (the same as leaving it out): `None`.
fn rule_access(ctx: &Ctx<'_>, i: usize, m: &S<RawMapping>) -> Result<Option<Access>, ConfigError> {
    let Some(list) = &m.get_ref().access else { return Ok(None) };
    let mut read_write = (false, false);
    for (j, v) in list.iter().enumerate() {
        let key = format!("mapping[{i}].access[{j}]");
        let slot = match v.get_ref().parse::<Access>().map_err(|msg| ctx.err(v.span(), key.clone(), msg))? {
            Access::Read => &mut read_write.0,
            Access::Write => &mut read_write.1,
        };
        if std::mem::replace(slot, true) {
            return Err(ctx.err(v.span(), key, format!("\"{}\" is listed twice", v.get_ref())));
        }
    }
    match read_write {
        (true, false) => Ok(Some(Access::Read)),
        (false, true) => Ok(Some(Access::Write)),
        // Empty, or both: any access (SPEC §3).
        (true, true) | (false, false) => Ok(None),
    }
}
