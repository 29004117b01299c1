//! `serve`: wires configuration, STS, cache, audit and server together, then handles signals.
//!
//! - systemd: `READY=1` once listening with a valid config, `WATCHDOG=1` at half the watchdog
//!   interval, `RELOADING=1`/`READY=1` around a reload, `STOPPING=1` on the way out.
//! - SIGHUP: reopen the audit file (logrotate) and reload config and mappings. An invalid new
//!   config is rejected (logged, audited, counted) and the old one keeps serving; a valid one is
//!   swapped in atomically and in-flight requests finish on the config they started with.
//!   Listen addresses, `[sts]` call settings, `[cache]` and `[audit]` take effect at restart.
//! - SIGTERM/SIGINT: stop accepting, finish in-flight requests (bounded), write `stop`, flush.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::audit::ship::Shipper;
use crate::audit::{AuditLog, Event};
use crate::cache::{CacheEvents, CacheKey, CacheSettings, GrantSettings, SessionCache, RETRY_AFTER_FAILURE};
use crate::clock::{Clock, SystemClock};
use crate::config::{AuditPath, Config, ConfigError};
use crate::metrics::{Metrics, ResultLabel};
use crate::node::NodeInfo;
use crate::path::{App, Endpoint};
use crate::refresh::Timing;
use crate::server::Listener;
use crate::sts::{AwsSts, Session, StsError};

/// How often the background refresher looks for due sessions.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// How long a stopping agent ships audit segments (within systemd's `TimeoutStopSec`).
const SHIP_AT_STOP: Duration = Duration::from_secs(10);
/// How often the refusals counted per caller are written (SPEC §7: one record per caller and second).
const TALLY_INTERVAL: Duration = Duration::from_secs(1);

/// Why the daemon could not start (or keep running).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid: exit 78, and systemd does not restart.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The system refused something the agent needs (a socket, the audit file, a thread): exit 1.
    #[error("{what}: {source}")]
    System { what: String, source: std::io::Error },
}

impl StartError {
    fn system(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
        let what = what.into();
        move |source| StartError::System { what, source }
    }
}

/// What the agent runs with besides its configuration: clock, node facts, the AWS SDK's
/// configuration (source credentials and region), the refresher's period, and the listening sockets
/// it was handed (systemd socket activation).
pub struct Environment {
    pub clock: Arc<dyn Clock>,
    pub node: NodeInfo,
    pub sdk: aws_config::SdkConfig,
    /// How often the background refresher looks for due sessions; [`REFRESH_INTERVAL`] in production.
    pub refresh_interval: Duration,
    /// Listening sockets handed over by the service manager ([`inherited_listeners`]); when there are
    /// none, the agent binds `server.listen` itself.
    pub listeners: Vec<std::net::TcpListener>,
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(config_path: &Path) -> Result<(), StartError> {
    let config = Config::load(config_path)?;
    init_logging();
    let listeners = inherited_listeners()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartError::system("starting the runtime"))?;
    runtime.block_on(async {
        let sdk = load_sdk_config(&config).await;
        let env = Environment {
            clock: Arc::new(SystemClock),
            node: NodeInfo::read(),
            sdk,
            refresh_interval: REFRESH_INTERVAL,
            listeners,
        };
        let agent = start(config, env).await?;
        notify(&[sd_notify::NotifyState::Ready]);
        tracing::info!(addrs = ?agent.addrs, imds = ?agent.imds_addr, "ready");
        let watchdog = spawn_watchdog();
        wait_for_signals(&agent, config_path).await;
        notify(&[sd_notify::NotifyState::Stopping]);
        if let Some(w) = watchdog {
            w.abort();
        }
        agent.stop("signal").await;
        Ok(())
    })
}

