//! `imds-redirect`: the NAT rules that send instance-metadata traffic (TCP to 169.254.169.254:80, and
//! to the service's IPv6 address [fd00:ec2::254]:80) from every uid but the exempt ones to the agent's
//! metadata listener (SPEC §5.1): IPv4 to `[imds] listen`, IPv6 to the same port on `[::1]` (NAT keeps
//! a connection in its family). On a node without IPv6 (no `/proc/net/if_inet6`) the IPv6 half is left
//! out: nothing can reach the IPv6 address there.
//!
//! Exempt: root, the user the agent runs as (its own source credentials and forwarded requests must
//! reach the real service), `[imds] exempt_users`, and every uid below `[imds] exempt_uids_below`.
//! Everyone else's connections are rewritten to `[imds] listen`; if the agent is down they are refused
//! there, never passed through (fail closed).
//!
//! Two back ends, both tagged so that they can be listed and removed, both ahead of any DNAT already
//! there for 169.254.169.254 (EMR's own metadata proxy):
//! - `nft` (Amazon Linux 2023): tables of our own, `ip emrfs_role_agent` and `ip6 emrfs_role_agent`,
//!   whose output NAT chains run at priority -150, before iptables' NAT at -100 (the first NAT binding
//!   of a connection wins). Installing replaces both tables in one transaction.
//! - `iptables` (iptables-legacy, Amazon Linux 2): a chain of our own, `EMRFS-ROLE-AGENT`, in the nat
//!   table of `iptables` and of `ip6tables`, each filled in one `*-restore --noflush` transaction, and
//!   one jump to it, first in `OUTPUT`, commented `emrfs-role-agent`.
//!
//! Installing twice leaves one set of rules; removing leaves none and touches nobody else's.
//!
//! The listener's port matters as much as the rules: while the agent is down, whoever holds it answers
//! the redirected users. [`squattable`] says when a port is one any local user could bind.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::process::{Command, Stdio};

use crate::caller;
use crate::config::{Config, DEFAULT_IMDS_LISTEN};

/// The metadata service's address and port, as the SDKs reach it.
pub const METADATA: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(169, 254, 169, 254), 80);
/// Its IPv6 address (Nitro instances with the IPv6 endpoint on), as the SDKs' IPv6 endpoint mode reaches it.
pub const METADATA_V6: SocketAddrV6 = SocketAddrV6::new(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), 80, 0, 0);
/// Where the kernel says which ports unprivileged users may bind (per network namespace; both families).
pub const UNPRIVILEGED_PORT_START: &str = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
/// The socket unit that holds the metadata listener's port.
pub const IMDS_SOCKET_UNIT: &str = "emrfs-role-agent-imds.socket";
/// The nft table holding our chain.
pub const NFT_TABLE: &str = "emrfs_role_agent";
/// The iptables chain holding our rules, and the comment on the jump to it.
pub const IPTABLES_CHAIN: &str = "EMRFS-ROLE-AGENT";
const IPTABLES_TAG: &str = "emrfs-role-agent";
/// The user the packaged service runs as.
pub const DEFAULT_AGENT_USER: &str = "emrfs-role-agent";

/// Which firewall the rules go into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// `nft` if it is installed, else `iptables`.
    Auto,
    Nft,
    /// iptables-legacy (`iptables-legacy` if installed, else `iptables`).
    Iptables,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Nft => "nft",
            Backend::Iptables => "iptables",
        })
    }
}

impl Backend {
    /// `Auto` made concrete.
    pub fn resolve(self) -> Backend {
        match self {
            Backend::Auto if on_path("nft") => Backend::Nft,
            Backend::Auto => Backend::Iptables,
            chosen => chosen,
        }
    }
}

/// One exempt uid and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exempt {
    pub uid: u32,
    pub why: String,
}

/// Whose metadata traffic the redirect leaves alone, as this node's users resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exemptions {
    pub exempt: Vec<Exempt>,
    /// Every uid below this is exempt (0: none).
    pub exempt_uids_below: u32,
    /// `[imds] exempt_users` that are not exempt because this node does not know them (yet).
    pub unknown: Vec<String>,
    /// The agent's user, when this node does not know it (yet: the bootstrap creates it before it installs
    /// the rules). Not an exemption a user can lack: an agent running as a user that does not exist runs
    /// as another one, which `--agent-user` must name.
    pub agent_user_absent: Option<String>,
}

