//! Firewall listings (`iptables-save`, `nft list ruleset`) → the rules that act on instance-metadata traffic,
//! and what among them fights the agent: another interceptor's redirect, filter rules that block the metadata
//! service. PURE. The agent's own rules are told by their names ([`crate::redirect`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{finding, origin, Finding, Severity, SECRET_AGENT};
use crate::redirect::{IPTABLES_CHAIN, NFT_TABLE};

/// The instance metadata service's addresses (IPv4, and IPv6 on Nitro instances where it is enabled).
pub const METADATA_ADDRESSES: [&str; 2] = ["169.254.169.254", "fd00:ec2::254"];

/// What a firewall rule does with the traffic it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// DNAT or REDIRECT: the connection goes elsewhere (`to`, when the rule says).
    Redirect {
        to: Option<String>,
    },
    /// DROP or REJECT.
    Block,
    /// ACCEPT or RETURN: left alone here.
    Pass,
    /// To another chain (`-j CHAIN`, `jump`, `goto`).
    Jump(String),
    Other,
}

/// Which kind of table or chain a rule sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nat,
    Filter,
    Other,
}

/// One firewall rule, as both listings reduce to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `nat OUTPUT` (iptables) or `ip nat OUTPUT` (nft).
    pub chain: String,
    pub kind: Kind,
    /// It names a metadata address as its destination.
    pub to_metadata: bool,
    pub action: Action,
    /// The owner match, as written (`emrsecretagent`, `! 0`, `994`).
    pub owner: Option<String>,
    pub comment: Option<String>,
    /// One of the agent's own rules ([`crate::redirect`]).
    pub ours: bool,
    /// The rule as listed.
    pub text: String,
}

/// Splits an iptables-save rule line into words; `"..."` (with `\"` inside) is one word.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => word.extend(chars.next()),
                    '"' => break,
                    c => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
    out
}

fn is_metadata(address: &str) -> bool {
    let host = address.split('/').next().unwrap_or(address);
    METADATA_ADDRESSES.iter().any(|m| host.eq_ignore_ascii_case(m))
}

/// The rules of `iptables-save` (or `ip6tables-save`, `iptables-legacy-save`) output.
pub fn parse_iptables_save(text: &str) -> Vec<Rule> {
    // The chains each table declares (`:NAME POLICY [counters]`; a user chain's policy is `-`): a target
    // that names one is a jump.
    let mut user_chains: BTreeSet<(String, String)> = BTreeSet::new();
    let mut table = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_owned();
        } else if let Some(decl) = line.strip_prefix(':') {
            let w = words(decl);
            if w.get(1).map(String::as_str) == Some("-") {
                user_chains.insert((table.clone(), w[0].clone()));
            }
        }
    }
    let mut rules = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_owned();
            continue;
        }
        let Some(rest) = line.strip_prefix("-A ") else { continue };
        let w = words(rest);
        let Some(chain) = w.first().cloned() else { continue };
        let (mut to_metadata, mut action, mut owner, mut comment) = (false, Action::Other, None, None);
        let mut target = None;
        let mut i = 1;
        while i < w.len() {
            let negated = i > 0 && w[i - 1] == "!";
            let next = w.get(i + 1).cloned();
            match w[i].as_str() {
                "-d" | "--destination" if !negated => to_metadata |= next.as_deref().is_some_and(is_metadata),
                "--uid-owner" => owner = next.map(|n| if negated { format!("! {n}") } else { n }),
                "--comment" => comment = next,
                "-j" | "-g" | "--jump" | "--goto" => target = next,
                "--to-destination" | "--to-ports" => {
                    if let Action::Redirect { to } = &mut action {
                        *to = next;
                    } else {
                        action = Action::Redirect { to: next };
                    }
                }
                _ => {}
            }
            i += 1;
        }
        if let Some(t) = &target {
            action = match t.as_str() {
                "DNAT" | "REDIRECT" => match action {
                    a @ Action::Redirect { .. } => a,
                    _ => Action::Redirect { to: None },
                },
                "DROP" | "REJECT" => Action::Block,
                "ACCEPT" | "RETURN" => Action::Pass,
                t if user_chains.contains(&(table.clone(), t.to_owned())) => Action::Jump(t.to_owned()),
                _ => Action::Other,
            };
        } else {
            action = Action::Other;
        }
        let kind = match table.as_str() {
            "nat" => Kind::Nat,
            "filter" => Kind::Filter,
            _ => Kind::Other,
        };
        let ours = chain == IPTABLES_CHAIN || target.as_deref() == Some(IPTABLES_CHAIN);
        rules.push(Rule {
            chain: format!("{table} {chain}"),
            kind,
            to_metadata,
            action,
            owner,
            comment,
            ours,
            text: format!("-A {rest}"),
        });
    }
    rules
}

