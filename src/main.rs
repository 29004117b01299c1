//! The `emrfs-role-agent` binary: parse the command line, run one command, map its error to an
//! exit code (0 success, 2 bad command line, 78 invalid configuration, 1 anything else; `imds-redirect
//! status`: 3 when the rules are not installed).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use emrfs_role_agent::access::Access;
use emrfs_role_agent::audit::Via;
use emrfs_role_agent::cli::{self, CliError, RedirectAction};
use emrfs_role_agent::daemon::{self, StartError};
use emrfs_role_agent::redirect::{self, Backend};

/// Default configuration path when neither `--config` nor `$EMRFS_ROLE_AGENT_CONFIG` is given.
const DEFAULT_CONFIG: &str = "/etc/emrfs-role-agent/config.toml";

#[derive(Parser)]
#[command(name = "emrfs-role-agent", version, about = "Node-local credential agent for Amazon EMR")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        #[arg(long, env = "EMRFS_ROLE_AGENT_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Load and validate the configuration and mappings; print the rules in order.
    Check {
        #[arg(long, env = "EMRFS_ROLE_AGENT_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Check these mappings in place of the file the config's mappings_file names (before uploading them).
        #[arg(long, value_name = "FILE")]
        mappings: Option<PathBuf>,
        /// Hadoop site files to look for EMR's own role mappings in (a warning when one is active).
        #[arg(long = "hadoop-site", value_name = "FILE", default_values = cli::EMR_SITE_FILES)]
        hadoop_sites: Vec<PathBuf>,
        /// Firewall rules to look for other metadata interceptors in (`iptables-save` or `nft list ruleset`
        /// output), in place of this node's.
        #[arg(long = "ruleset", value_name = "FILE")]
        rulesets: Option<Vec<PathBuf>>,
        /// Processes to look for other metadata interceptors in (`ps -eo user:32=,args=` output), in place of
        /// this node's.
        #[arg(long, value_name = "FILE")]
        processes: Option<PathBuf>,
        /// The cluster's EMR security configuration (raw or describe-security-configuration output): its
        /// role mappings, Ranger / Lake Formation and runtime roles.
        #[arg(long, value_name = "FILE")]
        security_configuration: Option<PathBuf>,
    },
    /// Show which rule decides a request, and why; makes no STS call.
    Explain {
        #[arg(long, env = "EMRFS_ROLE_AGENT_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The user asking (default: the user running this command).
        #[arg(long)]
        user: Option<String>,
        /// The user's groups, comma-separated (default: the user's OS groups).
        #[arg(long, value_delimiter = ',')]
        groups: Option<Vec<String>>,
        /// The door the request comes through: the HTTP API, or the instance-metadata listener
        /// (which sees no location).
        #[arg(long, value_enum, default_value = "api")]
        via: Via,
        /// The request comes from this user (a proxy such as yarn or hive) asking for --user: whether
        /// it may is decided first, as `serve` decides `user=`.
        #[arg(long, value_name = "PROXY")]
        as_proxy: Option<String>,
        /// The access asked for (`access=`); without it, read and write, as a request that names none.
        #[arg(long, value_enum)]
        access: Option<Access>,
        /// Decide with these mappings in place of the file the config's mappings_file names.
        #[arg(long, value_name = "FILE")]
        mappings: Option<PathBuf>,
        /// The S3 location asked for, e.g. s3://bucket/key.
        location: Option<String>,
    },
    /// Install, remove or show the rules that send instance-metadata traffic to the [imds] listener.
    ImdsRedirect {
        action: RedirectAction,
        #[arg(long, env = "EMRFS_ROLE_AGENT_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Which firewall: nft (Amazon Linux 2023), iptables-legacy (Amazon Linux 2), or auto.
        #[arg(long, value_enum, default_value = "auto")]
        backend: Backend,
        /// The user the agent runs as: exempt, like root.
        #[arg(long, default_value = redirect::DEFAULT_AGENT_USER)]
        agent_user: String,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Convert an EMR security configuration or emrfs-site roleMapping value to [[mapping]] TOML.
    Import {
        /// Security configuration JSON, describe-security-configuration output, or roleMapping text.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain: exit 0 when intact, 1 naming the first record removed, altered,
    /// reordered or inserted (file and line), a missing file or a cut-off one.
    Verify {
        /// Audit files (rotated ones too, plain or .gz, in any order), or s3://bucket/prefix/ of shipped
        /// segments (every node under it).
        #[arg(required = true, value_name = "FILE|S3_URI")]
        paths: Vec<String>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut out = std::io::stdout();
    let result = match args.command {
        Command::Serve { config } => daemon::run(&config).map_err(|e| {
            let code = match e {
                StartError::Config(_) => EX_CONFIG,
                StartError::System { .. } => 1,
            };
            (e.to_string(), code)
        }),
        Command::Check { config, mappings, hadoop_sites, rulesets, processes, security_configuration } => {
            let node = cli::NodeSources { hadoop_sites, rulesets, processes, security_configuration };
            cli::check(&config, mappings.as_deref(), &node, &mut out).map_err(failed)
        }
        Command::Explain { config, user, groups, via, as_proxy, access, mappings, location } => cli::explain(
            &config,
            mappings.as_deref(),
            user,
            groups,
            via,
            as_proxy.as_deref(),
            access,
            location.as_deref(),
            &mut out,
        )
        .map_err(failed),
        Command::ImdsRedirect { action, config, backend, agent_user } => {
            match cli::imds_redirect(action, &config, backend, &agent_user, &mut out) {
                Ok(true) => Ok(()),
                // `status` of rules that are not installed, as `systemctl status` of a stopped unit.
                Ok(false) => return ExitCode::from(3),
                Err(e) => Err(failed(e)),
            }
        }
        Command::Import { file } => cli::import(&file, &mut out).map_err(failed),
        Command::Audit { command: AuditCommand::Verify { paths } } => match cli::audit_verify(&paths, &mut out) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(failed(e)),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((message, code)) => {
            eprintln!("emrfs-role-agent: {message}");
            ExitCode::from(code)
        }
    }
}

/// `EX_CONFIG`: systemd does not restart the agent on it (`RestartPreventExitStatus=78`).
const EX_CONFIG: u8 = 78;

fn failed(e: CliError) -> (String, u8) {
    let code = match e {
        CliError::Config(_) => EX_CONFIG,
        CliError::Usage(_) => 2,
        CliError::Other(_) => 1,
    };
    (e.to_string(), code)
}