impl Exemptions {
    /// Root, `agent_user` (the user the agent runs as), `[imds] exempt_users` and `exempt_uids_below`,
    /// looked up in this node's user database.
    pub fn of(config: &Config, agent_user: &str) -> Exemptions {
        Exemptions::of_with(config, agent_user, |user| caller::lookup_name(user).ok().and_then(|identity| identity.uid))
    }

    /// As [`Exemptions::of`], with `uid_of` resolving a user name (pure, for tests).
    pub fn of_with(config: &Config, agent_user: &str, uid_of: impl Fn(&str) -> Option<u32>) -> Exemptions {
        let mut exempt = vec![Exempt { uid: 0, why: "root".into() }];
        let mut unknown = Vec::new();
        let mut agent_user_absent = None;
        let named = std::iter::once((agent_user, "agent user"))
            .chain(config.imds.exempt_users.iter().map(|u| (u.as_str(), "exempt user")));
        for (n, (user, role)) in named.enumerate() {
            match uid_of(user) {
                Some(uid) if !exempt.iter().any(|e| e.uid == uid) => {
                    exempt.push(Exempt { uid, why: format!("{role} {user}") })
                }
                Some(_) => {}
                None if n == 0 => agent_user_absent = Some(user.to_owned()),
                None => unknown.push(user.to_owned()),
            }
        }
        Exemptions { exempt, exempt_uids_below: config.imds.exempt_uids_below, unknown, agent_user_absent }
    }

    /// Why the rules leave `uid` alone, or `None` when its metadata traffic is redirected.
    pub fn why(&self, uid: u32) -> Option<String> {
        match self.exempt.iter().find(|e| e.uid == uid) {
            Some(e) => Some(e.why.clone()),
            None => (uid < self.exempt_uids_below).then(|| format!("uids below {}", self.exempt_uids_below)),
        }
    }
}

/// What `install` puts in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Where redirected IPv4 connections go.
    pub listen: SocketAddrV4,
    /// Where redirected IPv6 connections go (`[::1]` at the same port); `None` on a node without IPv6.
    pub listen_v6: Option<SocketAddrV6>,
    pub exemptions: Exemptions,
}

/// A failure to plan or change the rules.
#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    /// The configuration does not ask for interception.
    #[error("{0}")]
    Config(String),
    /// A firewall command failed or is missing.
    #[error("{0}")]
    Command(String),
}

/// The rules `config` asks for. `agent_user` is the user the agent runs as.
pub fn plan(config: &Config, agent_user: &str) -> Result<Plan, RedirectError> {
    let listen = match config.imds.listen {
        Some(SocketAddr::V4(listen)) => listen,
        _ => {
            return Err(RedirectError::Config(format!(
                "{}: imds.listen is not set: there is no metadata listener to redirect to",
                config.source.display()
            )))
        }
    };
    let listen_v6 = ipv6_available().then(|| SocketAddrV6::new(Ipv6Addr::LOCALHOST, listen.port(), 0, 0));
    Ok(Plan { listen, listen_v6, exemptions: Exemptions::of(config, agent_user) })
}

/// Whether this node (network namespace) has an IPv6 stack, and so an IPv6 metadata address to cover.
pub fn ipv6_available() -> bool {
    std::path::Path::new("/proc/net/if_inet6").exists()
}

/// The lowest port an unprivileged user may bind here ([`UNPRIVILEGED_PORT_START`]; 1024, the kernel's
/// default, when it cannot be read).
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string(UNPRIVILEGED_PORT_START).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(1024)
}

/// Why any local user could bind `addr` whenever nothing holds it (and then pose as the metadata service
/// to every redirected user), given the lowest unprivileged port `unprivileged_from`; `None` when only
/// root can bind it.
pub fn squattable(addr: SocketAddr, unprivileged_from: u16) -> Option<String> {
    (addr.port() >= unprivileged_from).then(|| {
        format!(
            "any local user may bind port {} (net.ipv4.ip_unprivileged_port_start = {unprivileged_from}) while \
             nothing holds {addr}, and answer the users the redirect sends there: use a port only root can bind \
             ({DEFAULT_IMDS_LISTEN}, the default), or let the socket unit {IMDS_SOCKET_UNIT} hold it",
            addr.port()
        )
    })
}

