//! Configuration: TOML (SPEC §3) → a validated [`Config`]. Only [`Config::load`] touches the disk.
//!
//! Parsing is two steps: serde with `deny_unknown_fields` into raw structs that keep each value's span,
//! then validation into the checked types (durations, loopback listen addresses, templates, role ARNs,
//! compiled prefixes, rules that can never match). Every error names the file, line, column and key, as
//! `<file>:<line>:<col>: <key>: <message>`. Relative paths (`mappings_file`, `server.token_file`,
//! `audit.path`) are relative to the directory of the configuration file.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::emr;
use crate::rules::{Effect, Prefix, RoleArn, Rule, RuleSet};
use crate::template::Template;

/// Default configuration file.
pub const DEFAULT_PATH: &str = "/etc/emrfs-role-agent/config.toml";

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was loaded from.
    pub source: PathBuf,
    pub server: ServerConfig,
    pub identity: IdentityConfig,
    pub sts: StsConfig,
    pub cache: CacheConfig,
    pub audit: AuditConfig,
    /// What happens when no rule matches; default instance-profile.
    pub fallback: FallbackMode,
    /// `[[mapping]]` rules followed by the rules of `mappings_file`.
    pub rules: RuleSet,
    /// The resolved `mappings_file`, if any.
    pub mappings_file: Option<PathBuf>,
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Loopback addresses only; default `127.0.0.1:9944`.
    pub listen: Vec<SocketAddr>,
    /// Default `/etc/emrfs-role-agent/token`.
    pub token_file: PathBuf,
    /// Default true.
    pub require_token: bool,
    /// Default 4096.
    pub max_connections: usize,
    /// Default 5s.
    pub header_read_timeout: Duration,
    /// Default 10s; a request that waits longer gets 504.
    pub request_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 9944))],
            token_file: PathBuf::from("/etc/emrfs-role-agent/token"),
            require_token: true,
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// `[identity]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityConfig {
    /// OS users allowed to act for another user; default none.
    pub trusted_proxy_users: Vec<String>,
    /// Default 5m.
    pub group_cache_ttl: Duration,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig { trusted_proxy_users: vec![], group_cache_ttl: Duration::from_secs(300) }
    }
}

/// `[sts]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsConfig {
    /// None (default): from the environment / instance metadata.
    pub region: Option<String>,
    /// None (default): the SDK's regional STS endpoint.
    pub endpoint_url: Option<String>,
    /// 15m..=12h; default 1h.
    pub session_duration: Duration,
    /// More than 15m, at most three quarters of every session duration; default 30m.
    pub refresh_before_expiry: Duration,
    /// Less than `refresh_before_expiry`; default 5m.
    pub min_remaining_when_stale: Duration,
    /// Default `{user}`.
    pub session_name: Template,
    /// None (default) or a template.
    pub source_identity: Option<Template>,
    /// Default 20.
    pub max_calls_per_second: u32,
    /// At most `server.request_timeout`; default 5s.
    pub call_timeout: Duration,
    /// Default 30s.
    pub negative_cache: Duration,
}

impl Default for StsConfig {
    fn default() -> Self {
        StsConfig {
            region: None,
            endpoint_url: None,
            session_duration: Duration::from_secs(3600),
            refresh_before_expiry: Duration::from_secs(1800),
            min_remaining_when_stale: Duration::from_secs(300),
            session_name: Template::parse("{user}").expect("valid default"),
            source_identity: None,
            max_calls_per_second: 20,
            call_timeout: Duration::from_secs(5),
            negative_cache: Duration::from_secs(30),
        }
    }
}

/// `[cache]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Default 10000.
    pub max_sessions: u64,
    /// Default 2h.
    pub idle_timeout: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { max_sessions: 10_000, idle_timeout: Duration::from_secs(7200) }
    }
}

/// `[audit]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// Default `/var/log/emrfs-role-agent/audit.log`.
    pub path: AuditPath,
    /// Default sync.
    pub durability: Durability,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: AuditPath::File(PathBuf::from("/var/log/emrfs-role-agent/audit.log")),
            durability: Durability::Sync,
        }
    }
}

/// Where audit records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditPath {
    /// `"-"`.
    Stdout,
    File(PathBuf),
}

/// When an audit record counts as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The response waits until its record is on disk.
    Sync,
    /// Flushed at least every second and on shutdown.
    Buffered,
}

