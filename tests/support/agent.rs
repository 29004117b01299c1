//! An agent running inside the test process (`daemon::start` on the given config), with the
//! source credentials and clock the test chooses.

use std::path::Path;
use std::sync::Arc;

use emrfs_role_agent::clock::Clock;
use emrfs_role_agent::config::Config;
use emrfs_role_agent::daemon::{self, Running};
use emrfs_role_agent::handler::NodeInfo;

/// Parses `config_text` (as if read from `<dir>/config.toml`) and starts the agent with
/// `credentials` as its source credentials (region us-east-1). Panics if either fails.
pub async fn start_agent(
    config_text: &str,
    dir: &Path,
    credentials: aws_credential_types::Credentials,
    clock: Arc<dyn Clock>,
) -> Running {
    let config = Config::parse(config_text, &dir.join("config.toml"), None).expect("valid config");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await;
    let node = NodeInfo { cluster_id: "j-TEST".into(), instance_id: "i-test".into() };
    daemon::start(config, clock, node, &sdk).await.expect("agent starts")
}