/// The rules of `nft list ruleset` (or `nft list table …`) output.
pub fn parse_nft(text: &str) -> Vec<Rule> {
    let mut table: Option<(String, String)> = None; // (family, name)
    let mut chain: Option<String> = None;
    let mut kinds: BTreeMap<String, Kind> = BTreeMap::new();
    let mut rules = Vec::new();
    for line in text.lines().map(str::trim) {
        let w = words(line);
        match w.first().map(String::as_str) {
            Some("table") if line.ends_with('{') => {
                let (family, name) = match w.len() {
                    4.. => (w[1].clone(), w[2].clone()),
                    _ => ("ip".to_owned(), w.get(1).cloned().unwrap_or_default()),
                };
                table = Some((family, name));
                continue;
            }
            Some("chain") if line.ends_with('{') => {
                chain = w.get(1).cloned();
                continue;
            }
            None => continue,
            Some("}") => {
                if chain.take().is_none() {
                    table = None;
                }
                continue;
            }
            Some("type") if chain.is_some() => {
                let kind = match w.get(1).map(String::as_str) {
                    Some("nat") => Kind::Nat,
                    Some("filter") => Kind::Filter,
                    _ => Kind::Other,
                };
                if let (Some((f, t)), Some(c)) = (&table, &chain) {
                    kinds.insert(format!("{f} {t} {c}"), kind);
                }
                continue;
            }
            _ => {}
        }
        let (Some((family, name)), Some(c)) = (&table, &chain) else { continue };
        if line.starts_with("policy ") || line.starts_with('#') {
            continue;
        }
        let (mut to_metadata, mut action, mut owner, mut comment) = (false, Action::Other, None, None);
        for (i, word) in w.iter().enumerate() {
            let next = w.get(i + 1).cloned();
            match word.as_str() {
                "daddr" => {
                    let negated = next.as_deref() == Some("!=");
                    let address = if negated { w.get(i + 2) } else { next.as_ref() };
                    to_metadata |= !negated && address.is_some_and(|a| is_metadata(a));
                }
                "skuid" => {
                    owner = match next.as_deref() {
                        Some("!=") => w.get(i + 2).map(|u| format!("! {u}")),
                        Some(op @ ("<" | ">" | "<=" | ">=")) => w.get(i + 2).map(|u| format!("{op} {u}")),
                        _ => next,
                    }
                }
                "comment" => comment = next,
                "dnat" | "redirect" => {
                    let to = match next.as_deref() {
                        Some("to") => w.get(i + 2).cloned(),
                        Some("ip" | "ip6") if w.get(i + 2).map(String::as_str) == Some("to") => w.get(i + 3).cloned(),
                        _ => None,
                    };
                    action = Action::Redirect { to };
                }
                "drop" | "reject" => action = Action::Block,
                "accept" | "return" => action = Action::Pass,
                "jump" | "goto" => {
                    if let Some(n) = next {
                        action = Action::Jump(n)
                    }
                }
                _ => {}
            }
        }
        rules.push(Rule {
            chain: format!("{family} {name} {c}"),
            kind: Kind::Other, // resolved below, once every chain's type is known
            to_metadata,
            action,
            owner,
            comment,
            ours: name == NFT_TABLE,
            text: line.to_owned(),
        });
    }
    for r in &mut rules {
        r.kind = kinds.get(&r.chain).copied().unwrap_or(Kind::Other);
    }
    rules
}

/// Reads either listing (told apart by its first meaningful line).
pub fn parse_ruleset(text: &str) -> Vec<Rule> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("");
    if first.starts_with("table ") {
        parse_nft(text)
    } else {
        parse_iptables_save(text)
    }
}

/// The rules that act on metadata traffic: those that name a metadata address, and every rule of a
/// chain they jump to (and so on), each with the kind of table that traffic was in.
fn metadata_rules(rules: &[Rule]) -> Vec<(Rule, Kind)> {
    let prefix = |chain: &str| chain.rsplit_once(' ').map(|(p, _)| p.to_owned()).unwrap_or_default();
    let mut reached: BTreeMap<String, Kind> = BTreeMap::new();
    let mut out = Vec::new();
    let mut frontier: Vec<(String, Kind, bool)> = Vec::new();
    for r in rules.iter().filter(|r| r.to_metadata) {
        out.push((r.clone(), r.kind));
        if let Action::Jump(target) = &r.action {
            frontier.push((format!("{} {target}", prefix(&r.chain)), r.kind, r.ours));
        }
    }
    while let Some((chain, kind, ours)) = frontier.pop() {
        if reached.insert(chain.clone(), kind).is_some() {
            continue;
        }
        for r in rules.iter().filter(|r| r.chain == chain && !r.to_metadata) {
            let mut r = r.clone();
            r.ours |= ours;
            if let Action::Jump(target) = &r.action {
                frontier.push((format!("{} {target}", prefix(&r.chain)), kind, r.ours));
            }
            out.push((r, kind));
        }
    }
    out
}

