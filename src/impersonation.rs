//! Whether a caller may act for another user (`user=` on the API, `explain --as-proxy`): PURE but
//! for the user lookup it is handed, which it calls only once the caller is known to be a proxy.
//!
//! A proxy is a user named in `identity.trusted_proxy_users`. It never acts for root or an account
//! below `identity.min_asserted_uid` (named, or written `uid:<n>`), and, when
//! `[identity.proxies.<proxy>]` exists, only for the users and groups listed there (as Hadoop's
//! `hadoop.proxyuser.<user>.users/groups`).

use std::fmt::Display;

use crate::caller::Identity;
use crate::config::IdentityConfig;
use crate::refusal::{ErrorCode, Refusal};

/// The identity `caller` gets when it asks for `asserted`: the asserted user's, if `caller` may act
/// for them; `lookup` finds that user's uid and groups.
pub fn act_for<E: Display>(
    config: &IdentityConfig,
    caller: &str,
    asserted: &str,
    lookup: impl FnOnce(&str) -> Result<Identity, E>,
) -> Result<Identity, Refusal> {
    let denied = |message: String| Refusal::new(ErrorCode::ImpersonationDenied, message);
    if !config.trusted_proxy_users.iter().any(|p| p == caller) {
        return Err(denied(format!("user {caller} may not ask for user {asserted}")));
    }
    let identity = lookup(asserted)
        .map_err(|e| Refusal::new(ErrorCode::CredentialsUnavailable, format!("looking up user {asserted}: {e}")))?;
    // Root and the system's own accounts are never anyone's to ask for, named or numbered.
    let uid = identity.uid.or_else(|| asserted.strip_prefix("uid:").and_then(|n| n.parse().ok()));
    if uid.is_some_and(|uid| uid < config.min_asserted_uid) {
        return Err(denied(format!(
            "a proxy never acts for root or an account below uid {} (identity.min_asserted_uid)",
            config.min_asserted_uid
        )));
    }
    if let Some(scope) = config.proxies.get(caller) {
        if !scope.allows(&identity.user, &identity.groups) {
            return Err(denied(format!(
                "user {caller} may act only for the users and groups of identity.proxies.{caller}"
            )));
        }
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::ProxyScope;

    /// The users this table's node knows.
    fn lookup(name: &str) -> Result<Identity, String> {
        let known = |uid: u32, groups: &[&str]| Identity {
            uid: Some(uid),
            user: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        };
        match name {
            "root" => Ok(known(0, &["root"])),
            "hdfs" => Ok(known(990, &["hadoop"])),
            "alice" => Ok(known(1001, &["alice", "analysts"])),
            "bob" => Ok(known(1002, &["bob", "etl"])),
            // Not in passwd: the name stands for itself, no uid.
            "ghost" => Ok(Identity { uid: None, user: name.to_owned(), groups: vec![] }),
            n if n.starts_with("uid:") => Ok(Identity { uid: None, user: n.to_owned(), groups: vec![] }),
            _ => Err("the user database is unreachable".into()),
        }
    }

    #[test]
    fn the_case_table() {
        let config = IdentityConfig {
            trusted_proxy_users: vec!["yarn".into(), "hive".into()],
            proxies: BTreeMap::from([(
                "hive".to_owned(),
                ProxyScope { users: vec!["bob".into()], groups: vec!["analysts".into()] },
            )]),
            ..IdentityConfig::default()
        };
        use ErrorCode::{CredentialsUnavailable as Lookup, ImpersonationDenied as Denied};
        let cases: &[(&str, &str, Result<&str, ErrorCode>)] = &[
            // A proxy with no [identity.proxies] entry acts for any ordinary user.
            ("yarn", "alice", Ok("alice")),
            ("yarn", "bob", Ok("bob")),
            ("yarn", "ghost", Ok("ghost")),
            // Never for root or a system account, by name or by number.
            ("yarn", "root", Err(Denied)),
            ("yarn", "hdfs", Err(Denied)),
            ("yarn", "uid:0", Err(Denied)),
            ("yarn", "uid:999", Err(Denied)),
            ("yarn", "uid:1000", Ok("uid:1000")),
            // Not a proxy at all.
            ("alice", "bob", Err(Denied)),
            ("mallory", "alice", Err(Denied)),
            ("Yarn", "alice", Err(Denied)),
            // A scoped proxy: by user, by group, nothing else.
            ("hive", "bob", Ok("bob")),
            ("hive", "alice", Ok("alice")),
            ("hive", "ghost", Err(Denied)),
            ("hive", "root", Err(Denied)),
            // The directory failed: unavailable, not denied.
            ("yarn", "carol", Err(Lookup)),
        ];
        for (caller, asserted, expected) in cases {
            let got = act_for(&config, caller, asserted, lookup).map(|i| i.user).map_err(|r| r.code);
            assert_eq!(got.as_deref().map_err(|c| *c), *expected, "{caller} for {asserted}");
        }
    }

    #[test]
    fn an_untrusted_caller_never_reaches_the_directory() {
        let config = IdentityConfig::default();
        let refused = act_for(&config, "alice", "bob", |_| -> Result<Identity, String> {
            panic!("looked up a user for a caller that is no proxy")
        });
        assert_eq!(refused.unwrap_err().code, ErrorCode::ImpersonationDenied);
    }
}
