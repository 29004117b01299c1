//! A local tenant attacking the agent: requests crafted to slip past the origin checks, proxies asking
//! for accounts they must never get. Each request is sent raw over TCP, exactly as written here, and each
//! refusal must be audited under the sender's uid.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use support::{StsPeer, TestAgent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `head` (CRLF line ends added) on a new connection; the status and the JSON body.
async fn raw(addr: SocketAddr, head: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw_request(head).as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    parse_answer(&String::from_utf8_lossy(&answer))
}

/// [`raw`], from a process running as `nobody` (needs root).
async fn raw_as_nobody(addr: SocketAddr, head: &str) -> (u16, Value) {
    let request = raw_request(head);
    let answer =
        tokio::task::spawn_blocking(move || support::exchange_as_nobody(addr, request.as_bytes())).await.unwrap();
    parse_answer(&answer)
}

fn raw_request(head: &str) -> String {
    head.lines().map(|l| format!("{l}\r\n")).collect::<String>() + "Connection: close\r\n\r\n"
}

fn parse_answer(answer: &str) -> (u16, Value) {
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_tricks_and_absolute_targets_are_refused_and_audited_under_the_senders_uid() {
    // The sender is `nobody`, the agent (in this process) root: a record naming the agent's own uid
    // instead of the sender's fails here.
    if !support::needs_root("host_tricks_and_absolute_targets_are_refused_and_audited_under_the_senders_uid") {
        return;
    }
    let mut h = TestAgent::builder().sts(StsPeer::Unreachable).config("[fallback]\nmode = \"deny\"").start().await;
    let auth = format!("Authorization: {}", h.token);
    let path = "/v1/credentials?location=s3://bucket/key";
    let attacks = [
        format!("GET {path} HTTP/1.1\nHost: localhost:9944@evil.com\n{auth}"),
        format!("GET {path} HTTP/1.1\nHost: localhost:evil\n{auth}"),
        format!("GET {path} HTTP/1.1\nHost: localhost\nHost: evil.com\n{auth}"),
        format!("GET {path} HTTP/1.1\nHost: evil.com\nHost: localhost\n{auth}"),
        format!("GET http://evil.com{path} HTTP/1.1\nHost: localhost\n{auth}"),
        format!("GET http://localhost@evil.com{path} HTTP/1.1\nHost: localhost\n{auth}"),
        format!("GET {path} HTTP/1.1\nHost: [::1]x\n{auth}"),
    ];
    for attack in &attacks {
        let (status, body) = raw_as_nobody(h.addr, attack).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("Forbidden")), "{attack}: {body}");
    }
    // What a client does is still served: one Host, loopback, an optional port; an absolute target
    // naming a loopback host.
    for fine in [
        format!("GET {path} HTTP/1.1\nHost: localhost:9944\n{auth}"),
        format!("GET {path} HTTP/1.1\nHost: 127.0.0.1\n{auth}"),
        format!("GET http://127.0.0.1:9944{path} HTTP/1.1\nHost: 127.0.0.1:9944\n{auth}"),
    ] {
        let (status, body) = raw_as_nobody(h.addr, &fine).await;
        // Decided by the rules (fallback "deny"), not refused at the door.
        assert_eq!((status, body["code"].as_str()), (403, Some("AccessDenied")), "{fine}: {body}");
    }
    let sender = support::NOBODY;
    assert_ne!(sender, nix::unistd::geteuid().as_raw(), "the sender is not the agent's user");
    let records = h.stop_and_read_audit().await;
    // The refusals at the door are counted for their caller, the three decisions recorded each.
    let refused: Vec<&Value> = records.iter().filter(|r| r["event"] == "refused").collect();
    assert_eq!(refused.iter().map(|r| r["count"].as_u64().unwrap()).sum::<u64>(), attacks.len() as u64);
    for record in &refused {
        assert_eq!(record["caller_uid"], sender, "a refused request names its caller: {record}");
        assert_eq!(record["codes"]["Forbidden"], record["count"], "{record}");
    }
    let decided: Vec<&Value> = records.iter().filter(|r| r["event"] == "credentials").collect();
    assert_eq!(decided.len(), 3);
    for record in decided {
        assert_eq!(
            (&record["error_code"], &record["caller_uid"]),
            (&Value::from("AccessDenied"), &Value::from(sender))
        );
        assert_eq!((&record["caller_user"], &record["user"]), (&Value::from("nobody"), &Value::from("nobody")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_never_acts_for_root_or_a_system_account() {
    let me = support::current_user();
    let mut h = TestAgent::builder()
        .sts(StsPeer::Unreachable)
        .config(&format!("[identity]\ntrusted_proxy_users = [\"{me}\"]\n[fallback]\nmode = \"deny\""))
        .start()
        .await;
    let daemon = nix::unistd::User::from_uid(1.into()).unwrap().expect("uid 1 exists").name;
    for (user, code) in [
        (daemon.as_str(), "ImpersonationDenied"),
        ("uid:0", "ImpersonationDenied"),
        ("uid:999", "ImpersonationDenied"),
        // Unknown users and accounts at or above min_asserted_uid are decided by the rules.
        ("no-such-user-anywhere", "AccessDenied"),
        ("uid:1000", "AccessDenied"),
        ("nobody", "AccessDenied"),
    ] {
        let answer = h.get(&format!("user={user}")).await;
        assert_eq!((answer.status, answer.body["code"].as_str()), (403, Some(code)), "user={user}: {}", answer.body);
    }
    let records = h.stop_and_read_audit().await;
    let denied: Vec<_> = records.iter().filter(|r| r["error_code"] == "ImpersonationDenied").collect();
    assert_eq!(denied.len(), 3);
    assert!(denied.iter().all(|r| r["asserted"] == true && r["rule_name"].is_null()), "{denied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_user_value_is_refused_and_never_reaches_the_audit_log() {
    let me = support::current_user();
    let mut h = TestAgent::builder()
        .sts(StsPeer::Unreachable)
        .config(&format!("[identity]\ntrusted_proxy_users = [\"{me}\"]"))
        .start()
        .await;
    let huge = "x".repeat(15_000);
    let answer = h.get(&format!("user={huge}")).await;
    assert_eq!((answer.status, answer.body["code"].as_str()), (400, Some("InvalidRequest")), "{}", answer.body);
    let path = h.dir.path().join("audit.log");
    let records = h.stop_and_read_audit().await;
    let refused = records.iter().find(|r| r["event"] == "refused").unwrap();
    assert_eq!((refused["count"].as_u64(), refused["codes"]["InvalidRequest"].as_u64()), (Some(1), Some(1)));
    let longest = std::fs::read_to_string(path).unwrap().lines().map(str::len).max().unwrap();
    assert!(longest < 2048, "an audit line of {longest} bytes");
}

/// `GET <path>` on a new connection from a process running as `nobody`: the status, or 0 if the
/// connection was closed without one.
fn status_as_nobody(addr: SocketAddr, path: &str) -> u16 {
    let script = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % sys.argv[3]).encode())
head = s.recv(12)
print(head[9:12].decode() if len(head) >= 12 else "0")
"#;
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script])
        .args([addr.ip().to_string(), addr.port().to_string(), path.to_owned()])
        .output()
        .expect("setpriv runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// One user holding every connection it may open leaves the others their slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_cannot_take_every_connection_slot() {
    if !support::needs_root("one_user_cannot_take_every_connection_slot") {
        return;
    }
    const SHARE: usize = 20;
    let h = TestAgent::builder()
        .sts(StsPeer::Unreachable)
        .config(&format!("[server]\nmax_connections = 100\nmax_connections_per_caller = {SHARE}"))
        .start()
        .await;
    // The attacker (this process) opens its share and keeps it.
    let mut held = Vec::new();
    for _ in 0..SHARE {
        let mut stream = TcpStream::connect(h.addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[9..12], b"200");
        held.push(stream);
    }
    // One more is refused at once, before it sends anything.
    let mut refused = TcpStream::connect(h.addr).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), refused.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 429 ") && answer.contains("\"Throttled\""), "{answer}");
    // Another user is served.
    let addr = h.addr;
    let victim = tokio::task::spawn_blocking(move || status_as_nobody(addr, "/healthz")).await.unwrap();
    assert_eq!(victim, 200, "another user keeps its slots");
    // The attacker's share comes back as its connections close.
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.running().app.metrics.connections_open.get() > 0 {
        assert!(std::time::Instant::now() < deadline, "closed connections are uncounted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(raw(h.addr, "GET /healthz HTTP/1.1\nHost: localhost").await.0, 200);
    h.stop().await;
}

/// `GET /v1/credentials?<query>` with the token, from a process running as `nobody`: the status.
fn credentials_as_nobody(addr: SocketAddr, token: &str, query: &str) -> u16 {
    let script = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
s.sendall(("GET /v1/credentials?%s HTTP/1.1\r\nHost: localhost\r\nAuthorization: %s\r\nConnection: close\r\n\r\n"
           % (sys.argv[4], sys.argv[3])).encode())
head = s.recv(12)
print(head[9:12].decode() if len(head) >= 12 else "0")
"#;
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script])
        .args([addr.ip().to_string(), addr.port().to_string(), token.to_owned(), query.to_owned()])
        .output()
        .expect("setpriv runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// One user sending as fast as it can is held to its share of requests; another user is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_flooding_requests_is_held_to_its_share() {
    if !support::needs_root("one_user_flooding_requests_is_held_to_its_share") {
        return;
    }
    let h = TestAgent::builder()
        .sts(StsPeer::Unreachable)
        .config("[server]\nmax_requests_per_caller = 1\n[fallback]\nmode = \"deny\"")
        .start()
        .await;
    let started = std::time::Instant::now();
    let answers = futures::future::join_all((0..20).map(|_| h.get("location=s3://bucket/k"))).await;
    let elapsed = started.elapsed();
    let served = answers.iter().filter(|a| a.status == 403).count();
    let throttled = answers.iter().filter(|a| a.status == 429 && a.body["code"] == "Throttled").count();
    assert_eq!(served + throttled, 20, "{answers:?}");
    // One a second: however slow this machine is, no more than one plus one per second went through.
    assert!(served as f64 <= 1.0 + elapsed.as_secs_f64().ceil(), "{served} served in {elapsed:?}");
    assert!(throttled >= 1);
    // Another user has its own share.
    let (addr, token) = (h.addr, h.token.clone());
    let other = tokio::task::spawn_blocking(move || credentials_as_nobody(addr, &token, "location=s3://bucket/k"))
        .await
        .unwrap();
    assert_eq!(other, 403, "decided by the rules, not throttled");
    h.stop().await;
}

