//! How a request ends when it gets no credentials (pure): one [`ErrorCode`] per answer the HTTP API
//! can give (SPEC §5), which knows its status, its audit outcome and its wire name.

use std::fmt;

use http::StatusCode;
use serde::Serialize;

/// `outcome` of a credentials request in its audit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allow,
    Deny,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Error => "error",
        }
    }
}

/// The `code` of an error answer; serialised (in the answer and the audit record) as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ErrorCode {
    /// 400: a bad or unknown parameter, a bad location.
    InvalidRequest,
    /// 401: the token is missing or wrong.
    Unauthorized,
    /// 403: a deny rule, `fallback.mode = "deny"`, or STS refused.
    AccessDenied,
    /// 403: `user=` is not allowed for this caller.
    ImpersonationDenied,
    /// 403: a non-loopback peer or `Host`, forwarding headers, an unidentifiable caller.
    Forbidden,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 429: too many connections or requests.
    Throttled,
    /// 503: STS failing and nothing valid cached, or the user directory failing.
    CredentialsUnavailable,
    /// 503: the audit record could not be written.
    AuditUnavailable,
    /// 504: `request_timeout` passed.
    Timeout,
    /// 508: the agent's own metadata traffic was redirected back to it (the metadata listener only):
    /// its user must be exempt from the redirect.
    LoopDetected,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::AccessDenied | ErrorCode::ImpersonationDenied | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Throttled => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::CredentialsUnavailable | ErrorCode::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::LoopDetected => StatusCode::LOOP_DETECTED,
        }
    }

    /// Refusals of the caller are denials; everything else is an error of the request or the agent.
    pub fn outcome(self) -> Outcome {
        match self {
            ErrorCode::AccessDenied
            | ErrorCode::ImpersonationDenied
            | ErrorCode::Forbidden
            | ErrorCode::Unauthorized => Outcome::Deny,
            _ => Outcome::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "InvalidRequest",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::AccessDenied => "AccessDenied",
            ErrorCode::ImpersonationDenied => "ImpersonationDenied",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::MethodNotAllowed => "MethodNotAllowed",
            ErrorCode::Throttled => "Throttled",
            ErrorCode::CredentialsUnavailable => "CredentialsUnavailable",
            ErrorCode::AuditUnavailable => "AuditUnavailable",
            ErrorCode::Timeout => "Timeout",
            ErrorCode::LoopDetected => "LoopDetected",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: its code, a message without secrets, and for a refusal by the rules the scope it
/// holds for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    #[serde(rename = "Scope", skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal { code, message: message.into(), scope: None }
    }

    /// The JSON body: `{"code": …, "message": …}`, with `"Scope"` when set.
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("a refusal serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_wire_names() {
        for code in [ErrorCode::InvalidRequest, ErrorCode::ImpersonationDenied, ErrorCode::AuditUnavailable] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        let body: serde_json::Value = serde_json::from_str(&Refusal::new(ErrorCode::Timeout, "late").body()).unwrap();
        assert_eq!(body, serde_json::json!({"code": "Timeout", "message": "late"}));
        let denied = Refusal { scope: Some("s3://bkt/x".into()), ..Refusal::new(ErrorCode::AccessDenied, "no") };
        let body: serde_json::Value = serde_json::from_str(&denied.body()).unwrap();
        assert_eq!(body, serde_json::json!({"code": "AccessDenied", "message": "no", "Scope": "s3://bkt/x"}));
    }

    #[test]
    fn statuses_and_outcomes_follow_the_contract() {
        assert_eq!(ErrorCode::Throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ErrorCode::Forbidden.outcome(), Outcome::Deny);
        assert_eq!(ErrorCode::Timeout.outcome(), Outcome::Error);
        assert_eq!(ErrorCode::InvalidRequest.outcome(), Outcome::Error);
    }
}
