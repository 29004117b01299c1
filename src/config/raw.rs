//! The configuration as TOML has it: serde with `deny_unknown_fields` into structs that keep each
//! value's span, so that validation can point at the line and column of what it rejects.

use std::collections::HashMap;

use serde::Deserialize;
use toml::Spanned;

use super::validate::Ctx;
use super::ConfigError;

pub(super) type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) identity: RawIdentity,
    #[serde(default)]
    pub(super) sts: RawSts,
    #[serde(default)]
    pub(super) cache: RawCache,
    #[serde(default)]
    pub(super) audit: RawAudit,
    #[serde(default)]
    pub(super) fallback: RawFallback,
    #[serde(default)]
    pub(super) imds: RawImds,
    #[serde(default)]
    pub(super) access_grants: RawAccessGrants,
    pub(super) mappings_file: Option<S<String>>,
    #[serde(default)]
    pub(super) mapping: Vec<S<RawMapping>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<S<Vec<S<String>>>>,
    pub(super) token_file: Option<S<String>>,
    pub(super) require_token: Option<bool>,
    pub(super) max_connections: Option<S<i64>>,
    pub(super) max_connections_per_caller: Option<S<i64>>,
    pub(super) max_requests_per_caller: Option<S<i64>>,
    pub(super) header_read_timeout: Option<S<String>>,
    pub(super) request_timeout: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    pub(super) trusted_proxy_users: Option<Vec<S<String>>>,
    pub(super) min_asserted_uid: Option<S<i64>>,
    pub(super) proxies: Option<std::collections::BTreeMap<String, RawProxy>>,
    pub(super) group_cache_ttl: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub(super) users: Option<Vec<S<String>>>,
    pub(super) groups: Option<Vec<S<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSts {
    pub(super) region: Option<S<String>>,
    pub(super) endpoint_url: Option<S<String>>,
    pub(super) session_duration: Option<S<String>>,
    pub(super) refresh_before_expiry: Option<S<String>>,
    pub(super) min_remaining_when_stale: Option<S<String>>,
    pub(super) session_name: Option<S<String>>,
    pub(super) source_identity: Option<S<String>>,
    pub(super) max_calls_per_second: Option<S<i64>>,
    pub(super) max_calls_per_caller: Option<S<i64>>,
    pub(super) call_timeout: Option<S<String>>,
    pub(super) negative_cache: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) max_sessions: Option<S<i64>>,
    pub(super) idle_timeout: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccessGrants {
    pub(super) endpoint_url: Option<S<String>>,
    pub(super) privilege: Option<S<String>>,
    pub(super) duration: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub(super) path: Option<S<String>>,
    pub(super) durability: Option<S<String>>,
    pub(super) format: Option<S<String>>,
    pub(super) chain: Option<bool>,
    #[serde(default)]
    pub(super) ship: RawShip,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShip {
    pub(super) bucket: Option<S<String>>,
    pub(super) endpoint_url: Option<S<String>>,
    pub(super) interval: Option<S<String>>,
    pub(super) max_segment: Option<S<String>>,
    pub(super) max_backlog: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImds {
    pub(super) listen: Option<S<String>>,
    pub(super) exempt_users: Option<Vec<S<String>>>,
    pub(super) exempt_uids_below: Option<S<i64>>,
    pub(super) upstream: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFallback {
    pub(super) mode: Option<S<String>>,
    // Only to explain the mistake: in TOML a key written after `[fallback]` belongs to that table.
    pub(super) mappings_file: Option<S<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMapping {
    pub(super) name: Option<S<String>>,
    pub(super) effect: Option<S<String>>,
    pub(super) role: Option<S<String>>,
    pub(super) users: Option<Vec<S<String>>>,
    pub(super) groups: Option<Vec<S<String>>>,
    pub(super) prefixes: Option<Vec<S<String>>>,
    pub(super) access: Option<Vec<S<String>>>,
    pub(super) external_id: Option<S<String>>,
    pub(super) duration: Option<S<String>>,
    pub(super) session_policy: Option<S<String>>,
    pub(super) scope_to_prefix: Option<S<bool>>,
}

pub(super) fn parse_raw(ctx: &Ctx<'_>) -> Result<RawConfig, ConfigError> {
    toml::from_str::<RawConfig>(ctx.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let key = key_at(ctx.text, span.start);
        ctx.err(span, key, e.message().trim().to_owned())
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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
