//! When cached credentials are refreshed and whether they may still be served. Pure: every
//! function takes `now`.
//!
//! A session's life, for credentials expiring at `E`:
//! ```text
//!   issued ........ refresh_at ............ E - min_remaining_when_stale ...... E
//!   |  fresh: serve  |  due: refresh; on STS failure serve as stale  |  unusable  |
//! ```
//! `refresh_at` is `E - refresh_before_expiry` plus a random jitter of up to a tenth of
//! `refresh_before_expiry`, so a fleet of sessions issued together does not refresh together.
//! The jitter only ever makes the lead shorter: `refresh_before_expiry` is the most a session
//! is cut short, so a one-hour session with the default 30 minutes costs at most two STS calls
//! an hour (jitter that also moved refreshes earlier made it slightly more than two).
//! Outside an STS outage a client never receives credentials with less than
//! [`MIN_CLIENT_VALIDITY`] left: those are refreshed first.

use std::time::{Duration, SystemTime};

/// botocore refetches container credentials on every call when fewer than 15 minutes remain,
/// so fresh credentials must always have more than that.
pub const MIN_CLIENT_VALIDITY: Duration = Duration::from_secs(15 * 60);

/// The refresh settings of `[sts]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub refresh_before_expiry: Duration,
    pub min_remaining_when_stale: Duration,
    /// After a failed refresh, requests keep getting the stale credentials for this long before
    /// one of them tries STS again.
    pub retry_after_failure: Duration,
}

/// What may be done with cached credentials at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Serve them.
    Fresh,
    /// Refresh them; if STS fails, they may still be served (as stale).
    Due,
    /// Never serve them again.
    Unusable,
}

impl Timing {
    /// When credentials expiring at `expiration` become due. `jitter` is in `[0, 1)`.
    pub fn refresh_at(&self, issued: SystemTime, expiration: SystemTime, jitter: f64) -> SystemTime {
        let spread = self.refresh_before_expiry.mul_f64(jitter.clamp(0.0, 1.0) / 10.0);
        let lead = self.refresh_before_expiry - spread;
        // A session shorter than the lead (never with validated config, but STS decides the real
        // lifetime) is refreshed halfway through its life instead of at once.
        let life = expiration.duration_since(issued).unwrap_or_default();
        if lead >= life {
            return issued + life / 2;
        }
        expiration - lead
    }

    pub fn freshness(&self, now: SystemTime, refresh_at: SystemTime, expiration: SystemTime) -> Freshness {
        let remaining = expiration.duration_since(now).unwrap_or_default();
        if remaining <= self.min_remaining_when_stale || remaining.is_zero() {
            Freshness::Unusable
        } else if now < refresh_at && remaining > MIN_CLIENT_VALIDITY {
            Freshness::Fresh
        } else {
            Freshness::Due
        }
    }

    /// Whether a request arriving at `now` should try STS again after the last failed refresh
    /// at `failed_at`, or keep serving stale credentials.
    pub fn may_retry(&self, now: SystemTime, failed_at: Option<SystemTime>) -> bool {
        match failed_at {
            None => true,
            Some(at) => now.duration_since(at).unwrap_or_default() >= self.retry_after_failure,
        }
    }
}

/// Whether a session last asked for at `last_used` is still worth refreshing at `now`.
pub fn is_idle(now: SystemTime, last_used: SystemTime, idle_timeout: Duration) -> bool {
    now.duration_since(last_used).unwrap_or_default() >= idle_timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn timing() -> Timing {
        Timing { refresh_before_expiry: 30 * MIN, min_remaining_when_stale: 5 * MIN, retry_after_failure: MIN }
    }

    #[test]
    fn a_one_hour_session_is_fresh_for_half_an_hour_then_due_then_unusable() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let exp = t0 + 60 * MIN;
        let at = timing().refresh_at(t0, exp, 0.0);
        assert_eq!(at, t0 + 30 * MIN);
        assert_eq!(timing().freshness(t0, at, exp), Freshness::Fresh);
        assert_eq!(timing().freshness(t0 + 29 * MIN, at, exp), Freshness::Fresh);
        assert_eq!(timing().freshness(t0 + 30 * MIN, at, exp), Freshness::Due);
        assert_eq!(timing().freshness(t0 + 54 * MIN, at, exp), Freshness::Due);
        assert_eq!(timing().freshness(t0 + 55 * MIN, at, exp), Freshness::Unusable);
        assert_eq!(timing().freshness(t0 + 61 * MIN, at, exp), Freshness::Unusable);
    }

    #[test]
    fn jitter_only_moves_refresh_later_by_at_most_a_tenth_of_the_lead() {
        let t0 = SystemTime::UNIX_EPOCH;
        let exp = t0 + 60 * MIN;
        let at = timing().refresh_at(t0, exp, 0.999);
        assert!(at > t0 + 30 * MIN && at <= t0 + 33 * MIN, "{at:?}");
        // A session refreshed on its due time is never replaced sooner than 30 minutes later:
        // at most two STS calls an hour per key.
        for jitter in [0.0, 0.25, 0.5, 0.999] {
            assert!(timing().refresh_at(t0, exp, jitter) >= t0 + 30 * MIN);
        }
    }

    #[test]
    fn jitter_never_leaves_a_fresh_session_with_fifteen_minutes_or_less() {
        let t = Timing { refresh_before_expiry: 16 * MIN, ..timing() };
        let t0 = SystemTime::UNIX_EPOCH;
        let exp = t0 + 60 * MIN;
        let at = t.refresh_at(t0, exp, 0.999);
        assert!(at > exp - 15 * MIN, "the jittered lead is under 15 minutes here");
        assert_eq!(t.freshness(exp - 15 * MIN, at, exp), Freshness::Due);
    }

    #[test]
    fn fresh_never_means_less_than_fifteen_minutes_left() {
        let t = Timing { refresh_before_expiry: 5 * MIN, ..timing() };
        let t0 = SystemTime::UNIX_EPOCH;
        let exp = t0 + 60 * MIN;
        let at = t.refresh_at(t0, exp, 0.0);
        assert_eq!(t.freshness(t0 + 46 * MIN, at, exp), Freshness::Due);
    }

    #[test]
    fn a_session_shorter_than_the_lead_refreshes_halfway() {
        let t0 = SystemTime::UNIX_EPOCH;
        assert_eq!(timing().refresh_at(t0, t0 + 20 * MIN, 0.5), t0 + 10 * MIN);
    }

    #[test]
    fn retry_and_idle() {
        let t0 = SystemTime::UNIX_EPOCH;
        assert!(timing().may_retry(t0, None));
        assert!(!timing().may_retry(t0 + Duration::from_secs(59), Some(t0)));
        assert!(timing().may_retry(t0 + MIN, Some(t0)));
        assert!(!is_idle(t0 + 119 * MIN, t0, 120 * MIN));
        assert!(is_idle(t0 + 120 * MIN, t0, 120 * MIN));
    }
}
