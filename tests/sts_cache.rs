//! The session cache and STS client in the running agent, against moto behind a fault-injecting
//! proxy: single flight, refresh ahead, stale serving during an outage, throttling and the call
//! rate, negative caching. Time moves on a [`ManualClock`]; nothing here sleeps an hour.

mod support;

use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;
use support::{Answer, Fault, StsPeer, TestAgent};

const MIN: Duration = Duration::from_secs(60);

/// An agent on a manual clock whose STS is moto behind the fault proxy, with one rule: the
/// analytics role for its bucket. `sts` is added to `[sts]`, `rest` is more TOML.
async fn harness(sts: &str, rest: &str) -> TestAgent {
    TestAgent::builder()
        .sts(StsPeer::FaultProxy)
        .manual_clock()
        .config("[identity]\ntrusted_proxy_users = [\"root\"]")
        .config(&format!("[sts]\n{sts}"))
        .config(rest)
        .mappings(support::analytics_rule)
        .start()
        .await
}

fn bucket(h: &TestAgent) -> String {
    h.world().role("analytics").bucket.clone()
}

async fn credentials(h: &TestAgent) -> Answer {
    h.get(&format!("location=s3://{}/data/", bucket(h))).await
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
    let h = harness("", "").await;
    // Hold STS back so every request arrives while the first call is in flight.
    h.proxy().set(Fault::Delay(Duration::from_millis(500)));
    let answers = join_all((0..500).map(|_| credentials(&h))).await;
    assert!(answers.iter().all(|a| a.status == 200), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    let keys: std::collections::HashSet<_> = answers.iter().map(|a| a.body["AccessKeyId"].to_string()).collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(h.proxy().assume_role_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_keys_cost_fifty_assume_roles() {
    let h = harness(r#"session_name = "{user}""#, "").await;
    h.proxy().set(Fault::Delay(Duration::from_millis(300)));
    let bucket = bucket(&h);
    let queries: Vec<String> = (0..500).map(|i| format!("location=s3://{bucket}/x&user=user{:02}", i % 50)).collect();
    let answers = join_all(queries.iter().map(|q| h.get(q))).await;
    let failed: Vec<_> = answers.iter().filter(|a| a.status != 200).map(|a| (a.status, &a.body)).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(h.proxy().assume_role_calls(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sts_outage_serves_stale_credentials_then_503() {
    let mut h = harness("", "").await;
    let first = credentials(&h).await;
    assert_eq!(first.status, 200);
    h.proxy().set(Fault::Down);

    // Past refresh (30 min before expiry of a 1 h session, plus at most 3 min of jitter): STS
    // is down, the old ones are served.
    h.manual_clock().advance(34 * MIN);
    let stale = credentials(&h).await;
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert_eq!(stale.body["AccessKeyId"], first.body["AccessKeyId"]);
    // Within the retry pause no new attempt is made.
    let refused = h.proxy().refused();
    assert_eq!(credentials(&h).await.status, 200);
    assert_eq!(h.proxy().refused(), refused);

    // Down to min_remaining_when_stale (5 min): nothing valid is left.
    h.manual_clock().advance(22 * MIN);
    let gone = credentials(&h).await;
    assert_eq!(gone.status, 503);
    assert_eq!(gone.body["code"], "CredentialsUnavailable");

    // STS back: served again.
    h.proxy().set(Fault::Pass);
    let back = credentials(&h).await;
    assert_eq!(back.status, 200);
    assert_ne!(back.body["AccessKeyId"], first.body["AccessKeyId"]);
    let sources = credential_sources(&h.stop_and_read_audit().await);
    assert_eq!(sources, ["200:sts", "200:stale", "200:stale", "503:-", "200:sts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_refreshed_ahead_only_while_someone_asks() {
    // The refresher is driven by hand here (its own ticks never come): what it does is counted.
    let h = TestAgent::builder()
        .sts(StsPeer::FaultProxy)
        .manual_clock()
        .refresh_interval(Duration::from_secs(24 * 3600))
        .config("[cache]\nidle_timeout = \"45m\"")
        .mappings(support::analytics_rule)
        .start()
        .await;
    let first = credentials(&h).await;
    assert_eq!(h.proxy().assume_role_calls(), 1);

    // Not yet due: the refresher does nothing.
    h.manual_clock().advance(20 * MIN);
    assert_eq!(h.running().app.cache.refresh_due().await, 0);
    assert_eq!(credentials(&h).await.body["AccessKeyId"], first.body["AccessKeyId"]);

    // Due (30 min before expiry, plus at most 3 min of jitter): refreshed in the background,
    // and the next request gets the new session from cache.
    h.manual_clock().advance(14 * MIN);
    assert_eq!(h.running().app.cache.refresh_due().await, 1);
    assert_eq!(h.proxy().assume_role_calls(), 2);
    let second = credentials(&h).await;
    assert_ne!(second.body["AccessKeyId"], first.body["AccessKeyId"]);
    assert_eq!(h.proxy().assume_role_calls(), 2);

    // Nobody asks for 45 minutes: the session is dropped, not refreshed.
    h.manual_clock().advance(46 * MIN);
    assert_eq!(h.running().app.cache.refresh_due().await, 0);
    assert_eq!(h.proxy().assume_role_calls(), 2);
    assert!(h.running().app.cache.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_refresher_renews_due_sessions_on_its_own() {
    let h = TestAgent::builder()
        .sts(StsPeer::FaultProxy)
        .manual_clock()
        .refresh_interval(Duration::from_millis(20))
        .mappings(support::analytics_rule)
        .start()
        .await;
    let first = credentials(&h).await;
    assert_eq!(h.proxy().assume_role_calls(), 1);
    // Due (30 min before expiry, plus at most 3 min of jitter): nobody calls refresh_due; the
    // daemon's own ticker must notice, and the next request gets the new session from cache.
    h.manual_clock().advance(34 * MIN);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.proxy().assume_role_calls() < 2 {
        assert!(std::time::Instant::now() < deadline, "the background refresher never called STS");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = credentials(&h).await;
    assert_ne!(second.body["AccessKeyId"], first.body["AccessKeyId"]);
    assert_eq!(h.proxy().assume_role_calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_within_the_call_rate() {
    let h = harness("max_calls_per_second = 1", "").await;
    h.proxy().set(Fault::Throttle);
    let started = std::time::Instant::now();
    let answer = credentials(&h).await;
    let elapsed = started.elapsed();
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    let calls = h.proxy().assume_role_calls();
    assert!(calls >= 2, "throttled calls are retried ({calls} made)");
    // The limiter spaces calls a second apart, so however slow this machine is, no more than one
    // call plus one per second of the request's life can have been made. Without it the jittered
    // backoff (50 ms doubling) would have made about eight within call_timeout.
    assert!(calls as f64 <= 1.0 + elapsed.as_secs_f64(), "{calls} calls in {elapsed:?}");
    // Throttling is not remembered as a refusal: the next request succeeds.
    h.proxy().set(Fault::Pass);
    assert_eq!(credentials(&h).await.status, 200);

    // A 5xx is retried too: STS recovers while the agent is still trying.
    let bucket = bucket(&h);
    h.proxy().set(Fault::ServerError);
    let before = h.proxy().assume_role_calls();
    let proxy = h.proxy().control();
    // STS heals once the first call has failed: the agent must try again to succeed.
    let heal = tokio::spawn(async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while proxy.assume_role_calls() == before && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.set(Fault::Pass);
    });
    let answer = h.get(&format!("location=s3://{bucket}/y&user=someone-else")).await;
    heal.await.unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(h.proxy().assume_role_calls() - before >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sts_refusal_is_cached_for_negative_cache() {
    let h = harness("negative_cache = \"30s\"", "").await;
    h.proxy().set(Fault::AccessDenied);
    let denied = credentials(&h).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.body["code"], "AccessDenied");
    let request_id = h.proxy().fault_request_ids().pop().expect("the proxy answered with a request id");
    assert!(denied.body["message"].as_str().unwrap().contains(&request_id), "{}", denied.body);
    assert_eq!(h.proxy().assume_role_calls(), 1);

    h.proxy().set(Fault::Pass);
    assert_eq!(credentials(&h).await.status, 403);
    assert_eq!(h.proxy().assume_role_calls(), 1, "the refusal was remembered");
    h.manual_clock().advance(Duration::from_secs(31));
    assert_eq!(credentials(&h).await.status, 200);
    assert_eq!(h.proxy().assume_role_calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_behind_a_failed_call_share_its_answer() {
    let h = harness("", "").await;
    h.proxy().set(Fault::Down);
    // Twenty requests for one key with STS down and nothing cached: one call (with its retries)
    // fails within call_timeout (2s) and every request gets that answer, instead of each queued
    // request spending its own call_timeout until request_timeout (10s) cuts the last ones off.
    let answers = join_all((0..20).map(|_| credentials(&h))).await;
    let codes: Vec<_> = answers.iter().map(|a| (a.status, a.body["code"].as_str().unwrap_or("").to_owned())).collect();
    assert!(codes.iter().all(|(s, c)| *s == 503 && c == "CredentialsUnavailable"), "{codes:?}");
}
