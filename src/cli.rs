//! The `check`, `explain` and `import` commands. They read files and the OS user database (and `check` the
//! node's firewall rules and processes); the decisions themselves come from the pure modules
//! ([`crate::decision`], [`crate::emr`], [`crate::coexist`]), the same code `serve` runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::access::Access;
use crate::audit::{verify, Via};
use crate::caller::{self, Identity};
use crate::coexist;
use crate::config::{Config, ConfigError, FallbackMode};
use crate::decision::{self, Verdict};
use crate::emr;
use crate::grants;
use crate::impersonation;
use crate::location::Location;
use crate::node::NodeInfo;
use crate::redirect::{self, Backend, RedirectError};
use crate::rules::{Mismatch, Request, Rule};
use crate::text::format_duration;

/// A failed command, sorted by exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Invalid configuration: exit 78 (EX_CONFIG).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Bad command line: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Anything else: exit 1.
    #[error("{0}")]
    Other(String),
}

fn io(e: std::io::Error) -> CliError {
    CliError::Other(format!("cannot write output: {e}"))
}

/// Where `check` looks for what on the node would fight the agent ([`crate::coexist`]). A source left
/// `None` is read from this node; a file given in its place is read instead (tests, or a listing taken
/// elsewhere).
#[derive(Clone, Debug, Default)]
pub struct NodeSources {
    /// Hadoop site files that may carry EMR's own role mappings (a missing one is fine).
    pub hadoop_sites: Vec<PathBuf>,
    /// `iptables-save` / `nft list ruleset` listings; `None`: run those commands here.
    pub rulesets: Option<Vec<PathBuf>>,
    /// A process list, one a line: user, then command line (`ps -eo user:32=,args=`); `None`: /proc.
    pub processes: Option<PathBuf>,
    /// The cluster's EMR security configuration (raw JSON or describe-security-configuration output).
    pub security_configuration: Option<PathBuf>,
}

/// `audit verify`: checks the chain through local files, or through what was shipped under each
/// `s3://` URI. Prints a line per log checked; `Ok(false)` when one is broken (its `BROKEN` line
/// names where).
pub fn audit_verify(paths: &[String], out: &mut dyn Write) -> Result<bool, CliError> {
    let (uris, files): (Vec<&String>, Vec<&String>) = paths.iter().partition(|p| p.starts_with("s3://"));
    if !uris.is_empty() && !files.is_empty() {
        return Err(CliError::Usage("give either audit files or s3:// URIs, not both".into()));
    }
    let mut intact = true;
    let mut report = |result: Result<verify::Summary, verify::Break>, out: &mut dyn Write| {
        match result {
            Ok(summary) => writeln!(out, "{summary}"),
            Err(broken) => {
                intact = false;
                writeln!(out, "{broken}")
            }
        }
        .map_err(io)
    };
    if files.is_empty() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Other(e.to_string()))?;
        for uri in uris {
            let (bucket, prefix) = crate::config::split_s3_uri(uri)
                .ok_or_else(|| CliError::Usage(format!("'{uri}' is not an s3://bucket/prefix/ URI")))?;
            let results = runtime.block_on(async {
                let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
                let client = crate::audit::ship::s3_client(&sdk, None);
                verify::shipped(&client, &bucket, &prefix).await
            });
            let results = results.map_err(CliError::Other)?;
            if results.is_empty() {
                return Err(CliError::Other(format!("no shipped audit segments under {uri}")));
            }
            for (node, result) in results {
                write!(out, "{node}: ").map_err(io)?;
                report(result, out)?;
            }
        }
    } else {
        let pieces = files.iter().map(|f| verify::Piece::read(Path::new(f.as_str()))).collect::<Result<Vec<_>, _>>();
        report(verify::verify(pieces.map_err(CliError::Other)?, verify::Missing::File), out)?;
    }
    Ok(intact)
}

