//! The session cache and STS client in the running agent, against moto behind a fault-injecting
//! proxy: single flight, refresh ahead, stale serving during an outage, throttling and the call
//! rate, negative caching. Time moves on a [`ManualClock`]; nothing here sleeps an hour.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::join_all;
use emrfs_role_agent::clock::ManualClock;
use emrfs_role_agent::daemon::Running;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use serde_json::Value;
use support::{AwsSpec, AwsWorld, Fault, FaultProxy, Moto, MotoOptions};

const MIN: Duration = Duration::from_secs(60);

struct Harness {
    _moto: Moto,
    world: AwsWorld,
    proxy: FaultProxy,
    clock: Arc<ManualClock>,
    agent: Option<Running>,
    dir: tempfile::TempDir,
    token: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Harness {
    /// An agent on 127.0.0.1:0 whose STS is the proxy; `extra` is TOML added to the config
    /// (it must not repeat the `[server]`/`[sts]`/`[audit]` keys set here).
    async fn start(sts_extra: &str, rest: &str) -> Harness {
        let moto = Moto::start(MotoOptions::default());
        let world = moto.setup(&AwsSpec::default_world());
        let proxy = FaultProxy::start(moto.addr());
        let dir = tempfile::tempdir().unwrap();
        let token = format!("token-{}", std::process::id());
        std::fs::write(dir.path().join("token"), &token).unwrap();
        let analytics = world.role("analytics");
        let text = format!(
            r#"
[server]
listen = ["127.0.0.1:0"]
token_file = "{dir}/token"
[identity]
trusted_proxy_users = ["root"]
[sts]
region = "us-east-1"
endpoint_url = "{sts}"
call_timeout = "2s"
{sts_extra}
[audit]
path = "{dir}/audit.log"
durability = "buffered"
{rest}
[[mapping]]
name = "analytics"
role = "{role}"
prefixes = ["s3://{bucket}/"]
"#,
            dir = dir.path().display(),
            sts = proxy.url(),
            role = analytics.arn,
            bucket = analytics.bucket,
        );
        // The manual clock starts at the real time: moto dates its credentials by the real clock.
        #[allow(clippy::disallowed_methods)]
        let clock = Arc::new(ManualClock::new(SystemTime::now()));
        let agent = support::start_agent(&text, dir.path(), world.source_credentials(), clock.clone()).await;
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Harness { _moto: moto, world, proxy, clock, agent: Some(agent), dir, token, client }
    }

    fn agent(&self) -> &Running {
        self.agent.as_ref().unwrap()
    }

    fn bucket(&self) -> String {
        self.world.role("analytics").bucket.clone()
    }

    async fn get(&self, query: &str) -> Answer {
        let uri = format!("http://{}/v1/credentials?{query}", self.agent().addrs[0]);
        let req = http::Request::get(uri).header("Authorization", &self.token).body(Empty::new()).unwrap();
        let res = self.client.request(req).await.expect("agent answers");
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    async fn credentials(&self) -> Answer {
        self.get(&format!("location=s3://{}/data/", self.bucket())).await
    }

    /// The audit records so far (flushed first).
    async fn audit(&mut self) -> Vec<Value> {
        let agent = self.agent.take().unwrap();
        agent.stop("test").await;
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn credential_sources(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["event"] == "credentials")
        .map(|r| format!("{}:{}", r["status"], r["source"].as_str().unwrap_or("-")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_burst_for_one_key_costs_one_assume_role() {
    let h = Harness::start("", "").await;
    // Hold STS back so every request arrives while the first call is in flight.
    h.proxy.set(Fault::Delay(Duration::from_millis(500)));
    let answers = join_all((0..500).map(|_| h.credentials())).await;
    assert!(answers.iter().all(|a| a.status == 200), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    let keys: std::collections::HashSet<_> = answers.iter().map(|a| a.body["AccessKeyId"].to_string()).collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(h.proxy.assume_role_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_keys_cost_fifty_assume_roles() {
    let h = Harness::start(r#"session_name = "{user}""#, "").await;
    h.proxy.set(Fault::Delay(Duration::from_millis(300)));
    let bucket = h.bucket();
    let queries: Vec<String> =
        (0..500).map(|i| format!("location=s3://{bucket}/x&user=user{:02}", i % 50)).collect();
    let answers = join_all(queries.iter().map(|q| h.get(q))).await;
    let failed: Vec<_> = answers.iter().filter(|a| a.status != 200).map(|a| (a.status, &a.body)).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(h.proxy.assume_role_calls(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sts_outage_serves_stale_credentials_then_503() {
    let mut h = Harness::start("", "").await;
    let first = h.credentials().await;
    assert_eq!(first.status, 200);
    h.proxy.set(Fault::Down);

    // Past refresh (30 min before expiry of a 1 h session, plus at most 3 min of jitter): STS
    // is down, the old ones are served.
    h.clock.advance(34 * MIN);
    let stale = h.credentials().await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body["AccessKeyId"], first.body["AccessKeyId"]);
    // Within the retry pause no new attempt is made.
    let refused = h.proxy.refused();
    assert_eq!(h.credentials().await.status, 200);
    assert_eq!(h.proxy.refused(), refused);

    // Down to min_remaining_when_stale (5 min): nothing valid is left.
    h.clock.advance(22 * MIN);
    let gone = h.credentials().await;
    assert_eq!(gone.status, 503);
    assert_eq!(gone.body["code"], "CredentialsUnavailable");

    // STS back: served again.
    h.proxy.set(Fault::Pass);
    let back = h.credentials().await;
    assert_eq!(back.status, 200);
    assert_ne!(back.body["AccessKeyId"], first.body["AccessKeyId"]);
    let sources = credential_sources(&h.audit().await);
    assert_eq!(sources, ["200:sts", "200:stale", "200:stale", "503:-", "200:sts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_refreshed_ahead_only_while_someone_asks() {
    let h = Harness::start("", "[cache]\nidle_timeout = \"45m\"").await;
    let first = h.credentials().await;
    assert_eq!(h.proxy.assume_role_calls(), 1);

    // Not yet due: the refresher does nothing.
    h.clock.advance(20 * MIN);
    assert_eq!(h.agent().app.cache.refresh_due().await, 0);
    assert_eq!(h.credentials().await.body["AccessKeyId"], first.body["AccessKeyId"]);

    // Due (30 min before expiry, plus at most 3 min of jitter): refreshed in the background,
    // and the next request gets the new session from cache.
    h.clock.advance(14 * MIN);
    assert_eq!(h.agent().app.cache.refresh_due().await, 1);
    assert_eq!(h.proxy.assume_role_calls(), 2);
    let second = h.credentials().await;
    assert_ne!(second.body["AccessKeyId"], first.body["AccessKeyId"]);
    assert_eq!(h.proxy.assume_role_calls(), 2);

    // Nobody asks for 45 minutes: the session is dropped, not refreshed.
    h.clock.advance(46 * MIN);
    assert_eq!(h.agent().app.cache.refresh_due().await, 0);
    assert_eq!(h.proxy.assume_role_calls(), 2);
    assert!(h.agent().app.cache.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_within_the_call_rate() {
    let h = Harness::start("max_calls_per_second = 4", "").await;
    h.proxy.set(Fault::Throttle);
    let answer = h.credentials().await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    let calls = h.proxy.assume_role_calls();
    assert!(calls >= 2, "throttled calls are retried ({calls} made)");
    // The limiter spaces calls 250 ms apart, so a fifth call comes a full second after the
    // first; the window is a little shorter than that because the proxy sees arrivals, which
    // network and connection set-up delay by different amounts.
    assert!(h.proxy.max_assume_role_in(Duration::from_millis(900)) <= 4);
    // Throttling is not remembered as a refusal: the next request succeeds.
    h.proxy.set(Fault::Pass);
    assert_eq!(h.credentials().await.status, 200);

    // A 5xx is retried too: STS recovers while the agent is still trying.
    let bucket = h.bucket();
    h.proxy.set(Fault::ServerError);
    let before = h.proxy.assume_role_calls();
    let proxy = h.proxy.control();
    let heal = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        proxy.set(Fault::Pass);
    });
    let answer = h.get(&format!("location=s3://{bucket}/y&user=someone-else")).await;
    heal.await.unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(h.proxy.assume_role_calls() - before >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sts_refusal_is_cached_for_negative_cache() {
    let h = Harness::start("negative_cache = \"30s\"", "").await;
    h.proxy.set(Fault::AccessDenied);
    let denied = h.credentials().await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.body["code"], "AccessDenied");
    let request_id = h.proxy.fault_request_ids().pop().expect("the proxy answered with a request id");
    assert!(denied.body["message"].as_str().unwrap().contains(&request_id), "{}", denied.body);
    assert_eq!(h.proxy.assume_role_calls(), 1);

    h.proxy.set(Fault::Pass);
    assert_eq!(h.credentials().await.status, 403);
    assert_eq!(h.proxy.assume_role_calls(), 1, "the refusal was remembered");
    h.clock.advance(Duration::from_secs(31));
    assert_eq!(h.credentials().await.status, 200);
    assert_eq!(h.proxy.assume_role_calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_behind_a_failed_call_share_its_answer() {
    let h = Harness::start("", "").await;
    h.proxy.set(Fault::Down);
    // Twenty requests for one key with STS down and nothing cached: one call (with its retries)
    // fails within call_timeout (2s) and every request gets that answer, instead of each queued
    // request spending its own call_timeout until request_timeout (10s) cuts the last ones off.
    let answers = join_all((0..20).map(|_| h.credentials())).await;
    let codes: Vec<_> = answers.iter().map(|a| (a.status, a.body["code"].as_str().unwrap_or("").to_owned())).collect();
    assert!(codes.iter().all(|(s, c)| *s == 503 && c == "CredentialsUnavailable"), "{codes:?}");
}
