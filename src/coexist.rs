//! Coexistence with EMR's own mechanisms: what on a node would fight the agent. PURE — every function
//! takes text (site XML, `iptables-save` / `nft list ruleset` output, a process list, an EMR security
//! configuration) and returns [`Finding`]s; `check` gathers the text ([`crate::cli::check`]).
//!
//! What fights the agent, and where it shows (the names are EMR's, as its documentation gives them):
//! - **EMR's own role mappings**: `fs.s3.authorization.roleMapping` (emrfs-site) or
//!   `fs.s3a.authorization.roleMapping` (core-site, EMR 7.10 and later), or the security configuration's
//!   `AuthorizationConfiguration.EmrFsConfiguration.RoleMappings`. EMRFS/S3A choose a role by them before
//!   the agent's provider is asked. Works, with a caveat: a warning.
//! - **EMR's secret agent** (Apache Ranger or Lake Formation integration). EMR's management guide
//!   ("Amazon EMR components for use with Apache Ranger", `emr-ranger-components`, and the Lake Formation
//!   twin `emr-lf-components`): it "runs on every node in the cluster and intercepts calls to the Instance
//!   Metadata Service", "runs as the emrsecretagent user", logs to `/emr/secretagent/log`, and "relies on a
//!   specific set of iptables rules ... the NAT table rules must be preserved". Its systemd unit is
//!   `emrsecretagent` (the Ranger troubleshooting page quotes "journalctl log for emrsecretagent"). Its
//!   NAT rules let its own users through by owner (`owner UID match emrsecretagent`, `knox`, as
//!   awslabs/amazon-emr-user-role-mapper's ba-script.sh shows them in a listing) and send the rest to it.
//!   Security configuration: `AuthorizationConfiguration.RangerConfiguration` or
//!   `.LakeFormationConfiguration`.
//! - **EMR User Role Mapper** (awslabs/amazon-emr-user-role-mapper, `usr/install/ba-script.sh`): an
//!   instance-metadata proxy running as `userrolemapper` (unit `emr-user-role-mapper`), with a nat
//!   `OUTPUT` DNAT of 169.254.169.254:80 to 127.0.0.1:9944 commented `(added by userrolemapper) ...` —
//!   the agent's own default API port.
//! - **Any other NAT rule for 169.254.169.254** that is not the agent's (its own are the nft table
//!   `emrfs_role_agent`, any family, and the iptables chain `EMRFS-ROLE-AGENT` with the jump to it:
//!   [`crate::redirect`]).
//! - **Runtime-role clusters**: security configuration `AuthorizationConfiguration.IAMConfiguration.
//!   EnableApplicationScopedIAMRole: true` (EMR's "Runtime roles for Amazon EMR steps": jobs submitted with
//!   a runtime role "can't access the Instance Metadata Service on the EC2 instances of the cluster");
//!   on the node, filter rules that `REJECT`/`DROP` traffic to 169.254.169.254 (by owner).
//!
//! Interception on (`[imds] listen`) beside another interceptor cannot work: the first NAT binding of a
//! connection wins, so one of the two is bypassed (the agent's rules come first: EMR's secret agent would
//! no longer see the requests it authorises). That is a refusal; everything else is a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::emr;
use crate::redirect::{IPTABLES_CHAIN, NFT_TABLE};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Works, with a caveat the operator should know.
    Warning,
    /// Cannot work: `check` exits non-zero, the bootstrap installs nothing.
    Refusal,
}

/// One thing on the node that would fight the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// Where it was seen: `FILE:LINE`, `FILE`, or a firewall listing's name.
    pub source: String,
    /// What it is, what it does to the agent, and what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Warning => "warning",
            Severity::Refusal => "refused",
        };
        write!(f, "{label}: {}: {}", self.source, self.message)
    }
}

fn finding(severity: Severity, source: &str, message: String) -> Finding {
    Finding { severity, source: source.to_owned(), message }
}

/// The instance metadata service's addresses (IPv4, and IPv6 on Nitro instances where it is enabled).
pub const METADATA_ADDRESSES: [&str; 2] = ["169.254.169.254", "fd00:ec2::254"];

// ---- Hadoop site files ------------------------------------------------------------------------

/// EMR's own role mappings set in a Hadoop site file (`path` names it in the findings).
pub fn site_findings(path: &str, text: &str) -> Vec<Finding> {
    match emr::hadoop_site_role_mappings(text) {
        Err(e) => vec![finding(Severity::Warning, path, format!("cannot look for EMR role mappings: {e}"))],
        Ok(found) => found
            .into_iter()
            .map(|emr::SiteRoleMapping { key, position: (line, _), .. }| {
                finding(
                    Severity::Warning,
                    &format!("{path}:{line}"),
                    format!(
                        "{key} is set: EMR's own role mapping is active beside the agent, and EMRFS/S3A choose a \
                         role by it before the agent is asked, so the agent's rules are not the ones that hold \
                         for those requests. Import them into the agent (emrfs-role-agent import {path}), then \
                         remove the property (or the security configuration's RoleMappings)"
                    ),
                )
            })
            .collect(),
    }
}

// ---- Firewall rules -----------------------------------------------------------------------------

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

const SECRET_AGENT: &str = "EMR's secret agent";

/// What another interceptor is, for the operator who did not install it.
fn origin(who: &str) -> &'static str {
    if who == SECRET_AGENT {
        " (EMR runs it on every node of a cluster with its Apache Ranger or Lake Formation integration)"
    } else {
        ""
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
                     clients wired to it keep working), or remove {who} from this cluster{}",
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
             agent's rules decide. Give them a deny rule (or keep fallback = \"deny\") if they must stay without \
             credentials, or exempt them"
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

