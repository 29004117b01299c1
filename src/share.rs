//! Each caller uid's share of a budget (requests, STS calls): so many a second, as many at once, so
//! that one local user cannot spend what the others need.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A share of a budget per caller uid: `n` per second, at most `n` at once. Used for the STS calls one
/// caller's requests may cause and for one caller's requests.
pub struct CallerLimiter(DefaultKeyedRateLimiter<u32>);

impl CallerLimiter {
    pub fn per_second(n: u32) -> CallerLimiter {
        let rate = std::num::NonZeroU32::new(n.max(1)).expect("non-zero");
        CallerLimiter(RateLimiter::keyed(Quota::per_second(rate)))
    }

    /// Takes one from `uid`'s share, if it has any left.
    pub fn allows(&self, uid: u32) -> bool {
        self.0.check_key(&uid).is_ok()
    }

    /// Drops the state of callers whose share is full again (bounded memory).
    pub fn forget_idle(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }
}