/// `check`: loads and validates the configuration and mappings; prints a summary with the rules in order,
/// then what on the node would fight the agent. Something that cannot work beside it (a `refused:` line)
/// fails the command.
pub fn check(config: &Path, mappings: Option<&Path>, node: &NodeSources, out: &mut dyn Write) -> Result<(), CliError> {
    let c = Config::load_with_mappings(config, mappings)?;
    write_summary(&c, mappings, out).map_err(io)?;
    if let Some(warning) = redirect::listener_squattable(&c) {
        writeln!(out, "warning: {warning}").map_err(io)?;
    }
    let (findings, notes) = gather_findings(node, c.imds.listen.is_some())?;
    for note in notes {
        writeln!(out, "note: {note}").map_err(io)?;
    }
    for f in &findings {
        writeln!(out, "{f}").map_err(io)?;
    }
    if coexist::refused(&findings) {
        let n = findings.iter().filter(|f| f.severity == coexist::Severity::Refusal).count();
        return Err(CliError::Other(format!(
            "refused: {n} thing(s) on this node would fight the agent as configured (the refused: lines above)"
        )));
    }
    Ok(())
}

/// Where EMR keeps the Hadoop settings that can carry its own role mappings: S3A's (core-site, EMR 7.10
/// and later) and EMRFS's.
pub const EMR_SITE_FILES: [&str; 2] =
    ["/etc/hadoop/conf/core-site.xml", "/usr/share/aws/emr/emrfs/conf/emrfs-site.xml"];

/// Reads every source `node` names (or this node's own) and asks [`crate::coexist`] about them: the
/// findings, and notes on what of this node could not be looked at. A file named on the command line that
/// cannot be read is a usage error.
fn gather_findings(node: &NodeSources, interception: bool) -> Result<(Vec<coexist::Finding>, Vec<String>), CliError> {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let read = |path: &Path| std::fs::read_to_string(path);
    let named = |flag: &str, path: &Path| {
        read(path).map_err(|e| CliError::Usage(format!("{flag} {}: cannot read it: {e}", path.display())))
    };
    for site in &node.hadoop_sites {
        match read(site) {
            Ok(text) => findings.extend(coexist::site_findings(&site.display().to_string(), &text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => findings.push(coexist::Finding {
                severity: coexist::Severity::Warning,
                source: site.display().to_string(),
                message: format!("cannot read it to look for EMR role mappings: {e}"),
            }),
        }
    }
    if let Some(path) = &node.security_configuration {
        let text = named("--security-configuration", path)?;
        findings.extend(coexist::security_configuration_findings(&path.display().to_string(), &text, interception));
    }
    let listings: Vec<(String, std::io::Result<String>)> = match &node.rulesets {
        Some(files) => {
            let mut listings = Vec::new();
            for f in files {
                listings.push((f.display().to_string(), Ok(named("--ruleset", f)?)));
            }
            listings
        }
        None => firewall_listings(),
    };
    for (source, listing) in listings {
        match listing {
            Ok(text) => findings.extend(coexist::firewall_findings(&source, &text, interception, &user_name)),
            Err(e) => notes.push(format!(
                "{source}: cannot list the firewall rules ({e}): other metadata interceptors were not looked for \
                 (run check as root)"
            )),
        }
    }
    let (source, processes) = match &node.processes {
        Some(path) => (path.display().to_string(), named("--processes", path)?),
        None => ("processes".to_owned(), process_list()),
    };
    findings.extend(coexist::process_findings(&source, &processes, interception));
    Ok((findings, notes))
}

/// This node's firewall rules: nft's ruleset and the iptables-legacy tables when nft is installed (the
/// iptables-nft rules are in nft's listing), else iptables-save's; IPv4 and IPv6.
fn firewall_listings() -> Vec<(String, std::io::Result<String>)> {
    let listing = |program: &str, args: &[&str]| -> (String, std::io::Result<String>) {
        let name = std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
        let output = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output();
        let result = match output {
            Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
            Ok(o) => Err(std::io::Error::other(format!(
                "{}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim().replace('\n', " ")
            ))),
            Err(e) => Err(e),
        };
        (name, result)
    };
    let mut out = Vec::new();
    if redirect::Backend::Auto.resolve() == redirect::Backend::Nft {
        out.push(listing("nft", &["list", "ruleset"]));
        for legacy in ["iptables-legacy-save", "ip6tables-legacy-save"] {
            if on_path(legacy) {
                out.push(listing(legacy, &[]));
            }
        }
    } else {
        for save in ["iptables-save", "ip6tables-save"] {
            if on_path(save) {
                out.push(listing(save, &[]));
            }
        }
    }
    out
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The name of `uid` in this node's user database.
fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name)
}

/// This node's processes as [`coexist::process_findings`] reads them: owner, then command line.
fn process_list() -> String {
    let mut names: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for entry in entries.flatten() {
        let pid = entry.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = entry.path();
        let (Ok(status), Ok(cmdline)) =
            (std::fs::read_to_string(dir.join("status")), std::fs::read(dir.join("cmdline")))
        else {
            continue;
        };
        let Some(uid) = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok())
        else {
            continue;
        };
        let user = names.entry(uid).or_insert_with(|| user_name(uid).unwrap_or_else(|| uid.to_string()));
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        out.push_str(&format!("{user} {}\n", args.join(" ")));
    }
    out
}

