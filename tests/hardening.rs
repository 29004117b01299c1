//! Hard to knock over: connection floods, slow and misbehaving clients, cold herds.
//!
//! Each test runs an agent in this process (`daemon::start` on 127.0.0.1:0) and attacks it with
//! raw TCP clients. Nothing here asserts on timing: every wait is a loop bounded by a generous
//! deadline that only turns a hang into a failure. The tests take the `SERIAL` lock, so that one
//! test's ten thousand sockets never meet another's.
//!
//! What is checked:
//! - 10,000 concurrent connections against `max_connections = 1000`: never more than 1,000 open,
//!   the rest refused at once (429); idle connections holding every slot are closed after
//!   `header_read_timeout`, so `/healthz` answers again; no descriptor is leaked; the agent still
//!   serves afterwards.
//! - A slow client (headers trickling in, a body that never comes, answers never read) holds its
//!   slot for a bounded time only.
//! - A cold herd of 1,000 requests costs one AssumeRole per session key (1 key, then 100 keys),
//!   against moto behind the counting proxy.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use emrfs_role_agent::daemon::Running;
use futures::future::join_all;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use serde_json::Value;
use support::{Fault, StsPeer, TestAgent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One test at a time in this binary: they open thousands of sockets each.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Turns a hang into a failure; never reached when things work.
const DEADLINE: Duration = Duration::from_secs(60);

struct Agent {
    inner: TestAgent,
    addr: SocketAddr,
    token: String,
}

impl Agent {
    /// An agent whose STS is unreachable (nothing here needs it): every credentials request is
    /// decided by `fallback.mode = "deny"`, after the token and the caller's kernel identity.
    /// `server` is added to `[server]`.
    async fn without_sts(server: &str) -> Agent {
        let inner = TestAgent::builder()
            .sts(StsPeer::Unreachable)
            .config(&format!("[server]\n{server}"))
            .config("[sts]\ncall_timeout = \"1s\"\n[fallback]\nmode = \"deny\"")
            .start()
            .await;
        let (addr, token) = (inner.addr, inner.token.clone());
        Agent { inner, addr, token }
    }

    fn running(&self) -> &Running {
        self.inner.running()
    }

    fn open_connections(&self) -> i64 {
        self.running().app.metrics.connections_open.get()
    }

    fn refused_connections(&self) -> u64 {
        self.running().app.metrics.connections_refused.get()
    }

    async fn stop(self) {
        self.inner.stop().await;
    }

    /// A credentials request on a new connection: its status.
    async fn credentials_status(&self) -> Option<u16> {
        let request = format!(
            "GET /v1/credentials?location=s3://bucket/key HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
            self.token
        );
        exchange(self.addr, request.as_bytes()).await
    }

    /// Polls `/healthz` on new connections until it answers 200.
    async fn wait_healthy(&self) {
        tokio::time::timeout(DEADLINE, async {
            while exchange(self.addr, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await != Some(200) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("/healthz answers again");
    }
}

/// Sends `request` on a new connection and reads the status line; None if the connection was
/// closed or refused without an answer (within a short bound).
async fn exchange(addr: SocketAddr, request: &[u8]) -> Option<u16> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(request).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), attempt).await.ok().flatten()
}

/// Reads (and discards) until the server closes `stream`: EOF or reset.
async fn until_closed(stream: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    loop {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// [`until_closed`], failing the test if that takes longer than [`DEADLINE`].
async fn closed_by_server(stream: &mut TcpStream) {
    tokio::time::timeout(DEADLINE, until_closed(stream)).await.expect("the server closes the connection");
}

/// TCP states of the sockets on `port` (`ss`), for failure messages.
fn socket_states(port: u16) -> String {
    let filter = format!("( dport = :{port} or sport = :{port} )");
    let Ok(out) = std::process::Command::new("ss").args(["-tan", "state", "all", &filter]).output() else {
        return "(ss unavailable)".into();
    };
    let mut counts = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        *counts.entry(line.split_whitespace().next().unwrap_or("?").to_owned()).or_insert(0) += 1;
    }
    format!("{counts:?}")
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Raises this process's soft descriptor limit to its hard limit; returns the new soft limit.
fn raise_descriptor_limit() -> u64 {
    #[repr(C)]
    struct Rlimit {
        cur: u64,
        max: u64,
    }
    extern "C" {
        fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
    }
    const RLIMIT_NOFILE: i32 = 7;
    let mut limit = Rlimit { cur: 0, max: 0 };
    // SAFETY: plain libc calls with a correctly laid out `struct rlimit` (two rlim_t, 64-bit on Linux).
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        let raised = Rlimit { cur: limit.max, max: limit.max };
        if setrlimit(RLIMIT_NOFILE, &raised) == 0 {
            limit.cur = limit.max;
        }
    }
    limit.cur
}

/// Samples the agent's open-connection gauge every millisecond; the highest value seen.
fn watch_open_connections(agent: &Agent) -> (Arc<AtomicI64>, Arc<AtomicBool>) {
    let peak = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = agent.running().app.metrics.clone();
    let (p, s) = (peak.clone(), stop.clone());
    tokio::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            p.fetch_max(metrics.connections_open.get(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    (peak, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_max_connections_holds_and_idle_ones_are_freed() {
    let _serial = SERIAL.lock().await;
    const MAX: usize = 1000;
    let limit = raise_descriptor_limit();
    // Ten thousand client sockets plus the agent's thousand; a smaller hard limit scales it down.
    let flood = 10_000usize.min((limit as usize).saturating_sub(MAX + 500));
    assert!(flood > MAX * 2, "descriptor limit {limit} is too low for this test");
    if flood < 10_000 {
        eprintln!("descriptor limit {limit}: flooding with {flood} connections instead of 10000");
    }
    let agent =
        Agent::without_sts(&format!("max_connections = {MAX}\nheader_read_timeout = \"1s\"\nrequest_timeout = \"2s\""))
            .await;
    assert_eq!(agent.credentials_status().await, Some(403), "served before the flood");
    let descriptors_before = open_descriptors();
    let (peak, stop_watching) = watch_open_connections(&agent);

    // The flood: all connections opened and held, each having sent the start of a request and
    // nothing more. (Sending something matters: a connection the kernel completed with a SYN
    // cookie while the accept queue was full exists only on the client's side until its first
    // data segment arrives; real clients always send at once.)
    let mut clients = Vec::with_capacity(flood);
    let mut peak_descriptors = 0;
    while clients.len() < flood {
        let batch = (flood - clients.len()).min(500);
        let opened = join_all((0..batch).map(|_| async {
            let mut stream = TcpStream::connect(agent.addr).await?;
            stream.write_all(b"GET /healthz HTTP/1.1\r\n").await?;
            Ok::<_, std::io::Error>(stream)
        }))
        .await;
        for stream in opened {
            clients.push(stream.expect("the kernel accepts the connection"));
        }
        peak_descriptors = peak_descriptors.max(open_descriptors());
    }
    assert!(agent.refused_connections() > 0, "connections beyond max_connections are refused");

    // Every connection ends: refused ones at once, held idle ones at header_read_timeout.
    let closed = std::sync::atomic::AtomicUsize::new(0);
    let all_closed = join_all(clients.iter_mut().map(|c| async {
        until_closed(c).await;
        closed.fetch_add(1, Ordering::Relaxed);
    }));
    if tokio::time::timeout(DEADLINE, all_closed).await.is_err() {
        panic!(
            "{} of {flood} flood connections still open; agent: {} open, {} refused; sockets: {}",
            flood - closed.load(Ordering::Relaxed),
            agent.open_connections(),
            agent.refused_connections(),
            socket_states(agent.addr.port())
        );
    }
    stop_watching.store(true, Ordering::Relaxed);
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak <= MAX as i64, "{peak} connections open at once with max_connections = {MAX}");
    assert!(peak > 0);
    // The agent's own descriptors stayed within max_connections (the rest are the test's clients).
    assert!(
        peak_descriptors <= descriptors_before + flood + MAX + 100,
        "{peak_descriptors} descriptors open (before: {descriptors_before}, clients: {flood})"
    );

    // Health and service are back, and nothing leaked once the clients are gone.
    agent.wait_healthy().await;
    assert_eq!(agent.credentials_status().await, Some(403));
    drop(clients);
    tokio::time::timeout(DEADLINE, async {
        while agent.open_connections() > 0 || open_descriptors() > descriptors_before + 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("descriptors leaked: {} open, {descriptors_before} before", open_descriptors()));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_holding_every_slot_are_freed_for_healthz() {
    let _serial = SERIAL.lock().await;
    const MAX: usize = 200;
    // Long enough that the slots are certainly still held when the newcomer knocks.
    let agent = Agent::without_sts(&format!("max_connections = {MAX}\nheader_read_timeout = \"5s\"")).await;
    // Every slot taken by a keep-alive connection that was served once and then went quiet.
    let mut idle = Vec::new();
    for _ in 0..MAX {
        let mut stream = TcpStream::connect(agent.addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[9..12], b"200");
        idle.push(stream);
    }
    assert_eq!(agent.open_connections(), MAX as i64);
    // Full: a newcomer is turned away at once with 429...
    let refused = agent.refused_connections();
    assert_eq!(exchange(agent.addr, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await, Some(429));
    assert_eq!(agent.refused_connections(), refused + 1);
    // ...until header_read_timeout closes the idle ones.
    join_all(idle.iter_mut().map(closed_by_server)).await;
    agent.wait_healthy().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_trickling_in_do_not_extend_header_read_timeout() {
    let _serial = SERIAL.lock().await;
    let agent = Agent::without_sts("max_connections = 10\nheader_read_timeout = \"1s\"").await;
    let mut slow: Vec<TcpStream> = Vec::new();
    for _ in 0..10 {
        slow.push(TcpStream::connect(agent.addr).await.unwrap());
    }
    // A byte every 100 ms, forever: the connection is cut regardless.
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    let trickle = async {
        for byte in request.iter().cycle().take(10_000) {
            for stream in slow.iter_mut() {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(DEADLINE, trickle).await.expect("the agent cut the trickling clients off");
    for stream in slow.iter_mut() {
        closed_by_server(stream).await;
    }
    eprintln!("trickling clients cut off after {:?} (header_read_timeout 1s)", started.elapsed());
    agent.wait_healthy().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_never_comes_does_not_hold_a_slot() {
    let _serial = SERIAL.lock().await;
    let agent =
        Agent::without_sts("max_connections = 10\nheader_read_timeout = \"1s\"\nrequest_timeout = \"1s\"").await;
    let mut holders = Vec::new();
    for path in ["/v1/credentials?location=s3://bucket/key", "/healthz", "/nowhere"] {
        let mut stream = TcpStream::connect(agent.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Length: 1000000\r\n\r\nonly the start",
            agent.token
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        holders.push(stream);
    }
    let mut chunked = TcpStream::connect(agent.addr).await.unwrap();
    chunked
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc")
        .await
        .unwrap();
    holders.push(chunked);
    for stream in holders.iter_mut() {
        closed_by_server(stream).await;
    }
    tokio::time::timeout(DEADLINE, async {
        while agent.open_connections() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no slot stays held");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_loses_its_slot() {
    let _serial = SERIAL.lock().await;
    let agent =
        Agent::without_sts("max_connections = 10\nheader_read_timeout = \"1s\"\nrequest_timeout = \"1s\"").await;
    // Pipelined requests, answers never read: once the socket buffers are full the agent's
    // writes stall, and a stalled write must not hold the slot forever.
    let mut greedy = TcpStream::connect(agent.addr).await.unwrap();
    let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(100);
    let writer = async {
        loop {
            match tokio::time::timeout(Duration::from_secs(3), greedy.write_all(request.as_bytes())).await {
                Ok(Ok(())) => {}
                // Our own writes block: the agent stopped reading (its answers are stuck too).
                Err(_) => return true,
                Ok(Err(_)) => return false,
            }
        }
    };
    let (peak, stop_watching) = watch_open_connections(&agent);
    let blocked = tokio::time::timeout(DEADLINE, writer).await.expect("the pipeline fills up or is cut");
    stop_watching.store(true, Ordering::Relaxed);
    eprintln!("pipelining client {}", if blocked { "filled the buffers" } else { "was cut off while writing" });
    // The scenario happened: the greedy client was served on a slot of its own…
    assert_eq!(peak.load(Ordering::Relaxed), 1, "the greedy client held a slot");
    tokio::time::timeout(DEADLINE, async {
        while agent.open_connections() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a connection whose answers are never read is closed");
    agent.wait_healthy().await;
    drop(greedy);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_get_no_more_than_their_share() {
    let _serial = SERIAL.lock().await;
    const MAX: usize = 50;
    let agent = Agent::without_sts(&format!("max_connections = {MAX}\nheader_read_timeout = \"1s\"")).await;
    // As many slow clients as there are slots, each reconnecting the moment it is cut off and
    // then sending one header byte per 200 ms.
    let done = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..MAX)
        .map(|_| {
            let (addr, done) = (agent.addr, done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(addr).await else { continue };
                    while !done.load(Ordering::Relaxed) && stream.write_all(b"G").await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Ordinary clients still get through: each slot changes hands at least every second.
    let mut served = 0;
    tokio::time::timeout(DEADLINE, async {
        while served < 5 {
            if agent.credentials_status().await == Some(403) {
                served += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    })
    .await
    .expect("ordinary clients are served while slow ones hammer the agent");
    done.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.await;
    }
    assert!(agent.refused_connections() > 0, "the slow clients did fill every slot");
    agent.stop().await;
}

// ---- cold herds against moto behind the counting proxy ----------------------------------------

struct StsHarness {
    agent: TestAgent,
    bucket: String,
}

impl StsHarness {
    /// Moto behind the counting proxy; the test's own user may act for the herd's users.
    async fn start(max_calls_per_second: u32) -> StsHarness {
        let me = support::current_user();
        let agent = TestAgent::builder()
            .sts(StsPeer::FaultProxy)
            .config(&format!("[identity]\ntrusted_proxy_users = [\"{me}\"]"))
            .config(&format!("[sts]\nsession_name = \"{{user}}\"\nmax_calls_per_second = {max_calls_per_second}"))
            .mappings(support::analytics_rule)
            .start()
            .await;
        let bucket = agent.world().role("analytics").bucket.clone();
        StsHarness { agent, bucket }
    }

    /// `n` concurrent requests, each on its own connection, for users `herd-<i % keys>`: the
    /// statuses and access key ids, and the time until the last answer.
    async fn herd(&self, n: usize, keys: usize, prefix: &str) -> (Vec<(u16, String)>, Duration) {
        // One connection per request: no pool reuse, no queueing in the client.
        let client: Client<HttpConnector, Empty<Bytes>> =
            Client::builder(hyper_util::rt::TokioExecutor::new()).pool_max_idle_per_host(0).build_http();
        let started = Instant::now();
        let answers = join_all((0..n).map(|i| {
            let uri = format!(
                "http://{}/v1/credentials?location=s3://{}/data/&user={prefix}-{}",
                self.agent.addr,
                self.bucket,
                i % keys
            );
            let req = http::Request::get(uri).header("Authorization", &self.agent.token).body(Empty::new()).unwrap();
            let client = client.clone();
            async move {
                let res = client.request(req).await.expect("the agent answers");
                let status = res.status().as_u16();
                let body: Value =
                    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap_or(Value::Null);
                (status, body["AccessKeyId"].as_str().unwrap_or("").to_owned())
            }
        }))
        .await;
        (answers, started.elapsed())
    }
}

async fn cold_herd(keys: usize, max_calls_per_second: u32) {
    let h = StsHarness::start(max_calls_per_second).await;
    // STS answers slowly, so every request of the herd arrives while the first calls are in flight.
    h.agent.proxy().set(Fault::Delay(Duration::from_millis(300)));
    // One cold request alone: the STS round trip the herd is compared with (and a warm agent).
    let (single, round_trip) = h.herd(1, 1, "solo").await;
    assert_eq!(single[0].0, 200);
    // `keys` AssumeRole calls at once, straight to STS (moto answers them one at a time): what
    // the herd's STS calls cost without the agent.
    let sts = support::sts_client(&h.agent.proxy().url(), h.agent.world().source_credentials(), false);
    let role = h.agent.world().role("analytics").arn.clone();
    let started = Instant::now();
    let direct =
        join_all((0..keys).map(|i| sts.assume_role().role_arn(&role).role_session_name(format!("direct-{i}")).send()))
            .await;
    let direct_elapsed = started.elapsed();
    assert!(direct.iter().all(Result::is_ok), "moto answers AssumeRole");
    h.agent.proxy().reset_counts();

    let (answers, elapsed) = h.herd(1000, keys, "herd").await;
    let failed: Vec<_> = answers.iter().filter(|(status, _)| *status != 200).collect();
    assert!(failed.is_empty(), "{} of 1000 failed: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    let distinct: std::collections::HashSet<_> = answers.iter().map(|(_, key)| key.as_str()).collect();
    assert_eq!(distinct.len(), keys, "one session per key");
    assert_eq!(h.agent.proxy().assume_role_calls(), keys as u64, "one AssumeRole per key");
    println!(
        "cold_herd keys={keys} requests=1000 sts_calls={} max_calls_per_second={max_calls_per_second} herd_ms={} one_cold_request_ms={} ratio={:.2} direct_parallel_sts_ms={} ratio_to_direct={:.2}",
        h.agent.proxy().assume_role_calls(),
        elapsed.as_millis(),
        round_trip.as_millis(),
        elapsed.as_secs_f64() / round_trip.as_secs_f64(),
        direct_elapsed.as_millis(),
        elapsed.as_secs_f64() / direct_elapsed.as_secs_f64(),
    );
    h.agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_herd_of_1000_requests_for_one_key_costs_one_assume_role() {
    let _serial = SERIAL.lock().await;
    cold_herd(1, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_herd_of_1000_requests_for_100_keys_costs_100_assume_roles() {
    let _serial = SERIAL.lock().await;
    // With the default call rate (20/s) a hundred keys take five seconds by design; the herd
    // itself is what is measured here.
    cold_herd(100, 1000).await;
}
