//! The session cache: one entry per [`CacheKey`], bounded by moka.
//!
//! Promises:
//! - however many requests wait for a key, one STS call serves them (a per-key async lock; the
//!   waiters find the fresh entry when they get it);
//! - entries are refreshed ahead of expiry by [`SessionCache::refresh_due`], only while someone
//!   keeps asking (`idle_timeout`); idle entries are dropped, not refreshed;
//! - when a refresh fails, the last good credentials keep being served (as stale) until
//!   `min_remaining_when_stale` before they expire;
//! - a refusal from STS is remembered for `negative_cache`, so a denied job cannot cause an
//!   AssumeRole storm.
//!
//! Time comes from the injected [`Clock`]; nothing here sleeps except STS retry backoff.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::decision::SessionKey;
use crate::refresh::{is_idle, Freshness, Timing};
use crate::share::CallerLimiter;
use crate::sts::{call_with_retries, Attempt, CallLimiter, Session, Sts, StsError};

/// What a cached session is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CacheKey {
    Role(SessionKey),
    /// The node's own credentials (`fallback.mode = "instance-profile"`).
    InstanceProfile,
}

/// Where the credentials handed out came from (the audit record's `source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Cache,
    Sts,
    Stale,
    InstanceProfile,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Sts => "sts",
            Source::Stale => "stale",
            Source::InstanceProfile => "instance-profile",
        }
    }
}

/// Credentials ready to hand out.
#[derive(Clone, Debug)]
pub struct Served {
    pub session: Arc<Session>,
    pub source: Source,
}

/// No credentials for this request.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CacheError {
    /// STS refused (now or within `negative_cache`): 403.
    #[error(transparent)]
    Denied(StsError),
    /// STS is failing and nothing usable is cached: 503.
    #[error(transparent)]
    Unavailable(StsError),
    /// This caller's requests have caused their share of STS calls for now: 429.
    #[error("the requests of uid {0} caused their share of STS calls (sts.max_calls_per_caller); retry in a moment")]
    Throttled(u32),
}

/// Told about every STS call and refresh (audit log, metrics).
pub trait CacheEvents: Send + Sync + 'static {
    fn sts_call(&self, key: &CacheKey, result: &Result<Session, StsError>, elapsed: Duration);
    fn refreshed(&self, ok: bool);
}

/// Settings of `[sts]` and `[cache]` that shape caching.
#[derive(Clone, Copy, Debug)]
pub struct CacheSettings {
    pub timing: Timing,
    pub max_sessions: u64,
    pub idle_timeout: Duration,
    pub negative_cache: Duration,
    pub call_timeout: Duration,
    pub max_calls_per_second: u32,
    /// STS calls the requests of one caller uid may cause per second (and at once).
    pub max_calls_per_caller: u32,
}

/// After a failed refresh, stale credentials are served this long before STS is tried again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

pub struct SessionCache<S> {
    sts: Arc<S>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn CacheEvents>,
    settings: CacheSettings,
    limiter: CallLimiter,
    per_caller: CallerLimiter,
    /// foldhash: hashing the key (a role ARN, a session name, perhaps a policy) with the default
    /// SipHash was a visible share of a cached request; keys come from the configuration and
    /// the node's users, and the hasher is still randomly seeded.
    slots: moka::sync::Cache<CacheKey, Arc<Slot>, foldhash::fast::RandomState>,
}

struct Slot {
    state: RwLock<SlotState>,
    /// Set when the slot is made, so that the refresher never finds one that looks unused: a slot it
    /// dropped between a request making it and marking it used took that request's session out of the
    /// cache, and during an STS outage the next request got 503 instead of the stale session.
    last_used: Mutex<SystemTime>,
    /// Held while calling STS for this key: the single flight.
    fetching: tokio::sync::Mutex<()>,
    /// STS calls finished for this key, to tell waiters whether one finished while they queued.
    fetches: std::sync::atomic::AtomicU64,
}

/// The rare states are boxed: every cached session has a slot, few have a refusal or an outage.
#[derive(Clone, Default)]
struct SlotState {
    current: Option<Entry>,
    /// A refusal from STS and until when it stands.
    denied: Option<Box<(SystemTime, StsError)>>,
    /// The last fetch (by number) that found STS unavailable and nothing usable cached.
    unavailable: Option<Box<(u64, StsError)>>,
}

#[derive(Clone)]
struct Entry {
    session: Arc<Session>,
    refresh_at: SystemTime,
    /// The last failed refresh, while the entry is being served stale.
    failed_at: Option<SystemTime>,
}

impl Slot {
    fn new(now: SystemTime) -> Slot {
        Slot {
            state: RwLock::default(),
            last_used: Mutex::new(now),
            fetching: tokio::sync::Mutex::default(),
            fetches: std::sync::atomic::AtomicU64::default(),
        }
    }
}