/// What happens when no rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackMode {
    /// Hand out the node's own credentials (EMRFS behaviour).
    InstanceProfile,
    /// Answer 403.
    Deny,
}

impl fmt::Display for FallbackMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FallbackMode::InstanceProfile => "instance-profile",
            FallbackMode::Deny => "deny",
        })
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::Sync => "sync",
            Durability::Buffered => "buffered",
        })
    }
}

impl fmt::Display for AuditPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditPath::Stdout => f.write_str("-"),
            AuditPath::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// An invalid configuration: where, which key, why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The configuration file, or the mappings file when the error is in it.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// The offending key, e.g. `mapping[1].role` or `server.listen[0]`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}: {}", self.key, self.message)
    }
}

/// 1-based (line, column in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

// ---------------------------------------------------------------------------------------------------
// Raw (deserialised, unvalidated) form.

type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    sts: RawSts,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    fallback: RawFallback,
    mappings_file: Option<S<String>>,
    #[serde(default)]
    mapping: Vec<S<RawMapping>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<S<Vec<S<String>>>>,
    token_file: Option<S<String>>,
    require_token: Option<bool>,
    max_connections: Option<S<i64>>,
    header_read_timeout: Option<S<String>>,
    request_timeout: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    trusted_proxy_users: Option<Vec<S<String>>>,
    group_cache_ttl: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSts {
    region: Option<S<String>>,
    endpoint_url: Option<S<String>>,
    session_duration: Option<S<String>>,
    refresh_before_expiry: Option<S<String>>,
    min_remaining_when_stale: Option<S<String>>,
    session_name: Option<S<String>>,
    source_identity: Option<S<String>>,
    max_calls_per_second: Option<S<i64>>,
    call_timeout: Option<S<String>>,
    negative_cache: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCache {
    max_sessions: Option<S<i64>>,
    idle_timeout: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: Option<S<String>>,
    durability: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFallback {
    mode: Option<S<String>>,
    // Only to explain the mistake: in TOML a key written after `[fallback]` belongs to that table.
    mappings_file: Option<S<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    name: Option<S<String>>,
    effect: Option<S<String>>,
    role: Option<S<String>>,
    users: Option<Vec<S<String>>>,
    groups: Option<Vec<S<String>>>,
    prefixes: Option<Vec<S<String>>>,
    external_id: Option<S<String>>,
    duration: Option<S<String>>,
    session_policy: Option<S<String>>,
    scope_to_prefix: Option<S<bool>>,
}

// ---------------------------------------------------------------------------------------------------
// Validation.

/// Where errors point: the text (for line/column) and its file.
struct Ctx<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
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

/// Parses `"90s"`, `"30m"`, `"1h"`, `"1h30m"`, `"500ms"`, `"1d"` (humantime's syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim().is_empty() {
        return Err("empty (use e.g. \"90s\", \"30m\", \"1h\")".into());
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. \"90s\", \"30m\", \"1h\")"))
}

/// Formats a duration the way the configuration writes it: `1h30m`, `90s` → `1m30s`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let mut out = String::new();
    let mut secs = d.as_secs();
    for (unit, len) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    if d.subsec_millis() > 0 {
        out.push_str(&format!("{}ms", d.subsec_millis()));
    }
    out
}

/// The dotted key at a byte offset, worked out from the table headers and `key =` lines before it. Used
/// for errors raised during deserialisation, which carry a span but no key.
fn key_at(text: &str, offset: usize) -> String {
    let mut table = String::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut key: Option<String> = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        pos += line.len();
        let t = line.trim();
        let mut header = false;
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
            key = None;
            header = true;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_owned();
            key = None;
            header = true;
        } else if let Some(eq) = t.find('=') {
            let k = t[..eq].trim();
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c)) {
                key = Some(k.replace(['"', '\''], ""));
            }
        }
        if offset < pos || pos == text.len() {
            // An error on a key token itself (e.g. an unknown field) names that key.
            return match (&key, header) {
                (Some(k), false) if table.is_empty() => k.clone(),
                (Some(k), false) => format!("{table}.{k}"),
                _ if table.is_empty() => "(document)".into(),
                _ => table,
            };
        }
    }
    "(document)".into()
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.parent().unwrap_or(Path::new("")).join(p)
    }
}

fn parse_raw(ctx: &Ctx<'_>) -> Result<RawConfig, ConfigError> {
    toml::from_str::<RawConfig>(ctx.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let key = key_at(ctx.text, span.start);
        ctx.err(span, key, e.message().trim().to_owned())
    })
}

