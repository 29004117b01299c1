//! The audit record: what one line of the log says (SPEC §7), as JSON with its schema version.

use std::time::SystemTime;

use serde::Serialize;

use crate::access::Access;
use crate::refusal::{ErrorCode, Outcome};

/// The schema version written in every record's `v`.
pub const VERSION: u8 = 1;

/// `time` of a record: RFC 3339, UTC, milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// One credentials request (`event = "credentials"`). Absent values serialise as `null`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CredentialRecord {
    pub request_id: String,
    /// Which door the request came through.
    pub via: Via,
    pub outcome: Option<Outcome>,
    pub status: u16,
    pub caller_uid: Option<u32>,
    pub caller_user: Option<String>,
    pub user: Option<String>,
    pub asserted: bool,
    pub groups: Option<Vec<String>>,
    pub location: Option<String>,
    /// `access=` of the request; `None`: read and write.
    pub access: Option<Access>,
    pub rule_index: Option<usize>,
    pub rule_name: Option<String>,
    pub effect: Option<&'static str>,
    pub role_arn: Option<String>,
    pub session_name: Option<String>,
    pub source_identity: Option<String>,
    pub access_key_id: Option<String>,
    pub expiration: Option<String>,
    pub source: Option<&'static str>,
    pub sts_request_id: Option<String>,
    /// For an access-grants rule: the grant S3 Access Grants matched (`s3://bucket/prefix/*`).
    pub grant_target: Option<String>,
    pub error_code: Option<ErrorCode>,
    pub latency_us: u64,
}

/// `via` of a credentials record: the HTTP API (SPEC §5) or the instance-metadata listener (§5.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    #[default]
    Api,
    Imds,
}

/// Every event the log carries; `event` names the variant.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// Lent by the request, which keeps it for its metrics.
    Credentials(&'a CredentialRecord),
    Start {
        version: &'static str,
        pid: u32,
        config: String,
    },
    Stop {
        reason: String,
    },
    ConfigLoaded {
        config: String,
        rules: usize,
    },
    ConfigRejected {
        config: String,
        error: String,
    },
    /// Refusals that reached no decision, of one caller since `since` (see [`super::tally`]).
    Refused {
        caller_uid: Option<u32>,
        caller_user: Option<String>,
        since: String,
        count: u64,
        codes: std::collections::BTreeMap<&'static str, u64>,
        first_request_id: String,
        last_request_id: String,
    },
    StsAssumeRole {
        role_arn: String,
        session_name: String,
        result: &'static str,
        sts_request_id: Option<String>,
        access_key_id: Option<String>,
        error_code: Option<String>,
        duration_us: u64,
    },
    /// One S3 Access Grants `GetDataAccess` call (SPEC §4.1), asked as the grantee session.
    GetDataAccess {
        grantee_role_arn: String,
        session_name: String,
        /// The target asked for, or the matched target a refresh asked for again.
        target: String,
        permission: &'static str,
        result: &'static str,
        /// The grant that matched.
        grant_target: Option<String>,
        /// S3's request id.
        request_id: Option<String>,
        access_key_id: Option<String>,
        error_code: Option<String>,
        duration_us: u64,
    },
}

/// One line of the log: the schema version, the time and the event.
#[derive(Serialize)]
pub(crate) struct Line<'a> {
    pub v: u8,
    pub time: String,
    #[serde(flatten)]
    pub event: &'a Event<'a>,
}