/// A proxy asking for many users' sessions at once spends only its share of the STS budget; the
/// sessions of another user are still fetched at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_cannot_spend_the_whole_sts_budget() {
    if !support::needs_root("one_caller_cannot_spend_the_whole_sts_budget") {
        return;
    }
    let me = support::current_user();
    let h = TestAgent::builder()
        .sts(StsPeer::FaultProxy)
        .config(&format!("[identity]\ntrusted_proxy_users = [\"{me}\"]"))
        .config("[sts]\nsession_name = \"{user}\"\nmax_calls_per_second = 100\nmax_calls_per_caller = 2")
        .mappings(support::analytics_rule)
        .start()
        .await;
    let bucket = h.world().role("analytics").bucket.clone();
    let started = std::time::Instant::now();
    let queries: Vec<String> = (0..20).map(|i| format!("location=s3://{bucket}/x&user=tenant-{i}")).collect();
    let answers = futures::future::join_all(queries.iter().map(|q| h.get(q))).await;
    let elapsed = started.elapsed();
    let throttled = answers.iter().filter(|a| a.status == 429).count();
    let calls = h.proxy().assume_role_calls();
    assert_eq!(answers.iter().filter(|a| a.status == 200).count() as u64, calls, "one STS call per session served");
    assert!(calls as f64 <= 2.0 * (1.0 + elapsed.as_secs_f64().ceil()), "{calls} calls in {elapsed:?}");
    assert!(throttled >= 1, "{answers:?}");
    // Another user's session is fetched from its own share.
    let (addr, token) = (h.addr, h.token.clone());
    let query = format!("location=s3://{bucket}/y");
    let other = tokio::task::spawn_blocking(move || credentials_as_nobody(addr, &token, &query)).await.unwrap();
    assert_eq!(other, 200);
    h.stop().await;
}