fn write_summary(c: &Config, checked_mappings: Option<&Path>, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{}: configuration is valid", c.source.display())?;
    let listen: Vec<String> = c.server.listen.iter().map(ToString::to_string).collect();
    writeln!(out, "listen:        {}", listen.join(", "))?;
    writeln!(
        out,
        "token:         {} ({})",
        c.server.token_file.display(),
        if c.server.require_token { "required" } else { "not required" }
    )?;
    writeln!(
        out,
        "sts:           session {}, refresh {} before expiry, session name \"{}\"{}",
        format_duration(c.sts.session_duration),
        format_duration(c.sts.refresh_before_expiry),
        c.sts.session_name,
        c.sts.source_identity.as_ref().map(|t| format!(", source identity \"{t}\"")).unwrap_or_default()
    )?;
    writeln!(
        out,
        "audit:         {} ({}, {}, chain {})",
        c.audit.path,
        c.audit.durability,
        match c.audit.format {
            crate::config::AuditFormat::Native => "native",
            crate::config::AuditFormat::Ocsf => "ocsf",
        },
        if c.audit.chain { "on" } else { "off" }
    )?;
    if let Some(ship) = &c.audit.ship {
        writeln!(
            out,
            "audit ship:    s3://{}/{} every {} or {} bytes, backlog alert above {} bytes",
            ship.bucket,
            ship.prefix,
            format_duration(ship.interval),
            ship.max_segment,
            ship.max_backlog
        )?;
    }
    writeln!(out, "fallback:      {}", c.fallback)?;
    match c.imds.listen {
        None => writeln!(out, "imds:          off")?,
        Some(listen) => {
            writeln!(out, "imds:          {listen}, other paths forwarded to {}", c.imds.upstream)?;
            write_exempt(&redirect::Exemptions::of(c, redirect::DEFAULT_AGENT_USER), out)?;
        }
    }
    match (&c.mappings_file, checked_mappings) {
        (Some(f), Some(checked)) => writeln!(out, "mappings_file: {} (checked: {})", f.display(), checked.display())?,
        (Some(f), None) => writeln!(out, "mappings_file: {}", f.display())?,
        (None, _) => {}
    }
    let rules = c.rules.rules();
    writeln!(out, "rules:         {} (evaluated in order, first match decides)", rules.len())?;
    for r in rules {
        writeln!(out, "  {:>3}  {}", r.index, describe_rule(r))?;
    }
    writeln!(out, "  ---  no match: {}", c.fallback)
}