impl Config {
    /// Reads and validates the configuration at `path` and, when it names one, its `mappings_file`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let io_err = |file: &Path, key: &str, e: std::io::Error| ConfigError {
            file: file.to_owned(),
            line: None,
            column: None,
            key: key.into(),
            message: format!("cannot read: {e}"),
        };
        let text = std::fs::read_to_string(path).map_err(|e| io_err(path, "(file)", e))?;
        let ctx = Ctx { text: &text, file: path };
        let raw = parse_raw(&ctx)?;
        let mappings = match raw.mappings_file.as_ref().filter(|m| !m.get_ref().is_empty()) {
            None => None,
            Some(m) => {
                let file = resolve(path, m.get_ref());
                let content = std::fs::read_to_string(&file).map_err(|e| {
                    ctx.err(m.span(), "mappings_file", format!("cannot read '{}': {e}", file.display()))
                })?;
                Some((file, content))
            }
        };
        build(&ctx, raw, mappings.as_ref().map(|(f, c)| (f.as_path(), c.as_str())))
    }

    /// Validates configuration text (pure). `source` names the file in errors and anchors relative paths;
    /// `mappings` is the path and content of the `mappings_file`, required when the text names one.
    pub fn parse(text: &str, source: &Path, mappings: Option<(&Path, &str)>) -> Result<Config, ConfigError> {
        let ctx = Ctx { text, file: source };
        let raw = parse_raw(&ctx)?;
        build(&ctx, raw, mappings)
    }
}

