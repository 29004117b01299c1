//! Each caller's share of a budget (requests, STS calls): so many a second, as many at once, so that
//! one local user cannot spend what the others need.
//!
//! A share belongs to a [`Sharer`]: the caller's uid, and the user a proxy acts for. On a cluster
//! without Kerberos every tenant's executors run as `yarn`: the tenants behind one proxy uid each get
//! a share of their own, so that one of them cannot starve the others.

use std::fmt;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Whose share a request or an STS call takes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sharer {
    /// The uid owning the caller's socket.
    pub uid: u32,
    /// The user a proxy asked for (`user=`, accepted); `None`: the caller acts for itself.
    pub on_behalf_of: Option<Arc<str>>,
}

impl Sharer {
    /// A caller acting for itself.
    pub fn uid(uid: u32) -> Sharer {
        Sharer { uid, on_behalf_of: None }
    }
}

impl fmt::Display for Sharer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.on_behalf_of {
            None => write!(f, "uid {}", self.uid),
            Some(user) => write!(f, "uid {} for user {user}", self.uid),
        }
    }
}

/// A share of a budget per [`Sharer`]: `n` per second, at most `n` at once. Used for the STS calls one
/// caller's requests may cause and for one caller's requests.
pub struct CallerLimiter(DefaultKeyedRateLimiter<Sharer>);

impl CallerLimiter {
    pub fn per_second(n: u32) -> CallerLimiter {
        let rate = std::num::NonZeroU32::new(n.max(1)).expect("non-zero");
        CallerLimiter(RateLimiter::keyed(Quota::per_second(rate)))
    }

    /// Takes one from `sharer`'s share, if it has any left.
    pub fn allows(&self, sharer: &Sharer) -> bool {
        self.0.check_key(sharer).is_ok()
    }

    /// Drops the state of callers whose share is full again (bounded memory).
    pub fn forget_idle(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_behind_one_proxy_uid_have_shares_of_their_own() {
        let limiter = CallerLimiter::per_second(3);
        let yarn_for = |user: &str| Sharer { uid: 986, on_behalf_of: Some(user.into()) };
        while limiter.allows(&yarn_for("alice")) {}
        assert!(!limiter.allows(&yarn_for("alice")), "alice's share is spent");
        for _ in 0..3 {
            assert!(limiter.allows(&yarn_for("bob")), "bob's share is his own");
        }
        assert!(limiter.allows(&Sharer::uid(986)), "yarn acting for itself has its own share too");
        assert!(!limiter.allows(&yarn_for("bob")));
    }
}
