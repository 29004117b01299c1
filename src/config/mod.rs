//! Configuration: TOML (SPEC §3) → a validated [`Config`]. Only [`Config::load`] touches the disk.
//!
//! Two steps, a file each: [`raw`] deserialises with `deny_unknown_fields` into structs that keep each
//! value's span; [`validate`] checks them into the types below (durations, loopback listen addresses,
//! templates, role ARNs, compiled prefixes, rules that can never match), one function per section.
//! Every default is written once, in the section's `Default`. Every error names the file, line, column
//! and key, as `<file>:<line>:<col>: <key>: <message>`. Relative paths (`mappings_file`,
//! `server.token_file`, `audit.path`) are relative to the directory of the configuration file.

mod raw;
mod validate;

pub use validate::split_s3_uri;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::rules::RuleSet;
use crate::template::Template;
use validate::Ctx;

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
    /// Instance-metadata interception (SPEC §5.1).
    pub imds: ImdsConfig,
    /// S3 Access Grants, for rules with `effect = "access-grants"` (SPEC §4.1).
    pub access_grants: AccessGrantsConfig,
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
    /// Connections one uid may hold open at once; default 1024.
    pub max_connections_per_caller: usize,
    /// Credentials requests one uid may make per second (and at once); default 2000.
    pub max_requests_per_caller: u32,
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
            max_connections_per_caller: 1024,
            max_requests_per_caller: 2000,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The metadata listener's address in the packaged socket unit, the examples and the docs: a port below
/// 1024, which no user but root can bind (`net.ipv4.ip_unprivileged_port_start`), so that nobody can
/// take it and pose as the metadata service while the agent is down. 254, as in 169.254.169.254 and
/// fd00:ec2::254: nothing on an EMR node listens there, unlike 80.
pub const DEFAULT_IMDS_LISTEN: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 254));

/// `[imds]`: the instance-metadata listener and whom the redirect leaves alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImdsConfig {
    /// An IPv4 loopback address, [`DEFAULT_IMDS_LISTEN`] in the packaged units; `None` (default): off.
    /// The IPv6 redirect's connections arrive at [`ImdsConfig::listen_v6`], the same port on `::1`.
    pub listen: Option<SocketAddr>,
    /// Users whose metadata traffic is not redirected, besides root and the agent's own user.
    pub exempt_users: Vec<String>,
    /// Every uid below this is exempt too (system accounts: EMR's daemons); default 0, none.
    pub exempt_uids_below: u32,
    /// Where every path but the credential paths is forwarded; default `http://169.254.169.254`.
    pub upstream: Upstream,
}

impl ImdsConfig {
    /// Where the IPv6 redirect sends connections to `[fd00:ec2::254]:80`: `[::1]` at the port of `listen`
    /// (NAT keeps a connection in its address family).
    pub fn listen_v6(&self) -> Option<SocketAddr> {
        self.listen.map(|v4| SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, v4.port())))
    }

    /// The listener's addresses: `listen`, then [`ImdsConfig::listen_v6`]; none when interception is off.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listen.into_iter().chain(self.listen_v6()).collect()
    }
}

impl Default for ImdsConfig {
    fn default() -> Self {
        ImdsConfig {
            listen: None,
            exempt_users: vec![],
            exempt_uids_below: 0,
            upstream: Upstream { authority: "169.254.169.254".parse().expect("a valid authority") },
        }
    }
}

/// The metadata service the node would otherwise reach: plain HTTP, a host and an optional port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub authority: http::uri::Authority,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

/// `[identity]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityConfig {
    /// OS users allowed to act for another user; default none.
    pub trusted_proxy_users: Vec<String>,
    /// A proxy never acts for root or a known account below this uid; default 1000.
    pub min_asserted_uid: u32,
    /// Per proxy, whom it may act for (`[identity.proxies.<user>]`, like Hadoop's
    /// `hadoop.proxyuser.<user>.users/groups`); a proxy without an entry may act for anyone allowed.
    pub proxies: BTreeMap<String, ProxyScope>,
    /// Default 5m.
    pub group_cache_ttl: Duration,
}