/// On a cluster without Kerberos every tenant's executors run as `yarn`: one tenant flooding through the
/// proxy spends its own share of requests, not the others'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_behind_a_proxy_cannot_starve_another() {
    let me = support::current_user();
    let h = TestAgent::builder()
        .sts(StsPeer::Unreachable)
        .config(&format!(
            "[identity]\ntrusted_proxy_users = [\"{me}\"]\n[server]\nmax_requests_per_caller = 30\n\
             [fallback]\nmode = \"deny\""
        ))
        .start()
        .await;
    // Flood as tenant-a until the share is spent: from here on, the proxy uid's own share is empty too.
    let mut flood = 0;
    loop {
        let statuses = burst(&h, vec!["user=tenant-a".to_owned(); 40]).await;
        flood += statuses.len();
        if statuses.contains(&429) {
            break;
        }
        assert!(flood < 4000, "tenant-a was never throttled");
    }
    let statuses = burst(&h, vec!["user=tenant-b".to_owned(); 9]).await;
    assert!(statuses.iter().all(|s| *s == 403), "tenant-b behind the same proxy: {statuses:?}");
    // tenant-a is still held to its share: its share refills at 30 a second (the real clock of the
    // limiter), so a burst of 40 is more than it can have got back meanwhile.
    let tenant_a = burst(&h, vec!["user=tenant-a".to_owned(); 40]).await;
    assert!(tenant_a.contains(&429), "tenant-a's own share: {tenant_a:?}");
    h.stop().await;
}

