//! `audit.format = "ocsf"`: each record as an OCSF 1.8.0 event (SPEC §7.1), so that Security Lake
//! and SIEMs take the log without a parser of their own.
//!
//! | record | OCSF class | activity |
//! |---|---|---|
//! | `credentials` | Authentication (3002) | Account Switch (7) |
//! | `refused` | Authentication (3002) | Account Switch (7), status Failure, `count` |
//! | `start`, `stop` | Application Lifecycle (6002) | Start (3), Stop (4) |
//! | `config_loaded`, `config_rejected` | Application Lifecycle (6002) | Update (8) |
//! | `sts_assume_role`, `get_data_access` | API Activity (6003) | Create (1) |
//!
//! The native record is kept whole under `unmapped`; docs/auditing.md has the full mapping.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::record::{Event, Line};
use crate::node::NodeInfo;

/// The OCSF schema version the events follow.
pub const SCHEMA_VERSION: &str = "1.8.0";

const AUTHENTICATION: (u32, u32) = (3, 3002);
const APPLICATION_LIFECYCLE: (u32, u32) = (6, 6002);
const API_ACTIVITY: (u32, u32) = (6, 6003);

/// One OCSF event, as a JSON line.
pub(crate) fn encode(line: &Line<'_>, now: SystemTime, node: &NodeInfo) -> Vec<u8> {
    let native = serde_json::to_value(line).expect("audit records serialise");
    let mut event = event(line.event, &native, node);
    let time = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let fields = event.as_object_mut().expect("an event is an object");
    fields.insert("time".into(), json!(time));
    fields.insert(
        "metadata".into(),
        json!({
            "version": SCHEMA_VERSION,
            "log_name": "emrfs-role-agent audit",
            "product": product(),
        }),
    );
    fields.insert("unmapped".into(), native);
    let mut bytes = serde_json::to_vec(&event).expect("an event serialises");
    bytes.push(b'\n');
    bytes
}

fn product() -> Value {
    json!({"name": "emrfs-role-agent", "vendor_name": "emrfs-role-agent", "version": env!("CARGO_PKG_VERSION")})
}

/// The class, activity and status fields of an event.
fn header((category, class): (u32, u32), activity: u32, activity_name: &str, success: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("category_uid".into(), json!(category));
    m.insert("class_uid".into(), json!(class));
    m.insert("activity_id".into(), json!(activity));
    m.insert("activity_name".into(), json!(activity_name));
    m.insert("type_uid".into(), json!(class * 100 + activity));
    m.insert("severity_id".into(), json!(if success { 1 } else { 2 }));
    m.insert("status_id".into(), json!(if success { 1 } else { 2 }));
    m.insert("status".into(), json!(if success { "Success" } else { "Failure" }));
    m
}

/// `actor.user` for a caller known by uid and, where it has one, name.
fn caller(uid: Option<u32>, name: Option<&str>) -> Value {
    let mut user = Map::new();
    user.insert("uid".into(), json!(uid.map_or_else(|| "unknown".to_owned(), |u| u.to_string())));
    if let Some(name) = name {
        user.insert("name".into(), json!(name));
    }
    json!({ "user": user })
}

/// Where the caller authenticated: the agent on this node.
fn authenticated_by(m: &mut Map<String, Value>, node: &NodeInfo) {
    m.insert("service".into(), json!({"name": "emrfs-role-agent"}));
    m.insert("dst_endpoint".into(), json!({"instance_uid": node.instance_id, "svc_name": "emrfs-role-agent"}));
}

fn agent_actor(node: &NodeInfo) -> (Value, Value) {
    (json!({"app_name": "emrfs-role-agent"}), json!({"instance_uid": node.instance_id}))
}