/// Whom one proxy may act for: a user named in `users`, or a member of one of `groups` (`"*"`: any).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyScope {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

impl ProxyScope {
    /// Whether the proxy may act for `user`, whose groups are `groups`.
    pub fn allows(&self, user: &str, groups: &[String]) -> bool {
        let any = |list: &[String], has: &dyn Fn(&String) -> bool| list.iter().any(|v| v == "*" || has(v));
        any(&self.users, &|u| u == user) || any(&self.groups, &|g| groups.contains(g))
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            trusted_proxy_users: vec![],
            proxies: BTreeMap::new(),
            min_asserted_uid: 1000,
            group_cache_ttl: Duration::from_secs(300),
        }
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
    /// STS calls the requests of one uid may cause per second (and at once); default half of
    /// `max_calls_per_second` (10).
    pub max_calls_per_caller: u32,
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
            max_calls_per_caller: 10,
            call_timeout: Duration::from_secs(5),
            negative_cache: Duration::from_secs(30),
        }
    }
}

/// `[access_grants]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessGrantsConfig {
    /// None (default): the SDK's S3 Control endpoint for the region.
    pub endpoint_url: Option<String>,
    /// `GetDataAccess` privilege; default `Default`.
    pub privilege: Privilege,
    /// How long vended credentials last (15m to 12h); default 1h.
    pub duration: Duration,
}

impl Default for AccessGrantsConfig {
    fn default() -> Self {
        AccessGrantsConfig { endpoint_url: None, privilege: Privilege::Default, duration: Duration::from_secs(3600) }
    }
}

/// `access_grants.privilege`: the scope of the vended credentials — the grant's whole scope (`Default`)
/// or only the target asked for (`Minimal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    Default,
    Minimal,
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
    /// Default native.
    pub format: AuditFormat,
    /// Whether records carry the hash chain (`seq`, `chain`); default true.
    pub chain: bool,
    /// `[audit.ship]`; `None` while `bucket` is empty.
    pub ship: Option<ShipConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: AuditPath::File(PathBuf::from("/var/log/emrfs-role-agent/audit.log")),
            durability: Durability::Sync,
            format: AuditFormat::Native,
            chain: true,
            ship: None,
        }
    }
}

/// `audit.format`: the shape of each record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditFormat {
    /// The agent's own record (SPEC §7).
    Native,
    /// An OCSF event carrying the native record under `unmapped` (SPEC §7.1).
    Ocsf,
}

/// `[audit.ship]`: closed segments of the audit log uploaded to S3 (SPEC §7.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipConfig {
    pub bucket: String,
    /// The objects' key prefix, empty or ending in `/`.
    pub prefix: String,
    /// None (default): the SDK's S3 endpoint.
    pub endpoint_url: Option<String>,
    /// A segment is closed and uploaded at least this often; default 5m.
    pub interval: Duration,
    /// A segment is closed at this size; default 64 MiB.
    pub max_segment: u64,
    /// Unshipped bytes beyond which the agent alerts; default 1 GiB.
    pub max_backlog: u64,
}

