//! The `emrfs-role-agent` binary: parse the command line, run one command, map its error to an
//! exit code (0 success, 2 bad command line, 78 invalid configuration, 1 anything else).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use emrfs_role_agent::cli;

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
        /// The S3 location asked for, e.g. s3://bucket/key.
        location: Option<String>,
    },
    /// Convert an EMR security configuration or emrfs-site roleMapping value to [[mapping]] TOML.
    Import {
        /// Security configuration JSON, describe-security-configuration output, or roleMapping text.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Serve { config } => emrfs_role_agent::daemon::run(&config),
        Command::Check { config } => cli::check(&config, &mut std::io::stdout()),
        Command::Explain { config, user, groups, location } => {
            cli::explain(&config, user, groups, location.as_deref(), &mut std::io::stdout())
        }
        Command::Import { file } => cli::import(&file, &mut std::io::stdout()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("emrfs-role-agent: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