/// For `check`: the warning that `config`'s metadata listener is on a port any local user could bind here
/// (the agent then refuses to bind it itself and serves it only when the socket unit hands it over);
/// `None` when interception is off or the port is one only root can bind.
pub fn listener_squattable(config: &Config) -> Option<String> {
    let start = unprivileged_port_start();
    let addr = config.imds.listen?;
    squattable(addr, start).map(|why| format!("imds.listen {addr}: {why}"))
}

/// The nft script that replaces our tables with `plan`'s, in one transaction: `ip`, then `ip6` when the
/// plan covers IPv6.
pub fn nft_script(plan: &Plan) -> String {
    let mut script = nft_table("ip", &format!("ip daddr {}", METADATA.ip()), &plan.listen.to_string(), plan);
    if let Some(v6) = plan.listen_v6 {
        script.push_str(&nft_table("ip6", &format!("ip6 daddr {}", METADATA_V6.ip()), &v6.to_string(), plan));
    }
    script
}

/// One family's table: exemptions first, then the DNAT to `listen`.
fn nft_table(family: &str, daddr: &str, listen: &str, plan: &Plan) -> String {
    let to_metadata = format!("{daddr} tcp dport {}", METADATA.port());
    let mut rules = Vec::new();
    for e in &plan.exemptions.exempt {
        rules.push(format!("{to_metadata} meta skuid {} accept comment \"{}\"", e.uid, e.why));
    }
    if plan.exemptions.exempt_uids_below > 0 {
        let below = plan.exemptions.exempt_uids_below;
        rules.push(format!("{to_metadata} meta skuid < {below} accept comment \"uids below {below}\""));
    }
    rules.push(format!("{to_metadata} dnat to {listen} comment \"to the metadata listener\""));
    let mut script =
        format!("table {family} {NFT_TABLE}\ndelete table {family} {NFT_TABLE}\ntable {family} {NFT_TABLE} {{\n");
    script.push_str("\tchain imds {\n\t\ttype nat hook output priority -150; policy accept;\n");
    for rule in rules {
        script.push_str(&format!("\t\t{rule}\n"));
    }
    script.push_str("\t}\n}\n");
    script
}

/// The `iptables-restore --noflush` input that fills our chain with `plan`'s rules (declaring the
/// chain creates or empties it).
pub fn iptables_restore_input(plan: &Plan) -> String {
    restore_input(plan, &plan.listen.to_string())
}

/// The `ip6tables-restore --noflush` input for the IPv6 half, when the plan has one.
pub fn ip6tables_restore_input(plan: &Plan) -> Option<String> {
    plan.listen_v6.map(|v6| restore_input(plan, &v6.to_string()))
}

fn restore_input(plan: &Plan, listen: &str) -> String {
    let mut input = format!("*nat\n:{IPTABLES_CHAIN} - [0:0]\n");
    let exemptions = &plan.exemptions;
    let mut exempt: Vec<(String, &str)> =
        exemptions.exempt.iter().map(|e| (e.uid.to_string(), e.why.as_str())).collect();
    let below = format!("uids below {}", exemptions.exempt_uids_below);
    if exemptions.exempt_uids_below > 0 {
        exempt.push((format!("0-{}", exemptions.exempt_uids_below - 1), below.as_str()));
    }
    for (uids, why) in exempt {
        input.push_str(&format!(
            "-A {IPTABLES_CHAIN} -m owner --uid-owner {uids} -m comment --comment \"{why}\" -j RETURN\n"
        ));
    }
    input.push_str(&format!(
        "-A {IPTABLES_CHAIN} -p tcp -m comment --comment \"to the metadata listener\" -j DNAT --to-destination {listen}\n"
    ));
    input.push_str("COMMIT\n");
    input
}

