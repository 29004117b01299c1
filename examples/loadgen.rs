//! Load generator and probes for the benchmarks (bench/run.sh; figures in BENCHMARKS.md).
//! Not part of the release binary.
//!
//! - `keepalive`: `--concurrency` workers, each on one keep-alive connection (reconnects on error).
//! - `newconn`: the same, but every request opens a fresh TCP connection and closes it after the
//!   answer, as SDK credential providers do. wrk cannot do this.
//! - `hold`: opens `--connections` idle TCP connections to `--addr` and keeps them until killed.
//! - `startup`: starts the agent binary `--runs` times; measures spawn → `READY=1` (sd_notify) and
//!   spawn → first `200` from `/readyz`.
//! - `rss`: prints a process's resident set size (`VmRSS`, `VmHWM`) every `--every` seconds.
//!
//! `--rate` paces all workers together (for soaks that must not take the whole machine).
//! Paths may contain `{k}`, replaced by `request number % --keys` (distinct session keys).
//! Results are one line of `name=value` pairs on stdout. With `--pid`, the CPU time the server
//! process used during the run (`/proc/<pid>/stat`) is reported too, so that the cost per request
//! on the server side can be compared without trusting the load generator.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args as ClapArgs, Parser, Subcommand};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    Keepalive(Load),
    Newconn(Load),
    Hold {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
    },
    Startup {
        /// The agent binary.
        #[arg(long)]
        bin: PathBuf,
        #[arg(long)]
        config: PathBuf,
        /// The agent's listen address (for `/readyz`).
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    Rss {
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 10)]
        every: u64,
        #[arg(long, default_value_t = 60)]
        samples: usize,
    },
}

#[derive(ClapArgs, Clone)]
struct Load {
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long, default_value = "/healthz")]
    path: String,
    /// `Name: value`, repeatable.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Distinct values of `{k}` in the path.
    #[arg(long, default_value_t = 1)]
    keys: u64,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to run (ignored with --requests).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stop after this many requests instead of after --duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Requests per second for all workers together (default: as fast as answers come).
    #[arg(long)]
    rate: Option<u64>,
    /// Runtime worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Server process whose CPU time to report.
    #[arg(long)]
    pid: Option<u32>,
    /// A label echoed in the result line.
    #[arg(long, default_value = "run")]
    label: String,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Mode::Keepalive(load) => run_load(load, false),
        Mode::Newconn(load) => run_load(load, true),
        Mode::Hold { addr, connections } => hold(addr, connections),
        Mode::Startup { bin, config, addr, runs } => startup(&bin, &config, addr, runs),
        Mode::Rss { pid, every, samples } => rss(pid, every, samples),
    }
}

struct Shared {
    load: Load,
    pace: Option<tokio::sync::Mutex<tokio::time::Interval>>,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    issued: AtomicU64,
    stop: AtomicBool,
    errors: AtomicU64,
    non_200: AtomicU64,
    body_bytes: AtomicU64,
}

impl Shared {
    /// The next request's path, or None when the run is over; waits its turn with --rate.
    async fn next(&self) -> Option<String> {
        if let Some(pace) = &self.pace {
            pace.lock().await.tick().await;
        }
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        if self.load.requests.is_some_and(|max| n >= max) {
            return None;
        }
        Some(self.load.path.replace("{k}", &(n % self.load.keys.max(1)).to_string()))
    }

    fn request(&self, path: &str) -> http::Request<Empty<Bytes>> {
        let mut req = http::Request::get(path).header(http::header::HOST, self.load.addr.to_string());
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        req.body(Empty::new()).expect("request")
    }
}

fn run_load(load: Load, new_connection: bool) {
    let headers = load
        .headers
        .iter()
        .map(|h| {
            let (name, value) = h.split_once(':').expect("--header 'Name: value'");
            (
                http::HeaderName::try_from(name.trim()).expect("header name"),
                http::HeaderValue::try_from(value.trim()).expect("header value"),
            )
        })
        .collect();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(load.threads).enable_all().build().expect("runtime");
    let pace = load.rate.map(|rate| {
        let _guard = runtime.enter();
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        tokio::sync::Mutex::new(interval)
    });
    let shared = Arc::new(Shared {
        load: load.clone(),
        pace,
        headers,
        issued: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        errors: AtomicU64::new(0),
        non_200: AtomicU64::new(0),
        body_bytes: AtomicU64::new(0),
    });
    let server_cpu_before = load.pid.map(process_cpu);
    let own_cpu_before = process_cpu(std::process::id());
    let started = Instant::now();
    let latencies = runtime.block_on(async {
        let workers: Vec<_> = (0..load.concurrency)
            .map(|_| {
                let shared = shared.clone();
                tokio::spawn(async move {
                    if new_connection {
                        worker_newconn(&shared).await
                    } else {
                        worker_keepalive(&shared).await
                    }
                })
            })
            .collect();
        if load.requests.is_none() {
            tokio::time::sleep(Duration::from_secs(load.duration)).await;
            shared.stop.store(true, Ordering::Relaxed);
        }
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.expect("worker"));
        }
        all
    });
    let elapsed = started.elapsed().as_secs_f64();
    let own_cpu = process_cpu(std::process::id()) - own_cpu_before;
    let mut latencies = latencies;
    latencies.sort_unstable();
    let pct = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1] as u64
    };
    let ok = latencies.len() as u64;
    let mut line = format!(
        "label={} mode={} concurrency={} requests={} errors={} non_200={} seconds={:.3} rps={:.0} p50_us={} p90_us={} p99_us={} max_us={} body_bytes={} loadgen_cpu_s={:.2}",
        load.label,
        if new_connection { "newconn" } else { "keepalive" },
        load.concurrency,
        ok,
        shared.errors.load(Ordering::Relaxed),
        shared.non_200.load(Ordering::Relaxed),
        elapsed,
        ok as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
        shared.body_bytes.load(Ordering::Relaxed) / ok.max(1),
        own_cpu,
    );
    if let (Some(pid), Some(before)) = (load.pid, server_cpu_before) {
        let cpu = process_cpu(pid) - before;
        line.push_str(&format!(" server_cpu_s={cpu:.2} server_cpu_us_per_req={:.1}", cpu * 1e6 / ok.max(1) as f64));
    }
    println!("{line}");
}

