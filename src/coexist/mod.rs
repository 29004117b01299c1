//! Coexistence with EMR's own mechanisms: what on a node would fight the agent. PURE — every function
//! takes text (site XML, `iptables-save` / `nft list ruleset` output, a process list, an EMR security
//! configuration) and returns [`Finding`]s (firewall listings: `firewall`); `check` gathers the text
//! ([`crate::cli::check`]).
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

mod firewall;

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::emr;

pub use firewall::{
    firewall_findings, parse_iptables_save, parse_nft, parse_ruleset, Action, Kind, Rule, METADATA_ADDRESSES,
};

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

const SECRET_AGENT: &str = "EMR's secret agent";

/// What another interceptor is, for the operator who did not install it.
fn origin(who: &str) -> &'static str {
    if who == SECRET_AGENT {
        " (EMR runs it on every node of a cluster with its Apache Ranger or Lake Formation integration)"
    } else {
        ""
    }
}

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
