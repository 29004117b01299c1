//! Facts about this node that session names may carry: the EMR cluster id and the EC2 instance id.
//!
//! Read once at start (by `serve` and by `explain`, the same way) from the files EMR and cloud-init
//! write; a node that is not an EMR node, or whose files cannot be read, is `"unknown"`.

use std::path::Path;

/// Where EMR writes facts about the cluster and the node.
pub const EMR_INFO_DIR: &str = "/mnt/var/lib/info";
/// Where cloud-init writes the EC2 instance id.
pub const CLOUD_INSTANCE_ID_FILE: &str = "/var/lib/cloud/data/instance-id";
/// `{cluster_id}` / `{instance_id}` when the node does not say.
pub const UNKNOWN: &str = "unknown";

/// `{cluster_id}` and `{instance_id}` of the session-name templates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub cluster_id: String,
    pub instance_id: String,
}

impl NodeInfo {
    /// This node's facts, from [`EMR_INFO_DIR`] and [`CLOUD_INSTANCE_ID_FILE`].
    pub fn read() -> NodeInfo {
        NodeInfo::read_from(Path::new(EMR_INFO_DIR), Path::new(CLOUD_INSTANCE_ID_FILE))
    }

    /// The cluster id is `jobFlowId` in `<info_dir>/job-flow.json`; the instance id is the content of
    /// cloud-init's `instance_id_file`, else `instanceId` in `<info_dir>/instance.json`; [`UNKNOWN`] when absent.
    pub fn read_from(info_dir: &Path, instance_id_file: &Path) -> NodeInfo {
        let field = |file: &str, key: &str| -> Option<String> {
            let text = std::fs::read_to_string(info_dir.join(file)).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v.get(key)?.as_str().map(str::to_owned).filter(|s| !s.is_empty())
        };
        let cloud_init =
            std::fs::read_to_string(instance_id_file).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        NodeInfo {
            cluster_id: field("job-flow.json", "jobFlowId").unwrap_or_else(|| UNKNOWN.into()),
            instance_id: cloud_init.or_else(|| field("instance.json", "instanceId")).unwrap_or_else(|| UNKNOWN.into()),
        }
    }
}