/// A proxy limited like Hadoop's `hadoop.proxyuser.<user>.users/groups` acts only for those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_acts_only_for_the_users_and_groups_it_is_given() {
    let me = support::current_user();
    let nobody_group = nix::unistd::Group::from_gid(65534.into()).unwrap().expect("gid 65534 exists").name;
    let h = TestAgent::builder()
        .sts(StsPeer::Unreachable)
        .config(&format!(
            "[identity]\ntrusted_proxy_users = [\"{me}\"]\n[identity.proxies.{me}]\nusers = [\"alice\"]\n\
             groups = [\"{nobody_group}\"]\n[fallback]\nmode = \"deny\""
        ))
        .start()
        .await;
    for (user, code) in [
        ("alice", "AccessDenied"),  // named
        ("nobody", "AccessDenied"), // a member of the named group
        ("mallory", "ImpersonationDenied"),
    ] {
        let answer = h.get(&format!("user={user}")).await;
        assert_eq!((answer.status, answer.body["code"].as_str()), (403, Some(code)), "user={user}: {}", answer.body);
    }
    h.stop().await;
}

/// An agent with the default shares of [server] and [sts] (written out over the harness's own), except
/// `max_calls_per_caller`; rules for the test user's proxying and for `nobody`'s own sessions.
async fn fairness_agent(max_calls_per_caller: u32) -> TestAgent {
    let me = support::current_user();
    TestAgent::builder()
        .sts(StsPeer::FaultProxy)
        .config("[server]\nmax_connections_per_caller = 1024\nmax_requests_per_caller = 2000")
        .config(&format!(
            "[sts]\nmax_calls_per_second = 20\nmax_calls_per_caller = {max_calls_per_caller}\nsession_name = \"{{user}}\""
        ))
        .config(&format!("[identity]\ntrusted_proxy_users = [\"{me}\"]"))
        .mappings(|world| {
            let (analytics, engineering) = (world.role("analytics"), world.role("engineering"));
            let bucket = &analytics.bucket;
            // The other user: one session alone, another (a longer duration) during the flood.
            format!(
                "[[mapping]]\nname = \"other-alone\"\nrole = \"{e}\"\nusers = [\"nobody\"]\n\
                 prefixes = [\"s3://{bucket}/alone/\"]\n\
                 [[mapping]]\nname = \"other-during\"\nrole = \"{e}\"\nusers = [\"nobody\"]\nduration = \"2h\"\n",
                e = engineering.arn,
            ) + &support::analytics_rule(world)
        })
        .start()
        .await
}