/// One line describing a rule: name, effect, role, conditions, options.
pub fn describe_rule(r: &Rule) -> String {
    let mut s = format!("{}  {}", r.name, r.effect);
    if let Some(role) = r.effect.role() {
        s.push_str(&format!(" {role}"));
    }
    s.push_str(" when ");
    let mut conds = Vec::new();
    if !r.users.is_empty() {
        conds.push(format!("user in [{}]", r.users.join(", ")));
    }
    if !r.groups.is_empty() {
        conds.push(format!("group in [{}]", r.groups.join(", ")));
    }
    if !r.prefixes.is_empty() {
        let p: Vec<String> =
            r.prefixes.iter().map(|p| format!("{}{}", p, if p.is_glob() { " (glob)" } else { "" })).collect();
        conds.push(format!("location in [{}]", p.join(", ")));
    }
    if let Some(access) = r.access {
        conds.push(format!("access {access}"));
    }
    if conds.is_empty() {
        conds.push("always".into());
    }
    s.push_str(&conds.join(" and "));
    let mut opts = Vec::new();
    if let Some(d) = r.duration {
        opts.push(format!("duration {}", format_duration(d)));
    }
    if r.external_id.is_some() {
        opts.push("external id".into());
    }
    if r.session_policy.is_some() {
        opts.push("session policy".into());
    }
    if r.scope_to_prefix {
        opts.push("scoped to prefix".into());
    }
    if !opts.is_empty() {
        s.push_str(&format!(" ({})", opts.join(", ")));
    }
    s
}

/// `explain`: which rule decides a request, with the session it gets, and why each earlier rule did
/// not match. `user` defaults to the OS user running the command; `groups` to the user's OS groups,
/// looked up as `serve` looks them up. `as_proxy`: the request comes from that user asking for `user`
/// (`user=`), and whether it may is decided first, by the rules `serve` applies. `access`: the request's
/// `access=` (`None`: read and write, as a request without it).
#[allow(clippy::too_many_arguments)]
pub fn explain(
    config: &Path,
    mappings: Option<&Path>,
    user: Option<String>,
    groups: Option<Vec<String>>,
    via: Via,
    as_proxy: Option<&str>,
    access: Option<Access>,
    location: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let c = Config::load_with_mappings(config, mappings)?;
    if via == Via::Imds && access.is_some() {
        return Err(CliError::Usage(
            "the instance-metadata path carries no access (its callers get read and write): leave out --access".into(),
        ));
    }
    let location = match location {
        Some(_) if via == Via::Imds => {
            return Err(CliError::Usage(
                "the instance-metadata path carries no location: leave it out with --via imds".into(),
            ))
        }
        None => None,
        Some(l) => Some(Location::parse(l).map_err(|e| CliError::Usage(format!("invalid location: {e}")))?),
    };
    let mut identity = match (as_proxy, &user) {
        (Some(_), _) if via == Via::Imds => {
            return Err(CliError::Usage("the instance-metadata path takes no user=: leave out --as-proxy".into()))
        }
        (Some(_), None) => return Err(CliError::Usage("--as-proxy needs --user, the user the proxy asks for".into())),
        (Some(proxy), Some(asserted)) if proxy != asserted => {
            match impersonation::act_for(&c.identity, proxy, asserted, caller::lookup_name) {
                Ok(identity) => {
                    writeln!(out, "proxy:     {proxy} may act for {asserted}").map_err(io)?;
                    identity
                }
                Err(refusal) => {
                    writeln!(out, "proxy:     {proxy} asks for {asserted}").map_err(io)?;
                    writeln!(out, "decision:  refused, {} ({})", refusal.code.as_str(), refusal.message).map_err(io)?;
                    return Ok(());
                }
            }
        }
        (_, Some(name)) => {
            caller::lookup_name(name).map_err(|e| CliError::Other(format!("cannot look up the user: {e}")))?
        }
        (None, None) => caller::lookup_uid(nix::unistd::getuid().as_raw())
            .map_err(|e| CliError::Other(format!("cannot look up the user: {e}")))?,
    };
    if let Some(groups) = groups {
        identity.groups = groups.into_iter().map(|g| g.trim().to_owned()).filter(|g| !g.is_empty()).collect();
    }
    if via == Via::Imds {
        return write_imds_explanation(&c, &NodeInfo::read(), &identity, out).map_err(io);
    }
    write_explanation_for(&c, &NodeInfo::read(), &identity, location.as_ref(), access, out).map_err(io)
}