/// A running agent: its app state, bound addresses and a way to stop it.
pub struct Running {
    pub app: Arc<App<AwsSts>>,
    /// Where the HTTP API listens.
    pub addrs: Vec<SocketAddr>,
    /// Where the instance-metadata listener listens (its IPv4 address; it listens on [::1] at the same port
    /// too, when it can), when `[imds] listen` is set.
    pub imds_addr: Option<SocketAddr>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<()>,
    refresher: JoinHandle<()>,
    tallier: JoinHandle<()>,
    /// `[audit.ship]`: the shipper and its task.
    shipper: Option<(Arc<Shipper>, JoinHandle<()>)>,
}

impl Running {
    /// Stops accepting, drains in-flight requests, writes `stop` and flushes the audit log.
    pub async fn stop(self, reason: &str) {
        let _ = self.shutdown.send(());
        let _ = self.server.await;
        self.refresher.abort();
        self.tallier.abort();
        let app = &self.app;
        write_refusals(app);
        app.audit.emit(&Event::Stop { reason: reason.to_owned() }, app.clock.now());
        app.audit.close().await;
        if let Some((shipper, task)) = self.shipper {
            // The writer closed the open segment: ship what is here, within the stop timeout.
            if shipper.stop(task, SHIP_AT_STOP).await {
                tracing::info!("audit segments shipped");
            } else {
                tracing::warn!(
                    "audit segments left on disk (not shipped within {}s); they are shipped after the next start",
                    SHIP_AT_STOP.as_secs()
                );
            }
        }
        tracing::info!("stopped");
    }
}

/// Builds everything from a validated config and starts serving on its listen addresses
/// (port 0 picks a free port: see [`Running::addrs`]).
pub async fn start(config: Config, env: Environment) -> Result<Running, StartError> {
    let Environment { clock, node, sdk, refresh_interval, listeners: inherited } = env;
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let segments_ready = Arc::new(Notify::new());
    let audit = AuditLog::open(&config.audit, &node, metrics.clone(), segments_ready.clone())
        .map_err(StartError::system(format!("opening the audit log {}", config.audit.path)))?;
    let shipper = match (&config.audit.ship, &config.audit.path) {
        (Some(ship), AuditPath::File(path)) => {
            let shipper =
                Arc::new(Shipper::new(&sdk, ship, path, &node, metrics.clone(), segments_ready, clock.clone()));
            Some((shipper.clone(), tokio::spawn(shipper.run())))
        }
        _ => None,
    };

    let bind = |addr: SocketAddr| {
        listen(addr, config.server.max_connections).map_err(StartError::system(format!("listening on {addr}")))
    };
    // A handed-over socket on `imds.listen` (or on [::1] at its port) is the metadata listener; every other
    // one serves the API.
    let mut listeners = Vec::new();
    if inherited.is_empty() {
        for addr in &config.server.listen {
            listeners.push((bind(*addr)?, Endpoint::Api));
        }
    } else {
        for socket in adopt(inherited)? {
            let endpoint = match socket.local_addr() {
                Ok(addr) if config.imds.listen_addrs().contains(&addr) => Endpoint::Imds,
                Ok(addr) => {
                    if !config.server.listen.contains(&addr) {
                        tracing::warn!(%addr, "a handed-over socket that server.listen does not name serves the API");
                    }
                    Endpoint::Api
                }
                Err(_) => Endpoint::Api,
            };
            listeners.push((socket, endpoint));
        }
    }
    for socket in imds_listeners(&config, &listeners)? {
        listeners.push((socket, Endpoint::Imds));
    }
    let bound =
        |wanted: Endpoint| listeners.iter().filter(move |(_, e)| *e == wanted).filter_map(|(l, _)| l.local_addr().ok());
    let addrs = bound(Endpoint::Api).collect::<Vec<_>>();
    // `imds.listen` itself, not [::1] at its port, whatever order the sockets were handed over in.
    let imds_addr = bound(Endpoint::Imds).min_by_key(|addr| addr.is_ipv6());

    let sts = AwsSts::new(&sdk, config.sts.endpoint_url.as_deref(), config.sts.call_timeout, clock.clone())
        .with_access_grants_endpoint(config.access_grants.endpoint_url.as_deref());
    let events = Arc::new(Recorder { audit: audit.clone(), metrics: metrics.clone(), clock: clock.clone() });
    let grants = GrantSettings { privilege: config.access_grants.privilege, duration: config.access_grants.duration };
    let cache =
        SessionCache::new(Arc::new(sts), clock.clone(), events, cache_settings(&config)).with_grant_settings(grants);
    let now = clock.now();
    audit.emit(
        &Event::Start {
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            config: config.source.display().to_string(),
        },
        now,
    );
    audit.emit(
        &Event::ConfigLoaded { config: config.source.display().to_string(), rules: config.rules.rules().len() },
        now,
    );
    let drain = config.server.request_timeout + Duration::from_secs(1);
    let app = Arc::new(App::new(config, cache, audit, metrics, clock, node));

    let (shutdown, stopped) = oneshot::channel::<()>();
    let listener = Listener::new(listeners, app.clone());
    let server = tokio::spawn(listener.run(
        async {
            let _ = stopped.await;
        },
        drain,
    ));
    let refresher = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(refresh_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                app.cache.refresh_due().await;
            }
        })
    };
    let tallier = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TALLY_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                write_refusals(&app);
                app.cache.forget_idle_callers();
                app.requests_per_caller.forget_idle();
            }
        })
    };
    Ok(Running { app, addrs, imds_addr, shutdown, server, refresher, tallier, shipper })
}