// ---- Processes ----------------------------------------------------------------------------------

/// Paths on the secret agent's command line (its install and log directories), besides its user.
const SECRET_AGENT_PATHS: [&str; 2] = ["/usr/share/aws/emr/secretagent/", "/emr/secretagent/"];
/// The User Role Mapper's main class and jar (ba-script.sh starts `com.amazon.emr.UserRoleMappingServer`
/// from `emr-user-role-mapper-application-*.jar`), besides its user.
const USER_ROLE_MAPPER_MARKS: [&str; 2] = ["UserRoleMappingServer", "emr-user-role-mapper-application"];

/// Another metadata interceptor among the processes. `text` is one process a line, its user first, then
/// its command line (`ps -eo user:32=,args=`; `check` reads the same from /proc).
pub fn process_findings(source: &str, text: &str, interception: bool) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    let mut findings = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let (user, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let args = args.trim();
        let (who, extra) = if user == "emrsecretagent" || SECRET_AGENT_PATHS.iter().any(|p| args.contains(p)) {
            (SECRET_AGENT, "")
        } else if user == "userrolemapper" || USER_ROLE_MAPPER_MARKS.iter().any(|p| args.contains(p)) {
            ("EMR User Role Mapper", " It also listens on 127.0.0.1:9944, the agent's default API port.")
        } else {
            continue;
        };
        if !seen.insert(who) {
            continue;
        }
        let shown: String = args.chars().take(120).collect();
        findings.push(if interception {
            finding(
                Severity::Refusal,
                source,
                format!(
                    "{who} is running (user {user}: {shown}): it intercepts instance metadata itself, so the \
                     agent's interception would fight it. Turn off [imds] listen, or remove {who} from this \
                     cluster{}.{extra}",
                    origin(who)
                ),
            )
        } else {
            finding(
                Severity::Warning,
                source,
                format!(
                    "{who} is running (user {user}: {shown}): it answers instance-metadata requests itself; \
                     only clients wired to the agent's API are decided by the agent's rules{}.{extra}",
                    origin(who)
                ),
            )
        });
    }
    findings
}

// ---- EMR security configuration ---------------------------------------------------------------

/// What an EMR security configuration (raw, or `describe-security-configuration` output) turns on that
/// fights the agent.
pub fn security_configuration_findings(source: &str, text: &str, interception: bool) -> Vec<Finding> {
    let top: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return vec![finding(Severity::Warning, source, format!("cannot read it as a security configuration: {e}"))]
        }
    };
    let config = match top.get("SecurityConfiguration") {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v) => v,
            Err(e) => {
                return vec![finding(
                    Severity::Warning,
                    source,
                    format!("SecurityConfiguration is not valid JSON: {e}"),
                )]
            }
        },
        Some(v) => v.clone(),
        None => top,
    };
    let auth = config.get("AuthorizationConfiguration");
    let at = |path: &[&str]| path.iter().try_fold(auth?, |v, k| v.get(k));
    let mut findings = Vec::new();
    if at(&["EmrFsConfiguration", "RoleMappings"]).and_then(Value::as_array).is_some_and(|m| !m.is_empty()) {
        findings.push(finding(
            Severity::Warning,
            source,
            format!(
                "AuthorizationConfiguration.EmrFsConfiguration.RoleMappings is set: EMRFS chooses a role by them \
                 before the agent's provider is asked, so the agent's rules are not the ones that hold for those \
                 requests. Import them into the agent (emrfs-role-agent import {source}), then give the cluster a \
                 security configuration without RoleMappings"
            ),
        ));
    }
    for key in ["RangerConfiguration", "LakeFormationConfiguration"] {
        if at(&[key]).is_none() {
            continue;
        }
        let what = format!(
            "AuthorizationConfiguration.{key} is set: EMR runs its secret agent on every node, which intercepts \
             instance metadata with NAT rules of its own (as the emrsecretagent user)"
        );
        findings.push(if interception {
            finding(
                Severity::Refusal,
                source,
                format!(
                    "{what}; the agent's interception would take those requests from it. Unset [imds] listen on \
                     this cluster (the agent's HTTP API and the clients wired to it keep working)"
                ),
            )
        } else {
            finding(
                Severity::Warning,
                source,
                format!("{what}: processes on the SDK default chain are answered by it, not by the agent"),
            )
        });
    }
    if at(&["IAMConfiguration", "EnableApplicationScopedIAMRole"]).and_then(Value::as_bool) == Some(true) {
        let what = "AuthorizationConfiguration.IAMConfiguration.EnableApplicationScopedIAMRole is true: a \
                    runtime-role cluster, where EMR keeps jobs submitted with a runtime role away from the \
                    metadata service and hands them the step's role itself";
        findings.push(if interception {
            finding(
                Severity::Refusal,
                source,
                format!(
                    "{what}; the agent's interception would answer those jobs' metadata requests by its own rules \
                     instead. Unset [imds] listen, or use the agent or runtime roles on this cluster, not both"
                ),
            )
        } else {
            finding(
                Severity::Warning,
                source,
                format!(
                    "{what}. Clients wired to the agent (the EMRFS/S3A provider, the JVM hooks) ask the agent \
                     first, so its rules, not the step's runtime role, decide their S3 access: use the agent or \
                     runtime roles on this cluster, not both"
                ),
            )
        });
    }
    findings
}

/// The node's findings, gathered: a refusal among them means the agent must not be installed as asked.
pub fn refused(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Refusal)
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