/// An owner match as a user name: `995` → `emrsecretagent` (listings print uids), `! 0` → `! root`.
fn owner_name(owner: &str, user_of: &dyn Fn(u32) -> Option<String>) -> String {
    let (prefix, id) = owner.rsplit_once(' ').map_or(("", owner), |(p, id)| (p, id));
    let name = id.trim_matches('"').parse::<u32>().ok().and_then(user_of).unwrap_or_else(|| id.to_owned());
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix} {name}")
    }
}

/// Who else intercepts instance metadata, told by the rules around its redirect (owners as names).
fn interceptor_name(context: &[&Rule], user_of: &dyn Fn(u32) -> Option<String>) -> &'static str {
    let mentions = |needle: &str| {
        context.iter().any(|r| {
            r.owner.as_deref().is_some_and(|o| owner_name(o, user_of).contains(needle))
                || r.comment.as_deref().is_some_and(|c| c.contains(needle))
        })
    };
    if mentions("emrsecretagent") || mentions("secretagent") {
        SECRET_AGENT
    } else if mentions("userrolemapper") {
        "EMR User Role Mapper"
    } else {
        "another metadata interceptor"
    }
}

/// What the firewall listing `source` (its text: `iptables-save` or `nft list ruleset` output) holds
/// that fights the agent, with interception on or off. `user_of` names the uids the listing prints.
pub fn firewall_findings(
    source: &str,
    text: &str,
    interception: bool,
    user_of: &dyn Fn(u32) -> Option<String>,
) -> Vec<Finding> {
    let rules = parse_ruleset(text);
    let relevant = metadata_rules(&rules);
    let foreign: Vec<&Rule> = relevant.iter().filter(|(r, _)| !r.ours).map(|(r, _)| r).collect();
    let mut findings = Vec::new();
    let redirects: Vec<&Rule> = relevant
        .iter()
        .filter(|(r, kind)| !r.ours && *kind == Kind::Nat && matches!(r.action, Action::Redirect { .. }))
        .map(|(r, _)| r)
        .collect();
    if !redirects.is_empty() {
        let who = interceptor_name(&foreign, user_of);
        let listed: Vec<String> = redirects.iter().map(|r| format!("{}: {}", r.chain, r.text)).collect();
        let rules = listed.join("; ");
        findings.push(if interception {
            finding(
                Severity::Refusal,
                source,
                format!(
                    "{who} already redirects instance-metadata traffic ({rules}). Two interceptors cannot both \
                     hold 169.254.169.254: the first NAT rule a connection meets wins, so either the agent or it \
                     is bypassed. Turn off the agent's interception (unset [imds] listen; its HTTP API and the \
                     clients wired to it keep working), or remove the other one from this cluster{}",
                    origin(who)
                ),
            )
        } else {
            finding(
                Severity::Warning,
                source,
                format!(
                    "{who} redirects instance-metadata traffic ({rules}): processes on the SDK default chain get \
                     their credentials from it, not from the agent; only clients wired to the agent's API are \
                     decided by the agent's rules. Do not turn on [imds] listen beside it{}",
                    origin(who)
                ),
            )
        });
    }
    let blocks: Vec<&Rule> = relevant
        .iter()
        .filter(|(r, kind)| !r.ours && *kind == Kind::Filter && r.action == Action::Block)
        .map(|(r, _)| r)
        .collect();
    if !blocks.is_empty() {
        let owners: BTreeSet<String> =
            blocks.iter().filter_map(|r| r.owner.as_deref()).map(|o| owner_name(o, user_of)).collect();
        let whom = if owners.is_empty() {
            "every user".to_owned()
        } else {
            format!("owners {}", owners.into_iter().collect::<Vec<_>>().join(", "))
        };
        let listed: Vec<String> = blocks.iter().map(|r| format!("{}: {}", r.chain, r.text)).collect();
        let rules = listed.join("; ");
        let caveat = if interception {
            "with interception on, the agent's redirect comes first (nat OUTPUT runs before filter OUTPUT), so \
             these users' metadata connections reach the agent's listener instead of being blocked and get what the \
             agent's rules decide. To keep them blocked, exempt them ([imds] exempt_users: their connections then \
             meet this rule), or give them a deny rule (or keep fallback = \"deny\")"
        } else {
            "the agent's own source credentials come from the metadata service: if its user is among those blocked \
             it cannot serve. Clients wired to the agent's API are not blocked by it"
        };
        findings.push(finding(
            Severity::Warning,
            source,
            format!(
                "the metadata service is blocked for {whom} ({rules}), as EMR does for jobs on runtime-role \
                 clusters: {caveat}"
            ),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quoted_comments_whole() {
        assert_eq!(
            words(r#"OUTPUT -m comment --comment "to the \"listener\"" -j X"#),
            ["OUTPUT", "-m", "comment", "--comment", "to the \"listener\"", "-j", "X"]
        );
    }

    #[test]
    fn metadata_addresses_with_and_without_a_prefix_length() {
        assert!(is_metadata("169.254.169.254/32"));
        assert!(is_metadata("FD00:EC2::254/128"));
        assert!(!is_metadata("169.254.169.25"));
        assert!(!is_metadata("169.254.170.2"));
    }
}