/// `s` with control characters escaped (`\n`, `\u{1b}`): a key may hold any of them, a terminal should not
/// receive them.
fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// `explain --via imds`: whether the user's metadata traffic reaches the agent at all, then the
/// decision without a location.
fn write_imds_explanation(
    c: &Config,
    node: &NodeInfo,
    identity: &Identity,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "via:       instance metadata (169.254.169.254, [fd00:ec2::254]), redirected to the agent's [imds] listener"
    )?;
    if c.imds.listen.is_none() {
        writeln!(out, "note:      imds.listen is not set: the agent does not intercept instance metadata")?;
    }
    // As `imds-redirect install` would exempt (the agent running as its packaged user).
    let exemptions = redirect::Exemptions::of(c, redirect::DEFAULT_AGENT_USER);
    let exempt = identity.uid.and_then(|uid| exemptions.why(uid));
    if let Some(why) = exempt {
        writeln!(out, "exempt:    {why}: the node's instance profile straight from the metadata service, unaudited")?;
        return Ok(());
    }
    write_explanation(c, node, identity, None, out)?;
    writeln!(out, "answer:    a refusal is a 404 (no role), as on a node without an instance profile")?;
    if c.rules.rules().iter().any(|r| !r.prefixes.is_empty()) {
        writeln!(
            out,
            "note:      instance metadata carries no location: rules with prefixes never match here \
             (they need the JVM client or another client that sends location=)"
        )?;
    }
    Ok(())
}

/// The `imds-redirect` actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RedirectAction {
    Install,
    Remove,
    Status,
}

/// `imds-redirect`: installs, removes or shows the redirect. `Ok(false)`: `status` found no rules.
pub fn imds_redirect(
    action: RedirectAction,
    config: &Path,
    backend: Backend,
    agent_user: &str,
    out: &mut dyn Write,
) -> Result<bool, CliError> {
    let failed = |e: RedirectError| CliError::Other(e.to_string());
    let backend = backend.resolve();
    match action {
        RedirectAction::Install => {
            let c = Config::load(config)?;
            let plan = redirect::plan(&c, agent_user).map_err(|e| match e {
                RedirectError::Config(message) => CliError::Config(ConfigError {
                    file: c.source.clone(),
                    line: None,
                    column: None,
                    key: "imds.listen".into(),
                    message,
                }),
                other => failed(other),
            })?;
            redirect::install(backend, &plan).map_err(failed)?;
            writeln!(out, "installed ({backend}): TCP to {} goes to {}", redirect::METADATA, plan.listen)
                .map_err(io)?;
            if let Some(v6) = plan.listen_v6 {
                writeln!(out, "installed ({backend}): TCP to {} goes to {v6}", redirect::METADATA_V6).map_err(io)?;
            }
            write_exempt(&plan.exemptions, out).map_err(io)?;
            Ok(true)
        }
        RedirectAction::Remove => {
            let removed = redirect::remove(backend).map_err(failed)?;
            writeln!(out, "{}", if removed { "removed" } else { "nothing to remove: no rules were installed" })
                .map_err(io)?;
            Ok(true)
        }
        RedirectAction::Status => match redirect::status(backend).map_err(failed)? {
            Some(listing) => {
                writeln!(out, "installed ({backend}):\n{}", listing.trim_end()).map_err(io)?;
                Ok(true)
            }
            None => {
                writeln!(out, "not installed ({backend})").map_err(io)?;
                Ok(false)
            }
        },
    }
}

/// Who is left alone by the redirect: `check` and `imds-redirect install` print it.
fn write_exempt(exemptions: &redirect::Exemptions, out: &mut dyn Write) -> std::io::Result<()> {
    let mut who: Vec<String> = exemptions.exempt.iter().map(|e| format!("{} (uid {})", e.why, e.uid)).collect();
    if let Some(user) = &exemptions.agent_user_absent {
        // Always exempt once it exists: the bootstrap creates it before it installs the rules.
        who.push(format!("agent user {user} (not on this machine yet; the rules need it, the bootstrap creates it)"));
    }
    if exemptions.exempt_uids_below > 0 {
        who.push(format!("every uid below {}", exemptions.exempt_uids_below));
    }
    writeln!(out, "exempt:        {}", who.join(", "))?;
    for user in &exemptions.unknown {
        writeln!(out, "not exempt:    {user}: no such user on this node (install again once it exists)")?;
    }
    Ok(())
}

