//! Refusals that never reach a decision (a bad request, a wrong token, a forbidden origin, a throttled
//! caller), counted per caller uid and written once a second as one `refused` audit record each (SPEC
//! §7). A flood of them costs a line per caller and second, not a line per request, and every refused
//! request is still accounted for: the records' `count`s add up to exactly the requests refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use super::record::Event;
use crate::refusal::ErrorCode;

/// Whether a refusal with `code` is tallied rather than recorded on its own: it came before any rule
/// was looked at, so there is no decision to record.
pub fn is_tallied(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidRequest
            | ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::Throttled
            | ErrorCode::LoopDetected
    )
}

/// The refusals of the current second, per caller uid (`None`: the kernel could not say).
#[derive(Default)]
pub struct Tally {
    callers: Mutex<HashMap<Option<u32>, Counts>>,
}

struct Counts {
    caller_user: Option<String>,
    since: SystemTime,
    count: u64,
    codes: BTreeMap<&'static str, u64>,
    first_request_id: String,
    last_request_id: String,
}

impl Tally {
    /// Counts one refused request.
    pub fn add(
        &self,
        caller_uid: Option<u32>,
        caller_user: Option<&str>,
        code: ErrorCode,
        request_id: &str,
        now: SystemTime,
    ) {
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        let counts = callers.entry(caller_uid).or_insert_with(|| Counts {
            caller_user: caller_user.map(str::to_owned),
            since: now,
            count: 0,
            codes: BTreeMap::new(),
            first_request_id: request_id.to_owned(),
            last_request_id: String::new(),
        });
        counts.count += 1;
        *counts.codes.entry(code.as_str()).or_insert(0) += 1;
        request_id.clone_into(&mut counts.last_request_id);
    }

    /// Everything counted since the last drain, as `refused` events, and a fresh start.
    pub fn drain(&self) -> Vec<Event<'static>> {
        let callers = std::mem::take(&mut *self.callers.lock().unwrap_or_else(|p| p.into_inner()));
        let mut callers: Vec<_> = callers.into_iter().collect();
        callers.sort_unstable_by_key(|(caller_uid, _)| *caller_uid);
        callers
            .into_iter()
            .map(|(caller_uid, c)| Event::Refused {
                caller_uid,
                caller_user: c.caller_user,
                since: super::record::timestamp(c.since),
                count: c.count,
                codes: c.codes,
                first_request_id: c.first_request_id,
                last_request_id: c.last_request_id,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_per_caller_and_code_and_start_afresh() {
        let tally = Tally::default();
        let now = SystemTime::UNIX_EPOCH;
        for i in 0..5 {
            tally.add(Some(1000), Some("eve"), ErrorCode::Unauthorized, &format!("r-{i}"), now);
        }
        tally.add(Some(1000), Some("eve"), ErrorCode::InvalidRequest, "r-5", now);
        tally.add(None, None, ErrorCode::Forbidden, "r-6", now);
        let events = tally.drain();
        assert_eq!(events.len(), 2);
        let json: Vec<serde_json::Value> = events.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
        assert_eq!(json[0]["caller_uid"], serde_json::Value::Null);
        assert_eq!(json[1]["count"], 6);
        assert_eq!(json[1]["codes"], serde_json::json!({"InvalidRequest": 1, "Unauthorized": 5}));
        assert_eq!(
            (json[1]["first_request_id"].as_str(), json[1]["last_request_id"].as_str()),
            (Some("r-0"), Some("r-5"))
        );
        assert!(tally.drain().is_empty());
        assert!(is_tallied(ErrorCode::Unauthorized) && !is_tallied(ErrorCode::AccessDenied));
        assert!(!is_tallied(ErrorCode::ImpersonationDenied) && !is_tallied(ErrorCode::AuditUnavailable));
    }
}
