//! The Prometheus registry: every metric the agent exports, prefixed `emrfs_role_agent_`.
//! Labels carry outcomes and codes only — never a user, a role or anything secret.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub outcome: &'static str,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// Every (`outcome`, `code`) a credentials request can end with (SPEC §5).
pub const REQUEST_OUTCOMES: &[(&str, &str)] = &[
    ("allow", "OK"),
    ("deny", "AccessDenied"),
    ("deny", "ImpersonationDenied"),
    ("deny", "Forbidden"),
    ("deny", "Unauthorized"),
    ("error", "InvalidRequest"),
    ("error", "MethodNotAllowed"),
    ("error", "CredentialsUnavailable"),
    ("error", "AuditUnavailable"),
    ("error", "Timeout"),
];

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Histogram,
    pub sts_calls: Family<ResultLabel, Counter>,
    pub sts_call_duration: Histogram,
    pub cache_sessions: Gauge,
    /// `result` is hit, miss, stale or instance-profile.
    pub cache_lookups: Family<ResultLabel, Counter>,
    pub cache_refreshes: Family<ResultLabel, Counter>,
    pub audit_records: Counter,
    pub audit_queue_depth: Gauge,
    pub audit_write_errors: Counter,
    /// Lifecycle or buffered records lost because the log stayed unwritable.
    pub audit_records_dropped: Counter,
    pub audit_fsync_duration: Histogram,
    /// Closed audit segments on disk, not yet shipped to S3 (SPEC §7.3).
    pub audit_ship_backlog_bytes: Gauge,
    /// 1 while the backlog is above `audit.ship.max_backlog`.
    pub audit_ship_backlog_exceeded: Gauge,
    /// Unix time of the last segment shipped; 0 before the first.
    pub audit_ship_last_success: Gauge,
    pub audit_ship_failures: Counter,
    pub audit_ship_segments: Counter,
    pub config_reloads: Family<ResultLabel, Counter>,
    pub connections_open: Gauge,
    pub connections_refused: Counter,
}

fn seconds_histogram() -> Histogram {
    // 50 µs … ~13 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 19))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("emrfs_role_agent");
        let m = Metrics {
            requests: Family::default(),
            request_duration: seconds_histogram(),
            sts_calls: Family::default(),
            sts_call_duration: seconds_histogram(),
            cache_sessions: Gauge::default(),
            cache_lookups: Family::default(),
            cache_refreshes: Family::default(),
            audit_records: Counter::default(),
            audit_queue_depth: Gauge::default(),
            audit_write_errors: Counter::default(),
            audit_records_dropped: Counter::default(),
            audit_fsync_duration: seconds_histogram(),
            audit_ship_backlog_bytes: Gauge::default(),
            audit_ship_backlog_exceeded: Gauge::default(),
            audit_ship_last_success: Gauge::default(),
            audit_ship_failures: Counter::default(),
            audit_ship_segments: Counter::default(),
            config_reloads: Family::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("requests", "Credentials requests by outcome and code", m.requests.clone());
        registry.register("request_duration_seconds", "Credentials request latency", m.request_duration.clone());
        registry.register("sts_calls", "STS calls by result", m.sts_calls.clone());
        registry.register("sts_call_duration_seconds", "STS call latency", m.sts_call_duration.clone());
        registry.register("cache_sessions", "Sessions held in the cache", m.cache_sessions.clone());
        registry.register("cache_lookups", "Cache lookups by result", m.cache_lookups.clone());
        registry.register("cache_refreshes", "Background refreshes by result", m.cache_refreshes.clone());
        registry.register("audit_records", "Audit records written", m.audit_records.clone());
        registry.register("audit_queue_depth", "Audit records waiting to be written", m.audit_queue_depth.clone());
        registry.register("audit_write_errors", "Failed audit writes", m.audit_write_errors.clone());
        registry.register(
            "audit_records_dropped",
            "Audit records no request waited for, dropped because the log stayed unwritable",
            m.audit_records_dropped.clone(),
        );
        registry.register("audit_fsync_duration_seconds", "Audit fsync latency", m.audit_fsync_duration.clone());
        registry.register(
            "audit_ship_backlog_bytes",
            "Closed audit segments waiting to be shipped to S3",
            m.audit_ship_backlog_bytes.clone(),
        );
        registry.register(
            "audit_ship_backlog_exceeded",
            "1 while the unshipped audit backlog is above audit.ship.max_backlog",
            m.audit_ship_backlog_exceeded.clone(),
        );
        registry.register(
            "audit_ship_last_success_timestamp_seconds",
            "Unix time of the last audit segment shipped to S3",
            m.audit_ship_last_success.clone(),
        );
        registry.register("audit_ship_failures", "Failed audit segment uploads", m.audit_ship_failures.clone());
        registry.register("audit_ship_segments", "Audit segments shipped to S3", m.audit_ship_segments.clone());
        registry.register("config_reloads", "Configuration reloads by result", m.config_reloads.clone());
        registry.register("connections_open", "Open client connections", m.connections_open.clone());
        registry.register(
            "connections_refused",
            "Connections closed at max_connections",
            m.connections_refused.clone(),
        );
        // Every known series exists from the start at 0, so that alerts on `increase()` fire on
        // the first occurrence and dashboards show zeros rather than gaps.
        for &(outcome, code) in REQUEST_OUTCOMES {
            let _ = m.requests.get_or_create(&RequestLabels { outcome, code });
        }
        for result in ["ok", "denied", "throttled", "unavailable"] {
            let _ = m.sts_calls.get_or_create(&ResultLabel { result });
        }
        for result in ["hit", "miss", "stale", "instance-profile"] {
            let _ = m.cache_lookups.get_or_create(&ResultLabel { result });
        }
        for result in ["ok", "failed"] {
            let _ = m.cache_refreshes.get_or_create(&ResultLabel { result });
        }
        for result in ["ok", "rejected"] {
            let _ = m.config_reloads.get_or_create(&ResultLabel { result });
        }
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