impl ShipConfig {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
    pub const DEFAULT_MAX_SEGMENT: u64 = 64 << 20;
    pub const DEFAULT_MAX_BACKLOG: u64 = 1 << 30;
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FallbackMode {
    /// Hand out the node's own credentials (EMRFS behaviour); the default.
    #[default]
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

impl Config {
    /// Reads and validates the configuration at `path` and, when it names one, its `mappings_file`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_mappings(path, None)
    }

    /// As [`Config::load`], with the mappings read from `mappings` instead of the file `mappings_file`
    /// names (`check --mappings`: config and mappings checked together before they are installed where
    /// `mappings_file` points). The configuration must name a `mappings_file`, or the agent would never
    /// read them. `mappings_file` in the result is still the configured path.
    pub fn load_with_mappings(path: &Path, mappings: Option<&Path>) -> Result<Config, ConfigError> {
        let io_err = |file: &Path, key: &str, e: std::io::Error| ConfigError {
            file: file.to_owned(),
            line: None,
            column: None,
            key: key.into(),
            message: format!("cannot read: {e}"),
        };
        let text = std::fs::read_to_string(path).map_err(|e| io_err(path, "(file)", e))?;
        let ctx = Ctx { text: &text, file: path };
        let raw = raw::parse_raw(&ctx)?;
        let configured = raw.mappings_file.as_ref().filter(|m| !m.get_ref().is_empty());
        let content = match (configured, mappings) {
            (None, None) => None,
            (None, Some(given)) => {
                return Err(ConfigError {
                    file: path.to_owned(),
                    line: None,
                    column: None,
                    key: "mappings_file".into(),
                    message: format!(
                        "not set, so the agent would never read {}: name the path the mappings will be installed \
                         at (the bootstrap's --mappings installs them as /etc/emrfs-role-agent/mappings)",
                        given.display()
                    ),
                })
            }
            (Some(m), None) => {
                let file = validate::resolve(path, m.get_ref());
                let content = std::fs::read_to_string(&file).map_err(|e| {
                    ctx.err(m.span(), "mappings_file", format!("cannot read '{}': {e}", file.display()))
                })?;
                Some((file, content))
            }
            (Some(m), Some(given)) => {
                let content = std::fs::read_to_string(given).map_err(|e| io_err(given, "(file)", e))?;
                Some((validate::resolve(path, m.get_ref()), content))
            }
        };
        let checked = mappings.map(Path::to_path_buf).or_else(|| content.as_ref().map(|(f, _)| f.clone()));
        // Errors in the mappings name the file that was read.
        let read = content.as_ref().map(|(_, c)| (checked.as_deref().expect("read from a file"), c.as_str()));
        let mut config = validate::build(&ctx, raw, read)?;
        if let Some((configured, _)) = &content {
            config.mappings_file = Some(configured.clone());
        }
        Ok(config)
    }

    /// Validates configuration text (pure). `source` names the file in errors and anchors relative paths;
    /// `mappings` is the path and content of the `mappings_file`, required when the text names one.
    pub fn parse(text: &str, source: &Path, mappings: Option<(&Path, &str)>) -> Result<Config, ConfigError> {
        let ctx = Ctx { text, file: source };
        let raw = raw::parse_raw(&ctx)?;
        validate::build(&ctx, raw, mappings)
    }
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
        assert_eq!(c.imds, ImdsConfig::default());
        assert_eq!(c.fallback, FallbackMode::InstanceProfile);
        assert!(c.rules.rules().is_empty());
    }

    #[test]
    fn a_rules_access_is_one_of_read_and_write_or_any() {
        use crate::access::Access;
        for (written, read_as) in [
            ("", None),
            ("access = []", None),
            ("access = [\"read\"]", Some(Access::Read)),
            ("access = [\"write\"]", Some(Access::Write)),
            ("access = [\"write\", \"read\"]", None),
        ] {
            let c = parse(&format!("[[mapping]]\nrole = \"arn:aws:iam::123456789012:role/r\"\n{written}\n")).unwrap();
            assert_eq!(c.rules.rules()[0].access, read_as, "{written}");
        }
    }