/// `n` requests at once, each on its own connection (as `n` executors would): their statuses.
async fn burst(h: &TestAgent, queries: Vec<String>) -> Vec<u16> {
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
    futures::future::join_all(queries.into_iter().map(|query| {
        let req = http::Request::get(format!("http://{}/v1/credentials?{query}", h.addr))
            .header("Authorization", &h.token)
            .body(http_body_util::Empty::new())
            .unwrap();
        let client = client.clone();
        async move { client.request(req).await.map(|r| r.status().as_u16()).unwrap_or(0) }
    }))
    .await
}

/// A proxy asks for 400 cold users' sessions at once while `nobody` asks for a session of its own:
/// (proxy answers 200, 429, other; STS calls; nobody's latency alone, its status and latency during).
async fn proxy_flood(h: &TestAgent) -> (usize, usize, usize, u64, u128, u16, u128) {
    let bucket = h.world().role("analytics").bucket.clone();
    let (addr, token) = (h.addr, h.token.clone());
    let victim = |query: String| {
        let token = token.clone();
        tokio::task::spawn_blocking(move || {
            let t = std::time::Instant::now();
            let status = credentials_as_nobody(addr, &token, &query);
            (status, t.elapsed().as_millis())
        })
    };
    let (alone_status, alone_ms) = victim(format!("location=s3://{bucket}/alone/x")).await.unwrap();
    assert_eq!(alone_status, 200);
    let calls_before = h.proxy().assume_role_calls();
    let flood = burst(h, (0..400).map(|i| format!("location=s3://{bucket}/x&user=tenant-{i}")).collect());
    let during = victim(format!("location=s3://{bucket}/during/x"));
    let (flooded, (during_status, during_ms)) = tokio::join!(flood, async { during.await.unwrap() });
    let ok = flooded.iter().filter(|s| **s == 200).count();
    let throttled = flooded.iter().filter(|s| **s == 429).count();
    let calls = h.proxy().assume_role_calls() - calls_before;
    (ok, throttled, 400 - ok - throttled, calls, alone_ms, during_status, during_ms)
}