/// The `refused` records of the refusals counted since the last ones.
fn write_refusals(app: &App<AwsSts>) {
    let now = app.clock.now();
    for event in app.refusals.drain() {
        app.audit.emit(&event, now);
    }
}

/// The metadata listener's sockets the agent binds itself: `imds.listen` and `[::1]` at its port (where the
/// IPv6 redirect sends connections), each unless the service manager handed it over in `handed`.
///
/// Only on a port no other local user can bind: while the agent is down, whoever holds the port answers
/// the users the redirect sends there. A port any user may bind (`net.ipv4.ip_unprivileged_port_start`)
/// is served only when its socket unit holds it; the agent refuses to start otherwise (exit 78). The
/// IPv6 socket is left out, with a warning, where this node cannot have it (no IPv6, or a privileged port
/// an unprivileged agent may not bind): redirected IPv6 connections are then refused, never served by
/// someone else.
fn imds_listeners(config: &Config, handed: &[(TcpListener, Endpoint)]) -> Result<Vec<TcpListener>, StartError> {
    let held = |addr: &SocketAddr| {
        handed.iter().any(|(socket, endpoint)| *endpoint == Endpoint::Imds && socket.local_addr().ok() == Some(*addr))
    };
    let unbound: Vec<SocketAddr> = config.imds.listen_addrs().into_iter().filter(|addr| !held(addr)).collect();
    let unprivileged_from = crate::redirect::unprivileged_port_start();
    if let Some((addr, why)) =
        unbound.iter().find_map(|addr| crate::redirect::squattable(*addr, unprivileged_from).map(|why| (addr, why)))
    {
        return Err(StartError::Config(ConfigError {
            file: config.source.clone(),
            line: None,
            column: None,
            key: "imds.listen".into(),
            message: format!("the agent does not listen on {addr} itself: {why}"),
        }));
    }
    let mut sockets = Vec::new();
    for addr in unbound {
        match listen(addr, config.server.max_connections) {
            Ok(socket) => sockets.push(socket),
            Err(e)
                if addr.is_ipv6()
                    && (matches!(
                        e.kind(),
                        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::AddrNotAvailable
                    ) || e.raw_os_error() == Some(nix::libc::EAFNOSUPPORT)) =>
            {
                tracing::warn!(
                    %addr, error = %e,
                    "no metadata listener for the IPv6 redirect: connections to [fd00:ec2::254] are refused \
                     (let the socket unit listen on {addr} too)"
                );
            }
            Err(e) => return Err(StartError::System { what: format!("listening on {addr}"), source: e }),
        }
    }
    Ok(sockets)
}