enum Look {
    Serve(Served),
    Refuse(CacheError),
    Fetch,
}

impl<S: Sts> SessionCache<S> {
    pub fn new(sts: Arc<S>, clock: Arc<dyn Clock>, events: Arc<dyn CacheEvents>, settings: CacheSettings) -> Self {
        SessionCache {
            sts,
            clock,
            events,
            limiter: CallLimiter::per_second(settings.max_calls_per_second),
            per_caller: CallerLimiter::per_second(settings.max_calls_per_caller),
            slots: moka::sync::Cache::builder()
                .max_capacity(settings.max_sessions)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            settings,
        }
    }

    /// Sessions currently held (a remembered refusal is not a session). Counted over the map
    /// itself: moka's `entry_count` lags until its housekeeping runs.
    pub fn len(&self) -> u64 {
        self.slots.iter().filter(|(_, slot)| slot.state.read().expect("slot lock").current.is_some()).count() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Credentials for `key`: cached, fetched, or stale during an STS outage. A fetch made for
    /// `caller` counts against its share of STS calls; requests waiting on it do not.
    pub async fn get(&self, key: &CacheKey, caller: Option<u32>) -> Result<Served, CacheError> {
        let now = self.clock.now();
        let slot = self.slot(key, now);
        match self.look(&slot, now, false) {
            Look::Serve(served) => Ok(served),
            Look::Refuse(err) => Err(err),
            // Boxed: waiting for STS takes a future of kilobytes, which a request answered from
            // the cache should neither build nor move.
            Look::Fetch => Box::pin(self.get_in_flight(key, slot, caller)).await,
        }
    }

    /// The slot of `key`, made if there is none, marked used at `now`.
    fn slot(&self, key: &CacheKey, now: SystemTime) -> Arc<Slot> {
        let slot = self.slots.get_with_by_ref(key, || Arc::new(Slot::new(now)));
        *slot.last_used.lock().expect("slot lock") = now;
        slot
    }

    /// The slow path of [`SessionCache::get`]: one STS call per key, whoever asks.
    async fn get_in_flight(&self, key: &CacheKey, slot: Arc<Slot>, caller: Option<u32>) -> Result<Served, CacheError> {
        let queued_after = slot.fetches.load(Ordering::Acquire);
        let _flight = slot.fetching.lock().await;
        // Whoever held the lock before us may have fetched what we need, or found STS down:
        // requests that queued behind a failed call share its answer instead of each spending
        // another call_timeout.
        let now = self.clock.now();
        match self.look(&slot, now, true) {
            Look::Serve(served) => Ok(served),
            Look::Refuse(err) => Err(err),
            Look::Fetch => {
                if let Some((n, err)) = slot.state.read().expect("slot lock").unavailable.as_deref() {
                    if *n > queued_after {
                        return Err(CacheError::Unavailable(err.clone()));
                    }
                }
                // One caller cannot spend the account's whole STS budget on sessions of its own:
                // beyond its share it is told to come back, instead of queueing everyone behind it.
                if let Some(uid) = caller {
                    if !self.per_caller.allows(uid) {
                        return Err(CacheError::Throttled(uid));
                    }
                }
                self.fetch(key, &slot, now).await
            }
        }
    }

    /// Forgets the STS shares of callers that have not fetched in a while (bounded memory).
    pub fn forget_idle_callers(&self) {
        self.per_caller.forget_idle();
    }

    /// What the slot allows at `now`. With `locked`, a due entry whose refresh recently failed
    /// is served stale instead of asking STS again.
    fn look(&self, slot: &Slot, now: SystemTime, locked: bool) -> Look {
        let state = slot.state.read().expect("slot lock");
        if let Some((until, err)) = state.denied.as_deref() {
            if now < *until {
                return Look::Refuse(CacheError::Denied(err.clone()));
            }
        }
        let Some(entry) = &state.current else { return Look::Fetch };
        let timing = &self.settings.timing;
        match timing.freshness(now, entry.refresh_at, entry.session.expiration) {
            Freshness::Fresh => Look::Serve(Served { session: entry.session.clone(), source: Source::Cache }),
            Freshness::Due if locked && !timing.may_retry(now, entry.failed_at) => {
                Look::Serve(Served { session: entry.session.clone(), source: Source::Stale })
            }
            Freshness::Due | Freshness::Unusable => Look::Fetch,
        }
    }

    /// Calls STS for `key` (the caller holds the slot's lock) and records the outcome.
    async fn fetch(&self, key: &CacheKey, slot: &Slot, now: SystemTime) -> Result<Served, CacheError> {
        let result = match key {
            CacheKey::Role(session_key) => {
                call_with_retries(
                    &self.limiter,
                    self.settings.call_timeout,
                    || self.sts.assume_role(session_key),
                    |a: Attempt<'_>| self.events.sts_call(key, a.result, a.elapsed),
                )
                .await
            }
            CacheKey::InstanceProfile => self.sts.instance_credentials().await,
        };
        let fresh_source = match key {
            CacheKey::Role(_) => Source::Sts,
            CacheKey::InstanceProfile => Source::InstanceProfile,
        };
        let mut state = slot.state.write().expect("slot lock");
        let number = slot.fetches.fetch_add(1, Ordering::AcqRel) + 1;
        state.unavailable = None;
        match result {
            Ok(session) => {
                let refresh_at = self.settings.timing.refresh_at(now, session.expiration, fastrand::f64());
                let session = Arc::new(session);
                state.current = Some(Entry { session: session.clone(), refresh_at, failed_at: None });
                state.denied = None;
                Ok(Served { session, source: fresh_source })
            }
            Err(err) if !err.is_retryable() => {
                state.denied = Some(Box::new((now + self.settings.negative_cache, err.clone())));
                Err(CacheError::Denied(err))
            }
            Err(err) => {
                let timing = self.settings.timing;
                match &mut state.current {
                    Some(entry)
                        if timing.freshness(now, entry.refresh_at, entry.session.expiration) != Freshness::Unusable =>
                    {
                        entry.failed_at = Some(now);
                        Ok(Served { session: entry.session.clone(), source: Source::Stale })
                    }
                    _ => {
                        state.unavailable = Some(Box::new((number, err.clone())));
                        Err(CacheError::Unavailable(err))
                    }
                }
            }
        }
    }

    /// One pass of the background refresher: refreshes every due entry that was asked for
    /// within `idle_timeout` and drops the idle ones. Returns how many it refreshed.
    pub async fn refresh_due(&self) -> usize {
        let now = self.clock.now();
        let mut refreshed = 0;
        for (key, slot) in self.slots.iter() {
            let last_used = *slot.last_used.lock().expect("slot lock");
            if is_idle(now, last_used, self.settings.idle_timeout) {
                self.slots.invalidate(&*key);
                continue;
            }
            let due = matches!(self.look(&slot, now, true), Look::Fetch)
                && slot.state.read().expect("slot lock").current.is_some();
            if !due {
                continue;
            }
            // A request is already fetching this key: nothing to add.
            let Ok(_flight) = slot.fetching.try_lock() else { continue };
            let ok = self.fetch(&key, &slot, now).await.is_ok_and(|s| s.source != Source::Stale);
            self.events.refreshed(ok);
            refreshed += 1;
        }
        self.slots.run_pending_tasks();
        refreshed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::rules::RoleArn;

    struct NoSts;

    impl Sts for NoSts {
        async fn assume_role(&self, _: &SessionKey) -> Result<Session, StsError> {
            Err(StsError::Unavailable("not in this test".into()))
        }
        async fn instance_credentials(&self) -> Result<Session, StsError> {
            Err(StsError::Unavailable("not in this test".into()))
        }
    }

    struct NoEvents;

    impl CacheEvents for NoEvents {
        fn sts_call(&self, _: &CacheKey, _: &Result<Session, StsError>, _: Duration) {}
        fn refreshed(&self, _: bool) {}
    }

    /// The refresher runs on its own timer and may look at a slot at any moment after a request made
    /// it, before that request has fetched anything: such a slot is in use, not idle, and stays.
    #[tokio::test]
    async fn a_slot_the_refresher_finds_before_its_first_fetch_stays() {
        #[allow(clippy::disallowed_methods)]
        let clock = Arc::new(ManualClock::new(SystemTime::now()));
        let settings = CacheSettings {
            timing: Timing {
                refresh_before_expiry: Duration::from_secs(1800),
                min_remaining_when_stale: Duration::from_secs(300),
                retry_after_failure: RETRY_AFTER_FAILURE,
            },
            max_sessions: 100,
            idle_timeout: Duration::from_secs(7200),
            negative_cache: Duration::from_secs(60),
            call_timeout: Duration::from_secs(1),
            max_calls_per_second: 10,
            max_calls_per_caller: 10,
        };
        let cache = SessionCache::new(Arc::new(NoSts), clock.clone(), Arc::new(NoEvents), settings);
        let key = CacheKey::Role(SessionKey {
            role: RoleArn::parse("arn:aws:iam::111111111111:role/r").unwrap(),
            session_name: "s".into(),
            external_id: None,
            source_identity: None,
            duration: Duration::from_secs(3600),
            policy: None,
        });
        // What a request holds between finding its slot and fetching into it.
        let held = cache.slot(&key, clock.now());
        assert_eq!(cache.refresh_due().await, 0);
        let found = cache.slots.get(&key).expect("the refresher dropped a slot in use");
        assert!(Arc::ptr_eq(&held, &found), "the request's session would go into a slot the cache no longer has");
    }
}