    #[test]
    fn access_grants_defaults_and_rules() {
        let c = parse("").unwrap();
        assert_eq!(
            c.access_grants,
            AccessGrantsConfig {
                endpoint_url: None,
                privilege: Privilege::Default,
                duration: Duration::from_secs(3600)
            }
        );
        let c = parse(
            "[access_grants]\nendpoint_url = \"http://127.0.0.1:9000\"\nprivilege = \"minimal\"\nduration = \"45m\"\n\
             [[mapping]]\neffect = \"access-grants\"\nrole = \"arn:aws:iam::123456789012:role/grantee\"\n",
        )
        .unwrap();
        assert_eq!(c.access_grants.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            (c.access_grants.privilege, c.access_grants.duration),
            (Privilege::Minimal, Duration::from_secs(2700))
        );
        let rule = &c.rules.rules()[0];
        assert_eq!(rule.effect.name(), "access-grants");
        assert_eq!(rule.effect.role().map(|r| r.name()), Some("grantee"));
        // Without a location, an access-grants rule matches nothing, even with no other condition.
        let req = crate::rules::Request { user: "u", groups: &[], location: None, access: None };
        assert!(matches!(c.rules.decide(&req), crate::rules::Decision::Fallback));
        let located = crate::location::Location::parse("s3://lake/k").unwrap();
        let req = crate::rules::Request { location: Some(&located), ..req };
        assert!(matches!(c.rules.decide(&req), crate::rules::Decision::Rule { .. }));
    }