/// One keep-alive connection, reopened after an error. Returns latencies in µs of 200 answers.
async fn worker_keepalive(shared: &Shared) -> Vec<u32> {
    let mut latencies = Vec::new();
    let mut sender: Option<http1::SendRequest<Empty<Bytes>>> = None;
    while let Some(path) = shared.next().await {
        let t0 = Instant::now();
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = connect(shared.load.addr).await.ok();
        }
        let Some(s) = sender.as_mut() else {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if s.ready().await.is_err() {
            sender = None;
            shared.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match exchange(s, shared.request(&path)).await {
            Ok((200, n)) => {
                latencies.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                shared.body_bytes.fetch_add(n, Ordering::Relaxed);
            }
            Ok(_) => {
                shared.non_200.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                sender = None;
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    latencies
}

/// A fresh connection per request: connect, ask, read, close.
async fn worker_newconn(shared: &Shared) -> Vec<u32> {
    let mut latencies = Vec::new();
    while let Some(path) = shared.next().await {
        let t0 = Instant::now();
        let result = async {
            let mut sender = connect(shared.load.addr).await?;
            let answer = exchange(&mut sender, shared.request(&path)).await;
            drop(sender);
            answer
        }
        .await;
        match result {
            Ok((200, n)) => {
                latencies.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                shared.body_bytes.fetch_add(n, Ordering::Relaxed);
            }
            Ok(_) => {
                shared.non_200.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    latencies
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connect(addr: SocketAddr) -> Result<http1::SendRequest<Empty<Bytes>>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn exchange(
    sender: &mut http1::SendRequest<Empty<Bytes>>,
    req: http::Request<Empty<Bytes>>,
) -> Result<(u16, u64), BoxError> {
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body.len() as u64))
}

/// User + system CPU seconds of a process.
fn process_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    (ticks(11) + ticks(12)) / hz
}

fn hold(addr: SocketAddr, connections: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut held = Vec::with_capacity(connections);
        while held.len() < connections {
            let batch = (connections - held.len()).min(500);
            let opened = futures::future::join_all((0..batch).map(|_| TcpStream::connect(addr))).await;
            for stream in opened {
                match stream {
                    Ok(s) => held.push(s),
                    Err(e) => {
                        eprintln!("hold: connect failed after {} connections: {e}", held.len());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        println!("held={}", held.len());
        std::future::pending::<()>().await;
    });
}

fn startup(bin: &std::path::Path, config: &std::path::Path, addr: SocketAddr, runs: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ready_ms = Vec::new();
    let mut readyz_ms = Vec::new();
    for run in 0..runs {
        let socket_path = dir.path().join(format!("notify-{run}"));
        let notify = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("notify socket");
        notify.set_read_timeout(Some(Duration::from_millis(1))).expect("timeout");
        let t0 = Instant::now();
        let mut child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .env("NOTIFY_SOCKET", &socket_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn agent");
        let (mut ready, mut readyz) = (None, None);
        let deadline = t0 + Duration::from_secs(10);
        let mut buf = [0u8; 512];
        while (ready.is_none() || readyz.is_none()) && Instant::now() < deadline {
            if ready.is_none() {
                if let Ok(n) = notify.recv(&mut buf) {
                    if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1") {
                        ready = Some(t0.elapsed());
                    }
                }
            }
            if readyz.is_none() && get_status(addr, "/readyz") == Some(200) {
                readyz = Some(t0.elapsed());
            }
        }
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let _ = child.wait();
        let (Some(ready), Some(readyz)) = (ready, readyz) else {
            println!("startup run {run}: not ready within 10 s");
            std::process::exit(1);
        };
        ready_ms.push(ready.as_secs_f64() * 1e3);
        readyz_ms.push(readyz.as_secs_f64() * 1e3);
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() - 1])
    };
    let (ready_p50, ready_max) = stats(&mut ready_ms);
    let (readyz_p50, readyz_max) = stats(&mut readyz_ms);
    println!(
        "label=startup runs={runs} ready_p50_ms={ready_p50:.1} ready_max_ms={ready_max:.1} readyz_p50_ms={readyz_p50:.1} readyz_max_ms={readyz_max:.1}"
    );
}

/// One blocking `GET` over a new connection; the status, if any answer came.
fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn rss(pid: u32, every: u64, samples: usize) {
    for i in 0..samples {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("0")
                .to_owned()
        };
        println!("sample={i} rss_kb={} hwm_kb={}", field("VmRSS:"), field("VmHWM:"));
        if i + 1 < samples {
            std::thread::sleep(Duration::from_secs(every));
        }
    }
}