fn build(ctx: &Ctx<'_>, raw: RawConfig, mappings: Option<(&Path, &str)>) -> Result<Config, ConfigError> {
    let source = ctx.file;

    // [server]
    let d = ServerConfig::default();
    let rs = &raw.server;
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
                    ctx.err(a.span(), &key, format!("'{}' is not an address:port (e.g. 127.0.0.1:9944 or [::1]:9944)", a.get_ref()))
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
    let server = ServerConfig {
        listen,
        token_file,
        require_token: rs.require_token.unwrap_or(d.require_token),
        max_connections: ctx.int(&rs.max_connections, "server.max_connections", 4096, 1..1_000_001)? as usize,
        header_read_timeout: positive(ctx, &rs.header_read_timeout, "server.header_read_timeout", d.header_read_timeout)?,
        request_timeout: positive(ctx, &rs.request_timeout, "server.request_timeout", d.request_timeout)?,
    };

    // [identity]
    let ri = &raw.identity;
    let mut trusted_proxy_users = Vec::new();
    for (i, u) in ri.trusted_proxy_users.iter().flatten().enumerate() {
        let v = u.get_ref();
        if v.is_empty() || v.chars().any(char::is_whitespace) {
            return Err(ctx.err(u.span(), format!("identity.trusted_proxy_users[{i}]"), format!("invalid user name '{v}'")));
        }
        trusted_proxy_users.push(v.clone());
    }
    let identity = IdentityConfig {
        trusted_proxy_users,
        group_cache_ttl: ctx.duration(&ri.group_cache_ttl, "identity.group_cache_ttl", IdentityConfig::default().group_cache_ttl)?,
    };

    // [sts]
    let d = StsConfig::default();
    let st = &raw.sts;
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
    let endpoint_url = match &st.endpoint_url {
        Some(u) if !u.get_ref().is_empty() => {
            let v = u.get_ref();
            let host = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
            if host.is_none_or(str::is_empty) || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ctx.err(u.span(), "sts.endpoint_url", format!("'{v}' is not an http:// or https:// URL")));
            }
            Some(v.clone())
        }
        _ => None,
    };
    let session_duration = ctx.duration(&st.session_duration, "sts.session_duration", d.session_duration)?;
    let session_span = st.session_duration.as_ref().map(Spanned::span);
    check_session_duration(ctx, session_duration, session_span.clone(), "sts.session_duration")?;
    let refresh_before_expiry = ctx.duration(&st.refresh_before_expiry, "sts.refresh_before_expiry", d.refresh_before_expiry)?;
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
            st.call_timeout.as_ref().or(rs.request_timeout.as_ref()).map_or(0..0, Spanned::span),
            "sts.call_timeout",
            format!(
                "{} is longer than server.request_timeout ({}): requests would time out before STS answers",
                format_duration(call_timeout),
                format_duration(server.request_timeout)
            ),
        ));
    }
    let sts = StsConfig {
        region,
        endpoint_url,
        session_duration,
        refresh_before_expiry,
        min_remaining_when_stale,
        session_name,
        source_identity,
        max_calls_per_second: ctx.int(&st.max_calls_per_second, "sts.max_calls_per_second", 20, 1..10_001)? as u32,
        call_timeout,
        negative_cache: ctx.duration(&st.negative_cache, "sts.negative_cache", d.negative_cache)?,
    };

    // [cache]
    let d = CacheConfig::default();
    let cache = CacheConfig {
        max_sessions: ctx.int(&raw.cache.max_sessions, "cache.max_sessions", 10_000, 1..100_000_001)? as u64,
        idle_timeout: positive(ctx, &raw.cache.idle_timeout, "cache.idle_timeout", d.idle_timeout)?,
    };

    // [audit]
    let d = AuditConfig::default();
    let audit = AuditConfig {
        path: match &raw.audit.path {
            None => d.path,
            Some(p) if p.get_ref() == "-" => AuditPath::Stdout,
            Some(p) if p.get_ref().is_empty() => {
                return Err(ctx.err(p.span(), "audit.path", "must not be empty (use \"-\" for stdout)"))
            }
            Some(p) => AuditPath::File(resolve(source, p.get_ref())),
        },
        durability: match &raw.audit.durability {
            None => d.durability,
            Some(v) => match v.get_ref().as_str() {
                "sync" => Durability::Sync,
                "buffered" => Durability::Buffered,
                other => {
                    return Err(ctx.err(v.span(), "audit.durability", format!("must be \"sync\" or \"buffered\", not '{other}'")))
                }
            },
        },
    };

    // [fallback]
    if let Some(m) = &raw.fallback.mappings_file {
        return Err(ctx.err(
            m.span(),
            "fallback.mappings_file",
            "mappings_file is a top-level key: move it above the first [table]",
        ));
    }
    let fallback = match &raw.fallback.mode {
        None => FallbackMode::InstanceProfile,
        Some(v) => match v.get_ref().as_str() {
            "instance-profile" => FallbackMode::InstanceProfile,
            "deny" => FallbackMode::Deny,
            other => {
                return Err(ctx.err(v.span(), "fallback.mode", format!("must be \"instance-profile\" or \"deny\", not '{other}'")))
            }
        },
    };

    // [[mapping]] and mappings_file
    let mut rules = Vec::new();
    for (i, m) in raw.mapping.iter().enumerate() {
        rules.push(build_rule(ctx, i, m, &sts)?);
    }
    let inline = rules.len();
    let mut emr_keys = Vec::new();
    let mappings_file = match raw.mappings_file.as_ref().filter(|m| !m.get_ref().is_empty()) {
        None => None,
        Some(m) => {
            let Some((file, content)) = mappings else {
                return Err(ctx.err(m.span(), "mappings_file", "is set but its content was not read (use Config::load)"));
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
            let m = &raw.mapping[e.index];
            ctx.err(field_span(m, e.field), format!("mapping[{}].{}", e.index, e.field), e.message)
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

    Ok(Config { source: source.to_owned(), server, identity, sts, cache, audit, fallback, rules, mappings_file })
}

/// Whether sessions of `duration` can be refreshed `refresh` before expiry without refreshing almost at
/// once: the lead must leave at least a quarter of the session's life (jitter only shortens it).
fn refresh_fits(refresh: Duration, duration: Duration) -> bool {
    refresh.saturating_mul(4) <= duration.saturating_mul(3)
}

const FIFTEEN_MINUTES: Duration = Duration::from_secs(15 * 60);
const TWELVE_HOURS: Duration = Duration::from_secs(12 * 3600);

fn positive(ctx: &Ctx<'_>, v: &Option<S<String>>, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    let d = ctx.duration(v, key, default)?;
    if d.is_zero() {
        return Err(ctx.err(v.as_ref().map_or(0..0, Spanned::span), key, "must be more than zero"));
    }
    Ok(d)
}

fn check_session_duration(ctx: &Ctx<'_>, d: Duration, span: Option<Range<usize>>, key: &str) -> Result<(), ConfigError> {
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
    let s = match field {
        "name" => r.name.as_ref().map(Spanned::span),
        "effect" => r.effect.as_ref().map(Spanned::span),
        "role" => r.role.as_ref().map(Spanned::span),
        "external_id" => r.external_id.as_ref().map(Spanned::span),
        "duration" => r.duration.as_ref().map(Spanned::span),
        "session_policy" => r.session_policy.as_ref().map(Spanned::span),
        "scope_to_prefix" => r.scope_to_prefix.as_ref().map(Spanned::span),
        "users" => r.users.as_ref().and_then(|v| v.first()).map(Spanned::span),
        "groups" => r.groups.as_ref().and_then(|v| v.first()).map(Spanned::span),
        "prefixes" => r.prefixes.as_ref().and_then(|v| v.first()).map(Spanned::span),
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
    let effect = match &r.effect {
        None => Effect::Allow,
        Some(e) => e.get_ref().parse::<Effect>().map_err(|msg| ctx.err(e.span(), key("effect"), msg))?,
    };
    let role = match &r.role {
        Some(a) if !a.get_ref().is_empty() => {
            Some(RoleArn::parse(a.get_ref()).map_err(|msg| ctx.err(a.span(), key("role"), msg))?)
        }
        Some(a) if effect == Effect::Allow => return Err(ctx.err(a.span(), key("role"), "an allow rule needs a role")),
        _ => None,
    };
    let names = |field: &str, list: &Option<Vec<S<String>>>| -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for (j, v) in list.iter().flatten().enumerate() {
            let s = v.get_ref();
            if s.is_empty() || s.trim() != s {
                return Err(ctx.err(v.span(), format!("mapping[{i}].{field}[{j}]"), format!("empty or space-padded entry '{s}' can never match")));
            }
            out.push(s.clone());
        }
        Ok(out)
    };
    let users = names("users", &r.users)?;
    let groups = names("groups", &r.groups)?;
    let mut prefixes = Vec::new();
    for (j, p) in r.prefixes.iter().flatten().enumerate() {
        prefixes.push(Prefix::parse(p.get_ref()).map_err(|msg| ctx.err(p.span(), format!("mapping[{i}].prefixes[{j}]"), msg))?);
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
            let v = parse_duration(d.get_ref())
                .map_err(|msg| ctx.err(d.span(), key("duration"), format!("invalid duration '{}': {msg}", d.get_ref())))?;
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
    Ok(Rule {
        index: i,
        name,
        effect,
        role,
        users,
        groups,
        prefixes,
        external_id,
        duration,
        session_policy,
        scope_to_prefix: r.scope_to_prefix.as_ref().is_some_and(|s| *s.get_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/x/config.toml"), None)
    }

    #[test]
    fn empty_config_has_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.server, ServerConfig::default());
        assert_eq!(c.identity, IdentityConfig::default());
        assert_eq!(c.sts, StsConfig::default());
        assert_eq!(c.cache, CacheConfig::default());
        assert_eq!(c.audit, AuditConfig::default());
        assert_eq!(c.fallback, FallbackMode::InstanceProfile);
        assert!(c.rules.rules().is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h 30min"), Ok(Duration::from_secs(5400)));
        for bad in ["", "5", "h", "5x", "-5s", "99999999999999999999s", "an hour"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for s in ["1h", "1h30m", "90s", "1d2h3m4s", "250ms"] {
            assert_eq!(parse_duration(&format_duration(parse_duration(s).unwrap())), parse_duration(s));
        }
    }

    #[test]
    fn error_names_file_line_column_key() {
        let e = parse("[[mapping]]\nrole = \"arn:aws:iam::12:role/x\"\n").unwrap_err();
        assert_eq!(e.to_string().split(": ").take(2).collect::<Vec<_>>(), ["/etc/x/config.toml:2:8", "mapping[0].role"]);
        let e = parse("[server]\nlisten = [\"10.0.0.1:9944\"]\n").unwrap_err();
        assert_eq!((e.line, e.column, e.key.as_str()), (Some(2), Some(11), "server.listen[0]"));
        let e = parse("[server]\nlsten = []\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (Some(2), "server.lsten"));
    }

    #[test]
    fn key_at_finds_tables_and_keys() {
        let t = "a = 1\n[s]\nb = 2\n[[m]]\nc = 3\n[[m]]\nd = [\n 4 ]\n";
        assert_eq!(key_at(t, 0), "a");
        assert_eq!(key_at(t, t.find("b =").unwrap()), "s.b");
        assert_eq!(key_at(t, t.find("c =").unwrap()), "m[0].c");
        assert_eq!(key_at(t, t.find(" 4").unwrap()), "m[1].d");
        assert_eq!(key_at(t, t.find("[s]").unwrap()), "s");
    }
}