/// The jump from `OUTPUT` to our chain, as `iptables` (or `ip6tables`) arguments after `-I OUTPUT 1`.
fn iptables_jump(family: Family) -> Vec<String> {
    let destination = match family {
        Family::V4 => format!("{}/32", METADATA.ip()),
        Family::V6 => format!("{}/128", METADATA_V6.ip()),
    };
    [
        "-d",
        &destination,
        "-p",
        "tcp",
        "-m",
        "tcp",
        "--dport",
        &METADATA.port().to_string(),
        "-m",
        "comment",
        "--comment",
        IPTABLES_TAG,
        "-j",
        IPTABLES_CHAIN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// An address family of the redirect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// The families this node has: IPv4, and IPv6 when [`ipv6_available`].
    fn here() -> Vec<Family> {
        if ipv6_available() {
            vec![Family::V4, Family::V6]
        } else {
            vec![Family::V4]
        }
    }

    fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
}

/// Puts `plan`'s rules in place, replacing ours if there are any.
pub fn install(backend: Backend, plan: &Plan) -> Result<(), RedirectError> {
    match backend.resolve() {
        Backend::Nft => run("nft", &["-f", "-"], Some(&nft_script(plan))).map(drop),
        _ => {
            let mut halves = vec![(Family::V4, iptables_restore_input(plan))];
            halves.extend(ip6tables_restore_input(plan).map(|input| (Family::V6, input)));
            for (family, input) in halves {
                let iptables = Iptables::find(family);
                run(&iptables.restore, &["--noflush"], Some(&input))?;
                // Our jump first in OUTPUT, exactly once: inserted before any stale copy is deleted, so
                // no connection slips past in between.
                let ours = iptables.our_jumps()?;
                if ours != [1] {
                    let mut args = vec!["-t".to_owned(), "nat".into(), "-I".into(), "OUTPUT".into(), "1".into()];
                    args.extend(iptables_jump(family));
                    iptables.run(&args)?;
                    for index in iptables.our_jumps()?.into_iter().filter(|&i| i > 1).rev() {
                        iptables.run(&["-t", "nat", "-D", "OUTPUT", &index.to_string()])?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// Removes our rules (both families); whether there were any.
pub fn remove(backend: Backend) -> Result<bool, RedirectError> {
    let backend = backend.resolve();
    let mut removed = false;
    for family in Family::here() {
        removed |= match backend {
            Backend::Nft => {
                let installed = nft_listing(family)?.is_some();
                if installed {
                    run("nft", &["delete", "table", family.nft(), NFT_TABLE], None)?;
                }
                installed
            }
            _ => {
                let iptables = Iptables::find(family);
                let jumps = iptables.our_jumps()?;
                for index in jumps.iter().rev() {
                    iptables.run(&["-t", "nat", "-D", "OUTPUT", &index.to_string()])?;
                }
                let chain = iptables.chain_listing()?.is_some();
                if chain {
                    iptables.run(&["-t", "nat", "-F", IPTABLES_CHAIN])?;
                    iptables.run(&["-t", "nat", "-X", IPTABLES_CHAIN])?;
                }
                chain || !jumps.is_empty()
            }
        };
    }
    Ok(removed)
}

/// Our rules as the firewall lists them, or `None` when they are not (completely) installed: a node
/// with IPv6 needs both families' rules.
pub fn status(backend: Backend) -> Result<Option<String>, RedirectError> {
    let backend = backend.resolve();
    let mut listings = Vec::new();
    for family in Family::here() {
        let listing = match backend {
            Backend::Nft => nft_listing(family)?,
            _ => {
                let iptables = Iptables::find(family);
                let jumps = iptables.our_jump_rules()?;
                let Some(chain) = iptables.chain_listing()? else { return Ok(None) };
                if jumps.is_empty() {
                    return Ok(None);
                }
                let mut listing = String::new();
                for (position, rule) in jumps {
                    listing.push_str(&format!("{} nat OUTPUT position {position}: {rule}\n", iptables.iptables));
                }
                Some(listing + &chain)
            }
        };
        match listing {
            Some(listing) => listings.push(listing),
            None => return Ok(None),
        }
    }
    Ok(Some(listings.join("")))
}

fn nft_listing(family: Family) -> Result<Option<String>, RedirectError> {
    let output = command("nft", &["list", "table", family.nft(), NFT_TABLE], None)?;
    Ok(output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// The iptables-legacy commands of one family.
struct Iptables {
    iptables: String,
    restore: String,
}

impl Iptables {
    fn find(family: Family) -> Iptables {
        let name = match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        if on_path(&format!("{name}-legacy")) {
            Iptables { iptables: format!("{name}-legacy"), restore: format!("{name}-legacy-restore") }
        } else {
            Iptables { iptables: name.into(), restore: format!("{name}-restore") }
        }
    }

    fn run<S: AsRef<str>>(&self, args: &[S]) -> Result<String, RedirectError> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        run(&self.iptables, &args, None)
    }

    /// 1-based positions in nat `OUTPUT` of the jumps to our chain.
    fn our_jumps(&self) -> Result<Vec<usize>, RedirectError> {
        Ok(self.our_jump_rules()?.into_iter().map(|(i, _)| i).collect())
    }

    /// The jumps to our chain with their 1-based positions in nat `OUTPUT`, as `-S` lists them.
    fn our_jump_rules(&self) -> Result<Vec<(usize, String)>, RedirectError> {
        let listing = self.run(&["-t", "nat", "-S", "OUTPUT"])?;
        let jump = format!("-j {IPTABLES_CHAIN}");
        Ok(listing
            .lines()
            .filter(|line| line.starts_with("-A OUTPUT"))
            .enumerate()
            .filter(|(_, line)| line.ends_with(&jump) || line.contains(&format!("{jump} ")))
            .map(|(i, line)| (i + 1, line.to_owned()))
            .collect())
    }

    fn chain_listing(&self) -> Result<Option<String>, RedirectError> {
        let output = command(&self.iptables, &["-t", "nat", "-S", IPTABLES_CHAIN], None)?;
        Ok(output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned()))
    }
}

/// Runs `program` to success; its standard output.
fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String, RedirectError> {
    let output = command(program, args, input)?;
    if !output.status.success() {
        return Err(RedirectError::Command(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn command(program: &str, args: &[&str], input: Option<&str>) -> Result<std::process::Output, RedirectError> {
    let missing = |e: std::io::Error| RedirectError::Command(format!("cannot run {program}: {e}"));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(missing)?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(input.as_bytes()).map_err(missing)?;
    }
    child.wait_with_output().map_err(missing)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let candidate = dir.join(program);
            std::fs::metadata(&candidate).is_ok_and(|m| m.is_file())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            listen: "127.0.0.1:254".parse().unwrap(),
            listen_v6: Some("[::1]:254".parse().unwrap()),
            exemptions: Exemptions {
                exempt: vec![
                    Exempt { uid: 0, why: "root".into() },
                    Exempt { uid: 1005, why: "exempt user hive".into() },
                ],
                exempt_uids_below: 1000,
                unknown: vec![],
                agent_user_absent: None,
            },
        }
    }

    #[test]
    fn nft_replaces_its_own_table_in_one_script() {
        let script = nft_script(&plan());
        let lines: Vec<&str> = script.lines().map(str::trim).collect();
        assert_eq!(
            lines[..3],
            ["table ip emrfs_role_agent", "delete table ip emrfs_role_agent", "table ip emrfs_role_agent {"]
        );
        assert!(lines.contains(&"type nat hook output priority -150; policy accept;"));
        let rules: Vec<&&str> = lines.iter().filter(|l| l.starts_with("ip daddr")).collect();
        assert_eq!(rules.len(), 4);
        assert!(rules[0].contains("meta skuid 0 accept"));
        assert!(rules[1].contains("meta skuid 1005 accept"));
        assert!(rules[2].contains("meta skuid < 1000 accept"));
        assert!(rules[3].ends_with("dnat to 127.0.0.1:254 comment \"to the metadata listener\""), "{}", rules[3]);
        assert!(rules.iter().all(|r| r.starts_with("ip daddr 169.254.169.254 tcp dport 80 ")));

        // The IPv6 address, with the same exemptions, to [::1] at the same port, in the same transaction.
        let v6_table = lines.iter().position(|l| *l == "table ip6 emrfs_role_agent").expect("an ip6 table");
        assert_eq!(
            lines[v6_table + 1..v6_table + 3],
            ["delete table ip6 emrfs_role_agent", "table ip6 emrfs_role_agent {"]
        );
        let v6: Vec<&&str> = lines.iter().filter(|l| l.starts_with("ip6 daddr")).collect();
        assert_eq!(v6.len(), 4);
        assert!(v6.iter().all(|r| r.starts_with("ip6 daddr fd00:ec2::254 tcp dport 80 ")), "{v6:?}");
        assert!(v6[0].contains("meta skuid 0 accept") && v6[2].contains("meta skuid < 1000 accept"));
        assert!(v6[3].ends_with("dnat to [::1]:254 comment \"to the metadata listener\""), "{}", v6[3]);

        let without_ipv6 = nft_script(&Plan { listen_v6: None, ..plan() });
        assert!(!without_ipv6.contains("ip6"), "{without_ipv6}");
    }

    #[test]
    fn exemptions_say_why() {
        let exemptions = plan().exemptions;
        assert_eq!(exemptions.why(0).as_deref(), Some("root"));
        assert_eq!(exemptions.why(1005).as_deref(), Some("exempt user hive"));
        assert_eq!(exemptions.why(999).as_deref(), Some("uids below 1000"));
        assert_eq!(exemptions.why(1000), None);
    }

    #[test]
    fn iptables_fills_its_own_chain() {
        let input = iptables_restore_input(&plan());
        let lines: Vec<&str> = input.lines().collect();
        assert_eq!(lines[..2], ["*nat", ":EMRFS-ROLE-AGENT - [0:0]"]);
        assert!(lines[2].contains("--uid-owner 0 ") && lines[2].ends_with("-j RETURN"));
        assert!(lines[4].contains("--uid-owner 0-999 "));
        assert!(lines[5].ends_with("-j DNAT --to-destination 127.0.0.1:254"));
        assert_eq!(lines[6], "COMMIT");
        assert!(lines.iter().filter(|l| l.starts_with("-A")).all(|l| l.starts_with("-A EMRFS-ROLE-AGENT ")));

        let v6 = ip6tables_restore_input(&plan()).expect("an IPv6 half");
        let v6: Vec<&str> = v6.lines().collect();
        assert_eq!(v6[..5], lines[..5], "the same exemptions");
        assert!(v6[5].ends_with("-j DNAT --to-destination [::1]:254"), "{}", v6[5]);
        assert_eq!(ip6tables_restore_input(&Plan { listen_v6: None, ..plan() }), None);
        assert!(iptables_jump(Family::V6).join(" ").starts_with("-d fd00:ec2::254/128 -p tcp -m tcp --dport 80 "));
        assert!(iptables_jump(Family::V4).join(" ").starts_with("-d 169.254.169.254/32 -p tcp -m tcp --dport 80 "));
    }

    #[test]
    fn a_port_any_user_may_bind_is_squattable_and_the_default_is_not() {
        assert_eq!(DEFAULT_IMDS_LISTEN.port(), 254);
        assert_eq!(squattable(DEFAULT_IMDS_LISTEN, 1024), None);
        assert_eq!(squattable("[::1]:254".parse().unwrap(), 1024), None);
        let why = squattable("127.0.0.1:9945".parse().unwrap(), 1024).expect("9945 is anyone's");
        assert!(why.contains("port 9945") && why.contains("ip_unprivileged_port_start = 1024"), "{why}");
        assert!(why.contains("127.0.0.1:254") && why.contains(IMDS_SOCKET_UNIT), "{why}");
        // Where the node lets users bind low ports (some container runtimes set 0), no port is safe.
        assert!(squattable(DEFAULT_IMDS_LISTEN, 0).is_some());
        assert!(squattable(DEFAULT_IMDS_LISTEN, 255).is_none() && squattable(DEFAULT_IMDS_LISTEN, 254).is_some());
    }

    #[test]
    fn the_agents_user_missing_is_said_so_not_reported_as_an_unknown_exempt_user() {
        let config = Config::parse(
            "[imds]\nlisten = \"127.0.0.1:9945\"\nexempt_users = [\"hive\", \"ghost\"]\n",
            std::path::Path::new("/etc/emrfs-role-agent/config.toml"),
            None,
        )
        .unwrap();
        let users = |name: &str| match name {
            "emrfs-role-agent" => Some(998),
            "hive" => Some(1005),
            _ => None,
        };
        let present = Exemptions::of_with(&config, "emrfs-role-agent", users);
        assert_eq!(present.agent_user_absent, None);
        assert_eq!(present.unknown, vec!["ghost".to_owned()]);
        assert_eq!(present.why(998).as_deref(), Some("agent user emrfs-role-agent"));

        let absent = Exemptions::of_with(&config, "emrfs-role-agent", |name| (name == "hive").then_some(1005));
        assert_eq!(absent.agent_user_absent.as_deref(), Some("emrfs-role-agent"));
        assert_eq!(absent.unknown, vec!["ghost".to_owned()], "the agent's user is not an unknown exempt user");
        assert_eq!(absent.why(998), None);
    }
}