/// The cache settings `[sts]` and `[cache]` give.
pub fn cache_settings(config: &Config) -> CacheSettings {
    CacheSettings {
        timing: Timing {
            refresh_before_expiry: config.sts.refresh_before_expiry,
            min_remaining_when_stale: config.sts.min_remaining_when_stale,
            retry_after_failure: RETRY_AFTER_FAILURE,
        },
        max_sessions: config.cache.max_sessions,
        idle_timeout: config.cache.idle_timeout,
        negative_cache: config.sts.negative_cache,
        call_timeout: config.sts.call_timeout,
        max_calls_per_second: config.sts.max_calls_per_second,
        max_calls_per_caller: config.sts.max_calls_per_caller,
    }
}

/// Binds `addr` with an accept queue as long as `max_connections` (the kernel caps it at
/// `net.core.somaxconn`). `TcpListener::bind` asks for 128: a cold herd of SDK processes
/// connecting at once overflowed it, and every dropped SYN cost its client a 1 s retransmit
/// (BENCHMARKS.md, cold herd).
fn listen(addr: SocketAddr, max_connections: usize) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(u32::try_from(max_connections).unwrap_or(u32::MAX).max(128))
}

/// The listening sockets systemd hands over (`LISTEN_FDS`/`LISTEN_PID`, socket activation): the
/// socket unit holds the port while the agent restarts, so no other local user can bind it meanwhile.
pub fn inherited_listeners() -> Result<Vec<std::net::TcpListener>, StartError> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut listeners = Vec::new();
    for index in 0..fds.len() {
        match fds.take_tcp_listener(index).map_err(StartError::system(format!("socket {index} from systemd")))? {
            Some(listener) => listeners.push(listener),
            None => tracing::warn!(index, "a socket from systemd was already taken"),
        }
    }
    Ok(listeners)
}

/// Serves the handed-over sockets: loopback TCP only, like `server.listen`.
fn adopt(sockets: Vec<std::net::TcpListener>) -> Result<Vec<TcpListener>, StartError> {
    let mut listeners = Vec::new();
    for socket in sockets {
        let addr = socket.local_addr().map_err(StartError::system("an inherited socket"))?;
        if !addr.ip().is_loopback() {
            return Err(StartError::System {
                what: format!("the socket systemd handed over ({addr})"),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "is not a loopback address"),
            });
        }
        socket.set_nonblocking(true).map_err(StartError::system(format!("socket {addr}")))?;
        listeners.push(TcpListener::from_std(socket).map_err(StartError::system(format!("socket {addr}")))?);
        tracing::info!(%addr, "serving a socket handed over by systemd");
    }
    Ok(listeners)
}

/// Re-reads the config file and mappings; swaps them in if valid.
pub fn reload(app: &App<AwsSts>, path: &Path) -> Result<(), ConfigError> {
    let now = app.clock.now();
    match Config::load(path) {
        Ok(config) => {
            app.audit.emit(
                &Event::ConfigLoaded { config: path.display().to_string(), rules: config.rules.rules().len() },
                now,
            );
            app.metrics.config_reloads.get_or_create(&ResultLabel { result: "ok" }).inc();
            tracing::info!(config = %path.display(), rules = config.rules.rules().len(), "configuration reloaded");
            let old = app.config.load();
            if old.server.listen != config.server.listen || old.imds.listen != config.imds.listen {
                tracing::warn!("listen addresses change when the agent restarts, not on reload");
            }
            if (&old.imds.exempt_users, old.imds.exempt_uids_below)
                != (&config.imds.exempt_users, config.imds.exempt_uids_below)
            {
                tracing::warn!("the redirect's exemptions change when `imds-redirect install` runs again");
            }
            if old.access_grants != config.access_grants {
                tracing::warn!("[access_grants] changes when the agent restarts, not on reload");
            }
            app.config.store(Arc::new(config));
            Ok(())
        }
        Err(err) => {
            app.audit.emit(&Event::ConfigRejected { config: path.display().to_string(), error: err.to_string() }, now);
            app.metrics.config_reloads.get_or_create(&ResultLabel { result: "rejected" }).inc();
            tracing::error!(error = %err, "new configuration rejected; the previous one keeps serving");
            Err(err)
        }
    }
}