/// The body of `explain` for a request that names no access (read and write), separated from the OS
/// lookups so that tests can drive it.
pub fn write_explanation(
    c: &Config,
    node: &NodeInfo,
    identity: &Identity,
    location: Option<&Location>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    write_explanation_for(c, node, identity, location, None, out)
}

/// The body of `explain` for a request for `access` (`None`: read and write).
pub fn write_explanation_for(
    c: &Config,
    node: &NodeInfo,
    identity: &Identity,
    location: Option<&Location>,
    access: Option<Access>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let (user, groups) = (identity.user.as_str(), identity.groups.as_slice());
    let req = Request { user, groups, location, access };
    writeln!(out, "user:      {user}")?;
    writeln!(out, "groups:    {}", if groups.is_empty() { "(none)".to_string() } else { groups.join(", ") })?;
    writeln!(out, "location:  {}", location.map_or("(none)".to_string(), |l| printable(&l.to_string())))?;
    writeln!(out, "access:    {}", access.map_or("read and write (no access= given)", |a| a.as_str()))?;
    let (verdict, scope) = decision::decide(c, node, &req);
    let decided_at = match &verdict {
        Verdict::Allow { rule, matched, .. }
        | Verdict::AccessGrants { rule, matched, .. }
        | Verdict::Deny { rule, matched } => {
            writeln!(out, "decision:  rule {} '{}' ({})", rule.index, rule.name, rule.effect)?;
            if let Some(p) = matched {
                writeln!(out, "matched:   {}{}", p, if p.is_glob() { " (glob)" } else { " (prefix)" })?;
            }
            rule.index
        }
        Verdict::Fallback(mode) => {
            writeln!(out, "decision:  no rule matched: fallback {mode}")?;
            c.rules.rules().len()
        }
    };
    match &verdict {
        Verdict::Allow { rule, key, .. } => {
            writeln!(out, "effect:    allow: credentials for the role below")?;
            writeln!(out, "role:      {}", key.role)?;
            writeln!(out, "session:   {} (template \"{}\")", key.session_name, c.sts.session_name)?;
            if let (Some(si), Some(template)) = (&key.source_identity, &c.sts.source_identity) {
                writeln!(out, "source id: {si} (template \"{template}\")")?;
            }
            writeln!(out, "duration:  {}", format_duration(key.duration))?;
            if let Some(x) = &key.external_id {
                writeln!(out, "external:  {x}")?;
            }
            if let Some(p) = &key.policy {
                writeln!(out, "policy:    {p}")?;
            }
            if rule.scope_to_prefix {
                writeln!(out, "confined:  S3 access limited to the matched prefix by a session policy")?;
            } else if rule.session_policy.is_none() && !rule.prefixes.is_empty() {
                writeln!(
                    out,
                    "note:      the prefix chose the role; the credentials are not limited to it \
                     (set scope_to_prefix or session_policy to confine them)"
                )?;
            }
        }
        Verdict::AccessGrants { grantee, .. } => {
            writeln!(out, "effect:    access-grants: S3 Access Grants decide, asked as the role below")?;
            writeln!(out, "grantee:   {}", grantee.role)?;
            writeln!(out, "session:   {} (template \"{}\")", grantee.session_name, c.sts.session_name)?;
            if let Some(location) = location {
                let target = grants::Target::of(location);
                writeln!(
                    out,
                    "asks:      GetDataAccess target={}{} permission={} (account {}, privilege {:?}, {})",
                    printable(&target.uri),
                    if target.object { " targetType=Object" } else { "" },
                    grants::Permission::for_access(access),
                    grantee.role.account_id(),
                    c.access_grants.privilege,
                    format_duration(c.access_grants.duration)
                )?;
            }
            writeln!(
                out,
                "answer:    the grant's credentials, held as far as the matched grant target (no grant: 403 AccessDenied)"
            )?;
        }
        Verdict::Deny { .. } => writeln!(out, "effect:    deny: the request is refused (403 AccessDenied)")?,
        Verdict::Fallback(FallbackMode::InstanceProfile) => {
            writeln!(out, "effect:    the node's own instance-profile credentials")?
        }
        Verdict::Fallback(FallbackMode::Deny) => writeln!(out, "effect:    refused (403 AccessDenied)")?,
    }
    if let Some(location) = location {
        match &scope {
            Some(scope) => writeln!(
                out,
                "scope:     {} (every location under it is decided the same way)",
                printable(&scope.to_string())
            )?,
            None => writeln!(
                out,
                "scope:     {} only (a rule's prefix or glob reaches inside it)",
                printable(&location.to_string())
            )?,
        }
    }
    let earlier = &c.rules.rules()[..decided_at];
    if !earlier.is_empty() {
        writeln!(out, "earlier rules that did not match:")?;
        for r in earlier {
            let why = match r.evaluate(&req) {
                Ok(_) => "matched (unexpected)".to_string(),
                Err(m) => why_not(r, m, &req),
            };
            writeln!(out, "  {:>3} '{}': {}", r.index, r.name, why)?;
        }
    }
    Ok(())
}