    /// The defaults SPEC §3 states, written out: comparing with the code's own `Default` would pass
    /// whatever the code says.
    #[test]
    fn defaults_are_the_contract() {
        let c = parse("").unwrap();
        assert_eq!(c.server.listen, vec!["127.0.0.1:9944".parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.server.token_file, Path::new("/etc/emrfs-role-agent/token"));
        assert!(c.server.require_token);
        assert_eq!(c.server.max_connections, 4096);
        assert_eq!(c.server.max_connections_per_caller, 1024);
        assert_eq!(c.server.max_requests_per_caller, 2000);
        assert_eq!(c.server.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.server.request_timeout, Duration::from_secs(10));
        assert!(c.identity.trusted_proxy_users.is_empty());
        assert_eq!(c.identity.min_asserted_uid, 1000);
        assert_eq!(c.identity.group_cache_ttl, Duration::from_secs(5 * 60));
        assert_eq!((c.sts.region.as_deref(), c.sts.endpoint_url.as_deref()), (None, None));
        assert_eq!(c.sts.session_duration, Duration::from_secs(3600));
        assert_eq!(c.sts.refresh_before_expiry, Duration::from_secs(30 * 60));
        assert_eq!(c.sts.min_remaining_when_stale, Duration::from_secs(5 * 60));
        assert_eq!(c.sts.session_name.to_string(), "{user}");
        assert!(c.sts.source_identity.is_none());
        assert_eq!(c.sts.max_calls_per_second, 20);
        assert_eq!(c.sts.max_calls_per_caller, 10);
        assert_eq!(c.sts.call_timeout, Duration::from_secs(5));
        assert_eq!(c.sts.negative_cache, Duration::from_secs(30));
        assert_eq!(c.cache.max_sessions, 10_000);
        assert_eq!(c.cache.idle_timeout, Duration::from_secs(2 * 3600));
        assert_eq!(c.audit.path, AuditPath::File("/var/log/emrfs-role-agent/audit.log".into()));
        assert_eq!(c.audit.durability, Durability::Sync);
        assert_eq!(c.fallback, FallbackMode::InstanceProfile);
        assert!(c.mappings_file.is_none());
        assert_eq!(c.imds.listen, None);
        assert!(c.imds.exempt_users.is_empty());
        assert_eq!(c.imds.upstream.to_string(), "http://169.254.169.254");
        assert_eq!(c.imds.exempt_uids_below, 0);
    }

    #[test]
    fn audit_format_chain_and_shipping() {
        let c = parse("").unwrap();
        assert_eq!((c.audit.format, c.audit.chain, c.audit.ship.clone()), (AuditFormat::Native, true, None));
        let c = parse(
            "[audit]\nformat = \"ocsf\"\n[audit.ship]\nbucket = \"s3://ops-audit/emrfs\"\ninterval = \"30s\"\n\
             max_segment = \"512KiB\"\nmax_backlog = \"2GiB\"\nendpoint_url = \"http://127.0.0.1:9000\"\n",
        )
        .unwrap();
        assert_eq!(c.audit.format, AuditFormat::Ocsf);
        assert_eq!(
            c.audit.ship,
            Some(ShipConfig {
                bucket: "ops-audit".into(),
                prefix: "emrfs/".into(),
                endpoint_url: Some("http://127.0.0.1:9000".into()),
                interval: Duration::from_secs(30),
                max_segment: 512 << 10,
                max_backlog: 2 << 30,
            })
        );
        // Defaults while the bucket is empty, the other keys still checked.
        let c = parse("[audit.ship]\nbucket = \"\"\ninterval = \"5m\"\n").unwrap();
        assert_eq!(c.audit.ship, None);
        for (text, key, says) in [
            ("[audit]\nformat = \"cef\"", "audit.format", "\"native\" or \"ocsf\""),
            ("[audit.ship]\nbucket = \"ops-audit\"", "audit.ship.bucket", "s3://"),
            ("[audit.ship]\nbucket = \"s3://Ops_Audit/\"", "audit.ship.bucket", "s3://"),
            ("[audit.ship]\nmax_segment = \"64 parsecs\"", "audit.ship.max_segment", "invalid size"),
            ("[audit.ship]\nmax_backlog = \"0\"", "audit.ship.max_backlog", "more than zero"),
            ("[audit]\nchain = false\n[audit.ship]\nbucket = \"s3://ops-audit/\"", "audit.ship.bucket", "audit.chain"),
            ("[audit]\npath = \"-\"\n[audit.ship]\nbucket = \"s3://ops-audit/\"", "audit.ship.bucket", "a file"),
            ("[audit.ship]\nbukket = \"s3://ops-audit/\"", "", "bukket"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.key == key || key.is_empty(), "{text}: {e}");
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn imds_section() {
        let c = parse(
            "[imds]\nlisten = \"127.0.0.1:9945\"\nexempt_users = [\"hive\"]\nexempt_uids_below = 1000\n\
             upstream = \"http://127.0.0.1:8080/\"\n",
        )
        .unwrap();
        assert_eq!(c.imds.listen, Some("127.0.0.1:9945".parse().unwrap()));
        assert_eq!(c.imds.exempt_users, ["hive"]);
        assert_eq!(c.imds.exempt_uids_below, 1000);
        assert_eq!(c.imds.upstream.to_string(), "http://127.0.0.1:8080");
        assert_eq!(parse("[imds]\nlisten = \"\"\n").unwrap().imds.listen, None, "empty: off");
    }

    #[test]
    fn the_metadata_listener_listens_on_ipv6_loopback_at_its_port_too() {
        let c = parse("[imds]\nlisten = \"127.0.0.1:254\"\n").unwrap();
        let both: Vec<SocketAddr> = vec!["127.0.0.1:254".parse().unwrap(), "[::1]:254".parse().unwrap()];
        assert_eq!(c.imds.listen_addrs(), both);
        assert_eq!(c.imds.listen, Some(DEFAULT_IMDS_LISTEN));
        assert!(parse("").unwrap().imds.listen_addrs().is_empty(), "off: no listener");
        // The API on [::1] at that port would take the IPv6 redirect's connections.
        let e = parse("[server]\nlisten = [\"[::1]:254\"]\n[imds]\nlisten = \"127.0.0.1:254\"\n").unwrap_err();
        assert_eq!(e.key, "imds.listen");
        assert!(e.message.contains("shares its port with [::1]:254 in server.listen"), "{}", e.message);
    }

    #[test]
    fn error_names_file_line_column_key() {
        let e = parse("[[mapping]]\nrole = \"arn:aws:iam::12:role/x\"\n").unwrap_err();
        assert_eq!(
            e.to_string().split(": ").take(2).collect::<Vec<_>>(),
            ["/etc/x/config.toml:2:8", "mapping[0].role"]
        );
        let e = parse("[server]\nlisten = [\"10.0.0.1:9944\"]\n").unwrap_err();
        assert_eq!((e.line, e.column, e.key.as_str()), (Some(2), Some(11), "server.listen[0]"));
        let e = parse("[server]\nlsten = []\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (Some(2), "server.lsten"));
    }
}