async fn wait_for_signals(agent: &Running, config_path: &Path) {
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::hangup()), signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                if let Err(e) = agent.app.audit.reopen().await {
                    tracing::error!(error = %e, "reopening the audit log failed");
                }
                let _ = reload(&agent.app, config_path);
                notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = term.recv() => return,
            _ = int.recv() => return,
        }
    }
}

/// The SDK's default chain (instance profile on EMR) and region, `[sts] region` first.
pub async fn load_sdk_config(config: &Config) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &config.sts.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        tracing::warn!("no AWS region configured or discovered; using us-east-1 for STS");
        return sdk.into_builder().region(Region::new("us-east-1")).build();
    }
    sdk
}

/// Writes `sts_assume_role` events and STS/refresh metrics.
struct Recorder {
    audit: AuditLog,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl CacheEvents for Recorder {
    fn sts_call(&self, key: &CacheKey, result: &Result<Session, StsError>, elapsed: Duration) {
        let (label, code) = match result {
            Ok(_) => ("ok", None),
            Err(StsError::Denied { code, .. }) => ("denied", Some(code.clone())),
            Err(StsError::Throttled { .. }) => ("throttled", Some("Throttling".to_owned())),
            Err(StsError::Unavailable(_)) => ("unavailable", None),
        };
        self.metrics.sts_calls.get_or_create(&ResultLabel { result: label }).inc();
        self.metrics.sts_call_duration.observe(elapsed.as_secs_f64());
        let request_id = match result {
            Ok(s) => s.request_id.clone(),
            Err(e) => e.request_id().map(str::to_owned),
        };
        let key = match key {
            CacheKey::Role(key) => key,
            CacheKey::InstanceProfile => return,
            CacheKey::Grant(grant) => {
                let event = Event::GetDataAccess {
                    grantee_role_arn: grant.grantee.role.as_str().to_owned(),
                    session_name: grant.grantee.session_name.clone(),
                    target: grant.target.clone(),
                    permission: grant.permission.as_str(),
                    result: label,
                    grant_target: result.as_ref().ok().and_then(|s| s.grant_target.clone()),
                    request_id,
                    access_key_id: result.as_ref().ok().map(|s| s.access_key_id.clone()),
                    error_code: code,
                    duration_us: elapsed.as_micros() as u64,
                };
                self.audit.emit(&event, self.clock.now());
                return;
            }
        };
        let event = Event::StsAssumeRole {
            role_arn: key.role.as_str().to_owned(),
            session_name: key.session_name.clone(),
            result: label,
            sts_request_id: request_id,
            access_key_id: result.as_ref().ok().map(|s| s.access_key_id.clone()),
            error_code: code,
            duration_us: elapsed.as_micros() as u64,
        };
        self.audit.emit(&event, self.clock.now());
    }

    fn refreshed(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.metrics.cache_refreshes.get_or_create(&ResultLabel { result }).inc();
    }
}

fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!(error = %e, "systemd notification failed");
    }
}

fn spawn_watchdog() -> Option<JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) {
        return None;
    }
    let period = Duration::from_micros(usec) / 2;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            notify(&[sd_notify::NotifyState::Watchdog]);
        }
    }))
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("EMRFS_ROLE_AGENT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Colours only for a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