/// Fairness with the default shares, as bench/run.sh measures it (timings printed, counts asserted): a
/// cold start of 1,000 executors of one user is never throttled; a proxy asking for 400 users' sessions
/// at once is held to its STS share, and another user's request is answered meanwhile — side by side
/// with the same flood when one caller may spend the whole STS budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fairness_with_the_default_shares() {
    if !support::needs_root("fairness_with_the_default_shares") {
        return;
    }
    let h = fairness_agent(10).await;
    let bucket = h.world().role("analytics").bucket.clone();
    let started = std::time::Instant::now();
    let cold = burst(&h, vec![format!("location=s3://{bucket}/part-0"); 1000]).await;
    let cold_ms = started.elapsed().as_millis();
    assert_eq!(cold.iter().filter(|s| **s == 200).count(), 1000, "a cold start of one user is never throttled");
    println!(
        "fairness cold_start requests=1000 ok=1000 sts_calls={} elapsed_ms={cold_ms}",
        h.proxy().assume_role_calls()
    );

    let (ok, throttled, other, calls, alone_ms, during_status, during_ms) = proxy_flood(&h).await;
    assert_eq!(during_status, 200, "another user is served during the flood");
    assert!(throttled > 0 && other == 0, "the proxy was held to its share");
    println!(
        "fairness proxy_flood share=10 users=400 ok={ok} throttled={throttled} other={other} sts_calls={calls} \
         other_user_alone_ms={alone_ms} other_user_during_flood_status={during_status} other_user_during_flood_ms={during_ms}"
    );
    h.stop().await;

    // The same flood when one caller's STS calls are not limited (its calls queue for the whole budget):
    // what the share prevents.
    let shared = (ok, throttled, calls);
    let h = fairness_agent(10_000).await;
    let (ok, throttled, other, calls, alone_ms, during_status, during_ms) = proxy_flood(&h).await;
    // Counted, not timed: without a share nothing is refused for it, and the proxy's requests cause more
    // STS calls than its share allowed above (those still queued past request_timeout end in 504).
    assert_eq!(throttled, 0, "no share, no 429: {ok} ok, {other} other");
    assert_eq!(ok + other, 400);
    assert!(calls > shared.2, "without a share the proxy caused {calls} STS calls, with one {}", shared.2);
    assert!(ok > shared.0, "without a share the proxy got {ok} sessions, with one {}", shared.0);
    println!(
        "fairness proxy_flood share=unlimited users=400 ok={ok} throttled={throttled} other={other} sts_calls={calls} \
         other_user_alone_ms={alone_ms} other_user_during_flood_status={during_status} other_user_during_flood_ms={during_ms}"
    );
    h.stop().await;
}

/// `key` as a client sends it: the whole location percent-encoded once (SPEC §5).
fn location_query(bucket: &str, key: &str, access: &str) -> String {
    let location: String = url_encode(&format!("s3://{bucket}/{key}"));
    format!("location={location}&access={access}")
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_decided_for_its_literal_bytes_and_encoding_cannot_bypass_a_deny() {
    let rules = "[fallback]\nmode = \"deny\"\n\
        [[mapping]]\nname = \"cafe\"\neffect = \"deny\"\nprefixes = [\"s3://lake/café/\"]\n\
        [[mapping]]\nname = \"any-secret\"\neffect = \"deny\"\nprefixes = [\"s3://lake/*/secret/**\"]\n";
    let mut h = TestAgent::builder().sts(StsPeer::Unreachable).config(rules).start().await;
    // (key, the rule that must decide it: None is the fallback)
    let cases = [
        ("x%2Fy/secret/f", Some("any-secret")),
        ("x/secret/f", Some("any-secret")),
        ("x/y/secret/f", None),
        ("100%off.csv", None),
        ("dt=2026-01-01 00%3A00/a+b c", None),
        ("café/x", Some("cafe")),
        ("caf%C3%A9/x", None),
    ];
    for (key, _) in &cases {
        let answer = h.get(&location_query("lake", key, "read")).await;
        assert_eq!((answer.status, answer.body["code"].as_str()), (403, Some("AccessDenied")), "{key}: {:?}", answer);
        if *key == "café/x" {
            // The scope is literal too: a client compares it with the key it holds.
            assert_eq!(answer.body["Scope"].as_str(), Some("s3://lake/café/"), "{:?}", answer);
        }
    }
    let records = h.stop_and_read_audit().await;
    let decided: Vec<&Value> = records.iter().filter(|r| r["event"] == "credentials").collect();
    assert_eq!(decided.len(), cases.len(), "{decided:?}");
    for ((key, rule), record) in cases.iter().zip(&decided) {
        assert_eq!(record["location"].as_str(), Some(format!("s3://lake/{key}").as_str()), "{record}");
        assert_eq!(record["rule_name"].as_str(), *rule, "{key}: {record}");
        assert_eq!(record["access"], "read", "{record}");
    }
}
