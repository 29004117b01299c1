//! STS call volume over hours of virtual time (bench/run.sh; figures in BENCHMARKS.md).
//! Not part of the release binary.
//!
//! In-process, on a [`ManualClock`]: the agent's own [`SessionCache`] with the default
//! configuration's `[sts]`/`[cache]` settings, its background refresher run every 5 virtual
//! seconds (the daemon's interval), and an STS stand-in that counts AssumeRole calls per key.
//!
//! Clients behave like botocore's container-credentials provider: they fetch once at start (spread
//! over the first 5 minutes), make an AWS call every 10 seconds, and refetch when the credentials
//! they hold have less than 15 minutes left (botocore's advisory refresh; the mandatory one at
//! 10 minutes never comes into play because the agent always answers).
//!
//! - 1,000 long-running clients share 100 session keys (10 per key: one user's executors);
//! - 100 short-lived clients use 100 other keys once at start and exit: their keys go idle;
//! - the same 1,000 long-running processes assuming the role themselves (EMRFS's in-JVM way;
//!   botocore's assume-role provider refreshes at the same 15-minute mark) are counted alongside.
//!
//! `cargo run --release --example sts_volume -- --hours 4`

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use clap::Parser;
use emrfs_role_agent::cache::{CacheEvents, CacheKey, CacheSettings, SessionCache};
use emrfs_role_agent::clock::{Clock, ManualClock};
use emrfs_role_agent::config::Config;
use emrfs_role_agent::daemon::REFRESH_INTERVAL;
use emrfs_role_agent::decision::SessionKey;
use emrfs_role_agent::rules::RoleArn;
use emrfs_role_agent::sts::{GrantRequest, Session, Sts, StsError};

const MIN: Duration = Duration::from_secs(60);
/// botocore refreshes container credentials this long before they expire.
const ADVISORY: Duration = Duration::from_secs(15 * 60);
const STEP: Duration = Duration::from_secs(1);

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 4)]
    hours: u64,
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    #[arg(long, default_value_t = 100)]
    keys: usize,
    #[arg(long, default_value_t = 100)]
    idle_keys: usize,
    /// Seconds between one client's AWS calls.
    #[arg(long, default_value_t = 10)]
    call_every: u64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// Counts AssumeRole calls per session name, with the virtual time of each.
struct CountingSts {
    clock: Arc<ManualClock>,
    calls: Mutex<HashMap<String, Vec<SystemTime>>>,
}

impl Sts for CountingSts {
    async fn assume_role(&self, key: &SessionKey) -> Result<Session, StsError> {
        let now = self.clock.now();
        self.calls.lock().unwrap().entry(key.session_name.clone()).or_default().push(now);
        let expiration = now + key.duration;
        let credentials =
            Credentials::new("ASIASIMULATED", "simulated", Some("simulated".into()), Some(expiration), "sim");
        Ok(Session::new(&credentials, expiration, None, Some(&key.role)))
    }

    async fn instance_credentials(&self) -> Result<Session, StsError> {
        Err(StsError::Unavailable("not simulated".into()))
    }

    async fn get_data_access(&self, _: &Session, _: &GrantRequest<'_>) -> Result<Session, StsError> {
        Err(StsError::Unavailable("not simulated".into()))
    }
}

struct NoEvents;
impl CacheEvents for NoEvents {
    fn sts_call(&self, _: &CacheKey, _: &Result<Session, StsError>, _: Duration) {}
    fn refreshed(&self, _: bool) {}
}

struct Client {
    key: usize,
    start: SystemTime,
    /// Expiration of the credentials held; None before the first fetch.
    holds: Option<SystemTime>,
    next_call: SystemTime,
    /// Short-lived: exits after its first fetch.
    once: bool,
    done: bool,
}

