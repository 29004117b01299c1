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
use crate::config::Privilege;
use crate::decision::SessionKey;
use crate::grants::{covered_prefix, Covered, Permission, Target};
use crate::location::Location;
use crate::refresh::{is_idle, Freshness, Timing};
use crate::share::{CallerLimiter, Sharer};
use crate::sts::{call_with_retries, Attempt, CallLimiter, GrantRequest, Session, Sts, StsError};

/// What a cached session is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CacheKey {
    Role(SessionKey),
    /// The node's own credentials (`fallback.mode = "instance-profile"`).
    InstanceProfile,
    /// Credentials S3 Access Grants vended (SPEC §4.1).
    Grant(GrantKey),
}

/// One grant's credentials: asked as `grantee`, matched as `target`, for `permission`. However many
/// keys fall under the target, they share these.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrantKey {
    pub grantee: SessionKey,
    /// `MatchedGrantTarget` as S3 wrote it: `s3://bucket/prefix/*`, `s3://bucket/key`, `s3://*`.
    pub target: String,
    pub permission: Permission,
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
    #[error("the requests of {0} caused their share of STS calls (sts.max_calls_per_caller); retry in a moment")]
    Throttled(Sharer),
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
    /// STS calls the requests of one caller (uid, and user a proxy acts for) may cause per second (and at once).
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
    /// Per grantee session and permission, the grants S3 Access Grants matched so far.
    grants: moka::sync::Cache<(SessionKey, Permission), Arc<Grants>, foldhash::fast::RandomState>,
    /// What `GetDataAccess` calls ask besides the target and permission.
    grant_settings: GrantSettings,
}

/// `[access_grants]` settings the cache's calls use.
#[derive(Clone, Copy, Debug)]
pub struct GrantSettings {
    pub privilege: Privilege,
    pub duration: Duration,
}

impl Default for GrantSettings {
    fn default() -> Self {
        GrantSettings { privilege: Privilege::Default, duration: Duration::from_secs(3600) }
    }
}

/// The grants known for one grantee session and permission.
#[derive(Default)]
struct Grants {
    /// Matched grant targets and their cache keys.
    targets: RwLock<Vec<(String, CacheKey)>>,
    /// Held while calling `GetDataAccess` for a location none of `targets` covers: concurrent misses
    /// wait for one call, then find its grant.
    fetching: tokio::sync::Mutex<()>,
    /// Locations S3 Access Grants refused, and until when that stands (at most [`MAX_DENIED_LOCATIONS`]).
    denied: Mutex<std::collections::HashMap<String, (SystemTime, StsError)>>,
}

/// How many refused locations are remembered per grantee session and permission.
const MAX_DENIED_LOCATIONS: usize = 10_000;

impl Grants {
    /// The key of the most specific known grant covering `location`.
    fn covering(&self, location: &Location) -> Option<CacheKey> {
        let targets = self.targets.read().expect("grants lock");
        let reach = |target: &str| match covered_prefix(target, location)? {
            Covered::Prefix(p) => Some(p.len()),
            Covered::Object => Some(usize::MAX),
        };
        targets.iter().filter_map(|(t, key)| Some((reach(t)?, key))).max_by_key(|(n, _)| *n).map(|(_, k)| k.clone())
    }