fn event(event: &Event<'_>, native: &Value, node: &NodeInfo) -> Value {
    let s = |key: &str| native.get(key).and_then(Value::as_str);
    let mut m = match event {
        Event::Credentials(r) => {
            let success = r.status == 200;
            let mut m = header(AUTHENTICATION, 7, "Account Switch", success);
            m.insert("actor".into(), caller(r.caller_uid, r.caller_user.as_deref()));
            authenticated_by(&mut m, node);
            // The subject: the role session handed out, else the local user it was asked for.
            let user = match (&r.role_arn, &r.session_name) {
                (Some(arn), session) => {
                    json!({"uid": arn, "name": session.as_deref().unwrap_or(arn), "type": "AWS IAM role session"})
                }
                (None, _) => json!({"name": r.user.as_deref().unwrap_or("unknown"), "type": "local user"}),
            };
            m.insert("user".into(), user);
            let switch = match (r.effect, r.source) {
                (_, Some("instance-profile")) => "EC2 instance profile",
                (Some("access-grants"), _) => "S3 Access Grants GetDataAccess",
                _ => "STS AssumeRole",
            };
            m.insert("account_switch_type_id".into(), json!(99));
            m.insert("account_switch_type".into(), json!(switch));
            if let Some(key) = &r.access_key_id {
                let mut session = Map::new();
                session.insert("credential_uid".into(), json!(key));
                if let Some(issuer) = &r.role_arn {
                    session.insert("issuer".into(), json!(issuer));
                }
                if let Some(t) = r.expiration.as_deref().and_then(millis) {
                    session.insert("expiration_time".into(), json!(t));
                }
                m.insert("session".into(), Value::Object(session));
            }
            m.insert("status_code".into(), json!(r.status.to_string()));
            if let Some(code) = &r.error_code {
                m.insert("status_detail".into(), json!(code.as_str()));
            }
            let location = r.location.as_deref().unwrap_or("no location");
            let message = match &r.role_arn {
                Some(role) => format!("{location}: {role} for {}", r.user.as_deref().unwrap_or("unknown")),
                None => format!("{location}: no credentials for {}", r.user.as_deref().unwrap_or("unknown")),
            };
            m.insert("message".into(), json!(message));
            m
        }
        Event::Refused { caller_uid, caller_user, count, .. } => {
            let mut m = header(AUTHENTICATION, 7, "Account Switch", false);
            m.insert("actor".into(), caller(*caller_uid, caller_user.as_deref()));
            authenticated_by(&mut m, node);
            m.insert("user".into(), json!({"name": caller_user.as_deref().unwrap_or("unknown"), "type": "local user"}));
            m.insert("count".into(), json!(count));
            m.insert("message".into(), json!(format!("{count} credentials requests refused before a decision")));
            m
        }
        Event::Start { .. } | Event::Stop { .. } | Event::ConfigLoaded { .. } | Event::ConfigRejected { .. } => {
            let (activity, name, success) = match event {
                Event::Start { .. } => (3, "Start", true),
                Event::Stop { .. } => (4, "Stop", true),
                Event::ConfigLoaded { .. } => (8, "Update", true),
                _ => (8, "Update", false),
            };
            let mut m = header(APPLICATION_LIFECYCLE, activity, name, success);
            m.insert("app".into(), product());
            let message = match event {
                Event::ConfigRejected { error, .. } => format!("configuration rejected: {error}"),
                Event::ConfigLoaded { config, rules } => format!("configuration {config} loaded ({rules} rules)"),
                Event::Stop { reason } => format!("stopped: {reason}"),
                _ => "started".to_owned(),
            };
            m.insert("message".into(), json!(message));
            m
        }
        Event::StsAssumeRole { role_arn, result, sts_request_id, .. } => {
            let mut m = header(API_ACTIVITY, 1, "Create", *result == "ok");
            api_call(
                &mut m,
                node,
                "AssumeRole",
                "sts.amazonaws.com",
                sts_request_id.as_deref(),
                role_arn,
                "AWS IAM role",
            );
            m
        }
        Event::GetDataAccess { grantee_role_arn, target, result, request_id, .. } => {
            let mut m = header(API_ACTIVITY, 1, "Create", *result == "ok");
            api_call(
                &mut m,
                node,
                "GetDataAccess",
                "s3.amazonaws.com",
                request_id.as_deref(),
                target,
                "S3 Access Grants target",
            );
            m.insert("actor".into(), json!({"app_name": "emrfs-role-agent", "user": {"uid": grantee_role_arn, "type": "AWS IAM role session"}}));
            m
        }
    };
    if let Some(code) = s("error_code").filter(|_| !m.contains_key("status_detail")) {
        m.insert("status_detail".into(), json!(code));
    }
    Value::Object(m)
}

fn api_call(
    m: &mut Map<String, Value>,
    node: &NodeInfo,
    operation: &str,
    service: &str,
    request_id: Option<&str>,
    resource: &str,
    resource_type: &str,
) {
    let (actor, src) = agent_actor(node);
    m.insert("actor".into(), actor);
    m.insert("src_endpoint".into(), src);
    let mut api = json!({"operation": operation, "service": {"name": service}});
    if let Some(id) = request_id {
        api["request"] = json!({"uid": id});
    }
    m.insert("api".into(), api);
    m.insert("resources".into(), json!([{"uid": resource, "type": resource_type}]));
}

/// RFC 3339 as milliseconds since the epoch (OCSF's `timestamp`).
fn millis(rfc3339: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(rfc3339).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)
}