fn why_not(r: &Rule, m: Mismatch, req: &Request<'_>) -> String {
    match m {
        Mismatch::User => format!("user '{}' is not in users [{}]", req.user, r.users.join(", ")),
        Mismatch::Group => {
            format!("none of the groups [{}] is in groups [{}]", req.groups.join(", "), r.groups.join(", "))
        }
        Mismatch::Access => format!(
            "the rule is for {} only, the request for {}",
            r.access.map_or("any", Access::as_str),
            req.access.map_or("read and write", Access::as_str)
        ),
        Mismatch::NoLocation => {
            "the rule needs a location (prefixes or S3 Access Grants) and the request has none".into()
        }
        Mismatch::Prefix => format!(
            "location {} matches none of [{}]",
            req.location.map(ToString::to_string).unwrap_or_default(),
            r.prefixes.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[derive(Serialize)]
struct ImportDoc {
    mapping: Vec<ImportMapping>,
}

#[derive(Serialize)]
struct ImportMapping {
    name: String,
    effect: String,
    role: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    users: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    prefixes: Vec<String>,
}

/// `import`: converts an EMR security configuration (raw or describe output) or an emrfs-site roleMapping
/// value into `[[mapping]]` TOML that `check` accepts and that decides exactly as the input does.
pub fn import(file: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| CliError::Other(format!("{}: cannot read: {e}", file.display())))?;
    let toml = import_text(&text).map_err(|e| {
        CliError::Config(ConfigError {
            file: file.to_owned(),
            line: e.position.map(|p| p.0),
            column: e.position.map(|p| p.1),
            key: e.key,
            message: e.message,
        })
    })?;
    writeln!(out, "# Imported from {}", file.display()).map_err(io)?;
    out.write_all(toml.as_bytes()).map_err(io)
}

/// The TOML that `import` prints for an EMR input (pure).
pub fn import_text(text: &str) -> Result<String, emr::EmrError> {
    let (format, rules) = emr::parse_rules(text, 0)?;
    let doc = ImportDoc {
        mapping: rules
            .iter()
            .map(|r| ImportMapping {
                name: r.name.clone(),
                effect: r.effect.to_string(),
                role: r.effect.role().map(|a| a.as_str().to_owned()).unwrap_or_default(),
                users: r.users.clone(),
                groups: r.groups.clone(),
                prefixes: r.prefixes.iter().map(|p| p.as_str().to_owned()).collect(),
            })
            .collect(),
    };
    let body = toml::to_string(&doc).map_err(|e| emr::EmrError {
        key: "(document)".into(),
        message: format!("cannot write TOML: {e}"),
        position: None,
    })?;
    Ok(format!(
        "# Format: {format}. {} rule(s), evaluated in this order; first match decides.\n\
         # Prefix rules choose a role; they do not confine the caller unless scope_to_prefix or a\n\
         # session_policy limits the credentials.\n\n{body}",
        rules.len()
    ))
}