fn session_key(role: &RoleArn, n: usize, duration: Duration) -> CacheKey {
    CacheKey::Role(SessionKey {
        role: role.clone(),
        session_name: format!("key-{n:04}"),
        external_id: None,
        source_identity: None,
        duration,
        policy: None,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    fastrand::seed(args.seed);
    let config = Config::parse("", Path::new("defaults.toml"), None).expect("the default configuration");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clock = Arc::new(ManualClock::new(t0));
    let sts = Arc::new(CountingSts { clock: clock.clone(), calls: Mutex::default() });
    let settings = CacheSettings {
        // The limiter runs on real time; the simulation compresses hours into seconds, so it is
        // lifted here (it bounds the rate, not the count, of calls).
        max_calls_per_second: 1_000_000,
        ..emrfs_role_agent::daemon::cache_settings(&config)
    };
    let cache = SessionCache::new(sts.clone(), clock.clone(), Arc::new(NoEvents), settings);
    let role = RoleArn::parse("arn:aws:iam::222222222222:role/analytics").expect("role");
    let duration = config.sts.session_duration;

    let spread = |limit: Duration| Duration::from_millis(fastrand::u64(..limit.as_millis() as u64));
    let mut clients: Vec<Client> = (0..args.clients)
        .map(|i| (i % args.keys, false))
        .chain((0..args.idle_keys).map(|i| (args.keys + i, true)))
        .map(|(key, once)| {
            let start = t0 + spread(5 * MIN);
            Client { key, start, holds: None, next_call: start, once, done: false }
        })
        .collect();

    // The same long-running processes, each assuming the role itself: next AssumeRole time.
    let mut own_next: Vec<SystemTime> = clients.iter().filter(|c| !c.once).map(|c| c.start).collect();
    let mut own_calls: Vec<SystemTime> = Vec::new();
    let mut agent_requests = 0u64;

    let end = t0 + Duration::from_secs(args.hours * 3600);
    let mut next_refresh = t0;
    let mut now = t0;
    while now < end {
        if now >= next_refresh {
            cache.refresh_due().await;
            next_refresh = now + REFRESH_INTERVAL;
        }
        for c in clients.iter_mut().filter(|c| !c.done && c.next_call <= now) {
            let due = c.holds.is_none_or(|exp| exp.duration_since(now).unwrap_or_default() < ADVISORY);
            if due {
                let served = cache.get(&session_key(&role, c.key, duration), None).await.expect("credentials");
                agent_requests += 1;
                c.holds = Some(served.session.expiration);
                if c.once {
                    c.done = true;
                }
            }
            c.next_call = now + Duration::from_secs(args.call_every);
        }
        for next in own_next.iter_mut().filter(|t| **t <= now) {
            own_calls.push(now);
            // A fresh 1 h session, refreshed when 15 minutes are left.
            *next = now + duration - ADVISORY;
        }
        now += STEP;
        clock.set(now);
    }

    let calls = sts.calls.lock().unwrap().clone();
    let hour_of = |t: &SystemTime| (t.duration_since(t0).unwrap().as_secs() / 3600) as usize;
    println!(
        "simulated {} h: {} long-running clients on {} keys, {} short-lived clients on {} idle keys; {} requests to the agent",
        args.hours, args.clients, args.keys, args.idle_keys, args.idle_keys, agent_requests
    );
    println!("hour | agent STS calls (active keys) | per active key: mean / max | idle keys: calls | self-assuming processes: calls | ratio self/agent");
    let mut hours_ok = true;
    for h in 0..args.hours as usize {
        let per_key: Vec<usize> = (0..args.keys)
            .map(|k| calls.get(&format!("key-{k:04}")).map_or(0, |v| v.iter().filter(|t| hour_of(t) == h).count()))
            .collect();
        let idle: usize = (args.keys..args.keys + args.idle_keys)
            .map(|k| calls.get(&format!("key-{k:04}")).map_or(0, |v| v.iter().filter(|t| hour_of(t) == h).count()))
            .sum();
        let total: usize = per_key.iter().sum();
        let own = own_calls.iter().filter(|t| hour_of(t) == h).count();
        let max = per_key.iter().max().copied().unwrap_or(0);
        if h > 0 && max > 2 {
            hours_ok = false;
        }
        println!(
            "{h}-{} | {total} | {:.2} / {max} | {idle} | {own} | {:.1}",
            h + 1,
            total as f64 / args.keys as f64,
            own as f64 / (total + idle).max(1) as f64
        );
    }
    let idle_timeout = config.cache.idle_timeout;
    let late_idle: usize = (args.keys..args.keys + args.idle_keys)
        .map(|k| {
            calls.get(&format!("key-{k:04}")).map_or(0, |v| {
                v.iter().filter(|t| t.duration_since(t0).unwrap() >= idle_timeout + 5 * MIN + REFRESH_INTERVAL).count()
            })
        })
        .sum();
    let active_total: usize = (0..args.keys).map(|k| calls.get(&format!("key-{k:04}")).map_or(0, Vec::len)).sum();
    let idle_total: usize =
        (args.keys..args.keys + args.idle_keys).map(|k| calls.get(&format!("key-{k:04}")).map_or(0, Vec::len)).sum();
    let steady_hours = args.hours.saturating_sub(1).max(1) as f64;
    let steady: usize = (0..args.keys)
        .map(|k| calls.get(&format!("key-{k:04}")).map_or(0, |v| v.iter().filter(|t| hour_of(t) >= 1).count()))
        .sum();
    println!(
        "summary: steady_calls_per_key_hour={:.2} max_per_key_in_an_hour_after_the_first={} idle_key_calls_after_idle_timeout={late_idle} \
         agent_total={} self_assume_total={} ratio_self_over_agent={:.1} idle_timeout_s={}",
        steady as f64 / args.keys as f64 / steady_hours,
        (1..args.hours as usize)
            .flat_map(|h| (0..args.keys).map(move |k| (h, k)))
            .map(|(h, k)| calls.get(&format!("key-{k:04}")).map_or(0, |v| v.iter().filter(|t| hour_of(t) == h).count()))
            .max()
            .unwrap_or(0),
        active_total + idle_total,
        own_calls.len(),
        own_calls.len() as f64 / (active_total + idle_total).max(1) as f64,
        idle_timeout.as_secs(),
    );
    if !hours_ok {
        println!("note: some key needed more than 2 calls in an hour");
    }
}