    fn denied(&self, location: &str, now: SystemTime) -> Option<StsError> {
        let denied = self.denied.lock().expect("grants lock");
        denied.get(location).filter(|(until, _)| now < *until).map(|(_, err)| err.clone())
    }
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
            grants: moka::sync::Cache::builder()
                .max_capacity(settings.max_sessions)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            grant_settings: GrantSettings::default(),
            settings,
        }
    }

    /// `[access_grants]` settings for `GetDataAccess` calls.
    pub fn with_grant_settings(mut self, grant_settings: GrantSettings) -> Self {
        self.grant_settings = grant_settings;
        self
    }

    /// Credentials S3 Access Grants vend to `grantee` for `location` with `permission`: from a grant
    /// already known to cover it, or from one `GetDataAccess` call (concurrent misses share it; a
    /// refusal is remembered for `negative_cache`). The call, like the grantee's own AssumeRole, comes
    /// out of the STS budget and `caller`'s share. The served session's `grant_target` says which grant.
    pub async fn grant(
        &self,
        grantee: &SessionKey,
        location: &Location,
        permission: Permission,
        caller: Option<&Sharer>,
    ) -> Result<Served, CacheError> {
        let grants = self.grants.get_with_by_ref(&(grantee.clone(), permission), || Arc::new(Grants::default()));
        if let Some(key) = grants.covering(location) {
            return Box::pin(self.get(&key, caller)).await;
        }
        let _flight = grants.fetching.lock().await;
        if let Some(key) = grants.covering(location) {
            return Box::pin(self.get(&key, caller)).await;
        }
        let now = self.clock.now();
        let asked = location.to_string();
        if let Some(err) = grants.denied(&asked, now) {
            return Err(CacheError::Denied(err));
        }
        if let Some(sharer) = caller {
            if !self.per_caller.allows(sharer) {
                return Err(CacheError::Throttled(sharer.clone()));
            }
        }
        let grantee_session = Box::pin(self.get(&CacheKey::Role(grantee.clone()), caller)).await?.session;
        let target = Target::of(location);
        let asked_key = CacheKey::Grant(GrantKey { grantee: grantee.clone(), target: target.uri.clone(), permission });
        let result = self.call_grants(&asked_key, &grantee_session, &target, permission).await;
        match result {
            Ok(session) => {
                let matched = session.grant_target.clone().unwrap_or(target.uri);
                let key = CacheKey::Grant(GrantKey { grantee: grantee.clone(), target: matched.clone(), permission });
                let session = Arc::new(session);
                let refresh_at = self.settings.timing.refresh_at(now, session.expiration, fastrand::f64());
                let slot = self.slot(&key, now);
                {
                    let mut state = slot.state.write().expect("slot lock");
                    state.current = Some(Entry { session: session.clone(), refresh_at, failed_at: None });
                    state.denied = None;
                }
                let mut targets = grants.targets.write().expect("grants lock");
                if !targets.iter().any(|(t, _)| *t == matched) {
                    targets.push((matched, key));
                }
                Ok(Served { session, source: Source::Sts })
            }
            Err(err) if !err.is_retryable() => {
                let mut denied = grants.denied.lock().expect("grants lock");
                if denied.len() >= MAX_DENIED_LOCATIONS {
                    denied.retain(|_, (until, _)| now < *until);
                }
                if denied.len() < MAX_DENIED_LOCATIONS {
                    denied.insert(asked, (now + self.settings.negative_cache, err.clone()));
                }
                Err(CacheError::Denied(err))
            }
            Err(err) => Err(CacheError::Unavailable(err)),
        }
    }

    /// The grantee's own session, cached like any other. Boxed behind a named type: fetching a grant
    /// fetches this, and a future cannot contain itself.
    fn grantee_session<'a>(
        &'a self,
        grantee: &'a SessionKey,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Arc<Session>, CacheError>> + Send + 'a>> {
        Box::pin(async move { self.get(&CacheKey::Role(grantee.clone()), None).await.map(|served| served.session) })
    }

    /// `GetDataAccess` as `grantee` within the call budget, each attempt through the STS limiter.
    async fn call_grants(
        &self,
        key: &CacheKey,
        grantee: &Session,
        target: &Target,
        permission: Permission,
    ) -> Result<Session, StsError> {
        let CacheKey::Grant(grant) = key else { unreachable!("a grant's key") };
        let request = GrantRequest {
            account_id: grant.grantee.role.account_id(),
            target,
            permission,
            privilege: self.grant_settings.privilege,
            duration: self.grant_settings.duration,
        };
        call_with_retries(
            &self.limiter,
            self.settings.call_timeout,
            || self.sts.get_data_access(grantee, &request),
            |a: Attempt<'_>| self.events.sts_call(key, a.result, a.elapsed),
        )
        .await
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
    pub async fn get(&self, key: &CacheKey, caller: Option<&Sharer>) -> Result<Served, CacheError> {
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
    async fn get_in_flight(
        &self,
        key: &CacheKey,
        slot: Arc<Slot>,
        caller: Option<&Sharer>,
    ) -> Result<Served, CacheError> {
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
                if let Some(sharer) = caller {
                    if !self.per_caller.allows(sharer) {
                        return Err(CacheError::Throttled(sharer.clone()));
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
            // A grant is renewed by asking for its own target again, as a grantee session that is
            // itself cached (and refreshed) like any other.
            CacheKey::Grant(grant) => {
                let grantee = self.grantee_session(&grant.grantee).await?;
                let target = Target::matched(&grant.target);
                self.call_grants(key, &grantee, &target, grant.permission).await
            }
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
            CacheKey::Role(_) | CacheKey::Grant(_) => Source::Sts,
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
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;

    use aws_credential_types::Credentials;

    use super::*;
    use crate::clock::ManualClock;
    use crate::rules::RoleArn;

    /// AssumeRole always works; GetDataAccess answers by a grant table (target prefix → matched target,
    /// per permission) and counts its calls. `hold` keeps every call waiting until released, so that
    /// requests can pile up behind one.
    struct FakeGrants {
        clock: Arc<ManualClock>,
        grants: Vec<(&'static str, Permission, &'static str)>,
        calls: AtomicUsize,
        asked: Mutex<Vec<(String, Permission)>>,
        hold: tokio::sync::Semaphore,
    }

    impl FakeGrants {
        fn session(&self, id: &str) -> Session {
            let expiration = self.clock.now() + Duration::from_secs(3600);
            Session::new(&Credentials::new(id, "secret", Some("token".into()), None, "test"), expiration, None, None)
        }
    }

    impl Sts for FakeGrants {
        async fn assume_role(&self, key: &SessionKey) -> Result<Session, StsError> {
            Ok(self.session(&format!("ASIAGRANTEE-{}", key.session_name)))
        }

        async fn instance_credentials(&self) -> Result<Session, StsError> {
            Err(StsError::Unavailable("none".into()))
        }

        async fn get_data_access(&self, grantee: &Session, request: &GrantRequest<'_>) -> Result<Session, StsError> {
            assert!(grantee.access_key_id.starts_with("ASIAGRANTEE-"), "signed as the grantee");
            let _held = self.hold.acquire().await.expect("open");
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            self.asked.lock().unwrap().push((request.target.uri.clone(), request.permission));
            let asked = request.target.uri.trim_end_matches('*');
            let matched = self
                .grants
                .iter()
                .filter(|(prefix, p, _)| asked.starts_with(prefix) && *p == request.permission)
                .max_by_key(|(prefix, _, _)| prefix.len());
            match matched {
                Some((_, _, target)) => {
                    let mut session = self.session(&format!("ASIAVENDED-{n}"));
                    session.grant_target = Some((*target).to_owned());
                    Ok(session)
                }
                None => Err(StsError::Denied {
                    code: "AccessDenied".into(),
                    message: "no grant".into(),
                    request_id: Some(format!("S3REQ{n}")),
                }),
            }
        }
    }

    struct NoEvents;
    impl CacheEvents for NoEvents {
        fn sts_call(&self, _: &CacheKey, _: &Result<Session, StsError>, _: Duration) {}
        fn refreshed(&self, _: bool) {}
    }

    fn cache(held: bool) -> (Arc<SessionCache<FakeGrants>>, Arc<FakeGrants>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)));
        let sts = Arc::new(FakeGrants {
            clock: clock.clone(),
            grants: vec![
                ("s3://lake/curated/", Permission::Read, "s3://lake/curated/*"),
                ("s3://lake/curated/t/", Permission::Read, "s3://lake/curated/t/*"),
                ("s3://lake/curated/", Permission::Write, "s3://lake/curated/*"),
            ],
            calls: AtomicUsize::new(0),
            asked: Mutex::default(),
            hold: tokio::sync::Semaphore::new(if held { 0 } else { 1000 }),
        });
        let settings = CacheSettings {
            timing: Timing {
                refresh_before_expiry: Duration::from_secs(1800),
                min_remaining_when_stale: Duration::from_secs(300),
                retry_after_failure: Duration::from_secs(10),
            },
            max_sessions: 1000,
            idle_timeout: Duration::from_secs(7200),
            negative_cache: Duration::from_secs(30),
            call_timeout: Duration::from_secs(5),
            max_calls_per_second: 1000,
            max_calls_per_caller: 1000,
        };
        let cache = SessionCache::new(sts.clone(), clock.clone(), Arc::new(NoEvents), settings);
        (Arc::new(cache), sts, clock)
    }

    fn grantee() -> SessionKey {
        SessionKey {
            role: RoleArn::parse("arn:aws:iam::111122223333:role/analyst").unwrap(),
            session_name: "alice".into(),
            external_id: None,
            source_identity: None,
            duration: Duration::from_secs(3600),
            policy: None,
        }
    }

    fn loc(s: &str) -> Location {
        Location::parse(s).unwrap()
    }

    #[tokio::test]
    async fn one_call_per_grant_however_many_keys_fall_under_it() {
        let (cache, sts, _) = cache(false);
        let mut vended = HashMap::new();
        for key in ["a/part-0", "a/part-1", "b/x é%.parquet", "c/"] {
            let served =
                cache.grant(&grantee(), &loc(&format!("s3://lake/curated/{key}")), Permission::Read, None).await;
            let served = served.unwrap();
            vended.insert(served.session.access_key_id.clone(), served.session.grant_target.clone());
        }
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1, "{:?}", sts.asked.lock().unwrap());
        assert_eq!(vended.len(), 1);
        assert_eq!(vended.values().next().unwrap().as_deref(), Some("s3://lake/curated/*"));
        // The object was asked as an object, the folder as a prefix.
        let first = sts.asked.lock().unwrap()[0].clone();
        assert_eq!(first, ("s3://lake/curated/a/part-0".to_owned(), Permission::Read));

        // A key under a deeper grant is served by the broader one already held (its credentials reach it),
        // as the S3 Access Grants plugins do: no call.
        let t = cache.grant(&grantee(), &loc("s3://lake/curated/t/x"), Permission::Read, None).await.unwrap();
        assert_eq!(t.session.grant_target.as_deref(), Some("s3://lake/curated/*"));
        // A write is another permission: another call, another grant's credentials.
        let w = cache.grant(&grantee(), &loc("s3://lake/curated/a/part-0"), Permission::Write, None).await.unwrap();
        assert_ne!(w.session.access_key_id, t.session.access_key_id);
        assert_eq!(sts.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_most_specific_grant_held_serves_a_key() {
        let (cache, sts, _) = cache(false);
        let deep = cache.grant(&grantee(), &loc("s3://lake/curated/t/x"), Permission::Read, None).await.unwrap();
        assert_eq!(deep.session.grant_target.as_deref(), Some("s3://lake/curated/t/*"));
        let broad = cache.grant(&grantee(), &loc("s3://lake/curated/a"), Permission::Read, None).await.unwrap();
        assert_eq!(broad.session.grant_target.as_deref(), Some("s3://lake/curated/*"));
        let again = cache.grant(&grantee(), &loc("s3://lake/curated/t/y"), Permission::Read, None).await.unwrap();
        assert_eq!(again.session.access_key_id, deep.session.access_key_id);
        assert_eq!(sts.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_under_one_grant_share_one_call() {
        let (cache, sts, _) = cache(true);
        let requests: Vec<_> = (0..50)
            .map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    let location = loc(&format!("s3://lake/curated/k-{i}"));
                    cache
                        .grant(&grantee(), &location, Permission::Read, None)
                        .await
                        .map(|s| s.session.access_key_id.clone())
                })
            })
            .collect();
        // Every request is queued behind the first call before it is answered.
        while cache.grants.iter().next().is_none_or(|(_, g)| g.fetching.try_lock().is_ok()) {
            tokio::task::yield_now().await;
        }
        sts.hold.add_permits(1000);
        let mut keys = std::collections::HashSet::new();
        for r in requests {
            keys.insert(r.await.unwrap().unwrap());
        }
        assert_eq!((keys.len(), sts.calls.load(Ordering::SeqCst)), (1, 1));
    }

    #[tokio::test]
    async fn no_grant_is_a_refusal_remembered_for_negative_cache() {
        let (cache, sts, clock) = cache(false);
        let raw = loc("s3://lake/raw/x");
        for _ in 0..3 {
            match cache.grant(&grantee(), &raw, Permission::Read, None).await {
                Err(CacheError::Denied(e)) => assert_eq!(e.request_id(), Some("S3REQ0")),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1, "remembered, not asked again");
        clock.advance(Duration::from_secs(31));
        assert!(cache.grant(&grantee(), &raw, Permission::Read, None).await.is_err());
        assert_eq!(sts.calls.load(Ordering::SeqCst), 2, "asked again after negative_cache");
    }

    #[tokio::test]
    async fn a_grant_is_renewed_by_asking_for_its_matched_target() {
        let (cache, sts, clock) = cache(false);
        let first = cache.grant(&grantee(), &loc("s3://lake/curated/a"), Permission::Read, None).await.unwrap();
        clock.advance(Duration::from_secs(2000));
        assert!(cache.refresh_due().await >= 1, "the grant is due");
        let renewed = cache.grant(&grantee(), &loc("s3://lake/curated/b"), Permission::Read, None).await.unwrap();
        assert_ne!(renewed.session.access_key_id, first.session.access_key_id);
        assert_eq!(renewed.source, Source::Cache);
        let asked: Vec<_> = sts.asked.lock().unwrap().iter().map(|(t, _)| t.clone()).collect();
        assert_eq!(asked, ["s3://lake/curated/a", "s3://lake/curated/*"]);
    }

    /// The refresher runs on its own timer and may look at a slot at any moment after a request made
    /// it, before that request has fetched anything: such a slot is in use, not idle, and stays.
    #[tokio::test]
    async fn a_slot_the_refresher_finds_before_its_first_fetch_stays() {
        let (cache, _, clock) = cache(false);
        let key = CacheKey::Role(grantee());
        // What a request holds between finding its slot and fetching into it.
        let held = cache.slot(&key, clock.now());
        assert_eq!(cache.refresh_due().await, 0);
        let found = cache.slots.get(&key).expect("the refresher dropped a slot in use");
        assert!(Arc::ptr_eq(&held, &found), "the request's session would go into a slot the cache no longer has");
    }
}
