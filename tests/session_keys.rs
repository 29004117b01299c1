//! Everything that shapes a session is part of its cache key, and reaches STS: for each field (role,
//! session name, external id, source identity, duration, session policy), two rules that differ only in
//! that field never share a session, and the AssumeRole calls (recorded by the proxy in front of moto)
//! carry each rule's own value. Two rules that differ in nothing that shapes a session do share one.

mod support;

use std::collections::HashMap;

use support::{AwsSpec, StsPeer, TestAgent};

/// Two rules, `a` (for `s3://<bucket>/a/`) and `b` (for `s3://<bucket>/b/`), each with the given extra
/// TOML lines; one request under each. The AssumeRole parameters of each answer's session.
async fn sessions(sts: &str, a: &str, b: &str) -> (usize, [HashMap<String, String>; 2]) {
    let (a, b) = (a.to_owned(), b.to_owned());
    let h = TestAgent::builder()
        .sts(StsPeer::FaultProxy)
        .world(AwsSpec::default_world().without_enforcement())
        .config(&format!("[sts]\n{sts}"))
        .mappings(move |world| {
            let (analytics, engineering) = (&world.role("analytics").arn, &world.role("engineering").arn);
            let bucket = &world.role("analytics").bucket;
            let rule = |name: &str, extra: &str| {
                // The rule's own role line, if it has one, replaces the shared role.
                let role = if extra.contains("role =") { String::new() } else { format!("role = \"{analytics}\"\n") };
                let extra = extra.replace("{other}", engineering);
                format!("[[mapping]]\nname = \"{name}\"\n{role}prefixes = [\"s3://{bucket}/{name}/\"]\n{extra}\n")
            };
            rule("a", &a) + &rule("b", &b)
        })
        .start()
        .await;
    let bucket = h.world().role("analytics").bucket.clone();
    let mut keys = Vec::new();
    for prefix in ["a", "b"] {
        let answer = h.get(&format!("location=s3://{bucket}/{prefix}/x")).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        keys.push(answer.body["AccessKeyId"].as_str().unwrap().to_owned());
    }
    let calls = h.proxy().assume_role_requests();
    let distinct = if keys[0] == keys[1] { 1 } else { 2 };
    assert_eq!(calls.len(), distinct, "one AssumeRole per session");
    let last = calls.last().unwrap().clone();
    (distinct, [calls[0].clone(), last])
}

async fn differ_only_in(field: &str, sts: &str, a: &str, b: &str) -> [HashMap<String, String>; 2] {
    let (distinct, calls) = sessions(sts, a, b).await;
    assert_eq!(distinct, 2, "rules differing in {field} shared a session");
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_differing_in_nothing_that_shapes_a_session_share_one() {
    let (distinct, _) = sessions("", "", "").await;
    assert_eq!(distinct, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role() {
    let [a, b] = differ_only_in("role", "", "", "role = \"{other}\"").await;
    assert!(a["RoleArn"].ends_with("/analytics") && b["RoleArn"].ends_with("/engineering"), "{a:?} {b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_name() {
    let [a, b] = differ_only_in("session name", "session_name = \"job-{rule}\"", "", "").await;
    assert_eq!((a["RoleSessionName"].as_str(), b["RoleSessionName"].as_str()), ("job-a", "job-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_id() {
    let [a, b] = differ_only_in("external id", "", "external_id = \"ext-1\"", "external_id = \"ext-2\"").await;
    assert_eq!((a["ExternalId"].as_str(), b["ExternalId"].as_str()), ("ext-1", "ext-2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_identity() {
    let [a, b] = differ_only_in("source identity", "source_identity = \"src-{rule}\"", "", "").await;
    assert_eq!((a["SourceIdentity"].as_str(), b["SourceIdentity"].as_str()), ("src-a", "src-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration() {
    let [a, b] = differ_only_in("duration", "", "duration = \"1h\"", "duration = \"2h\"").await;
    assert_eq!((a["DurationSeconds"].as_str(), b["DurationSeconds"].as_str()), ("3600", "7200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_policy() {
    let policy = |action: &str| {
        format!(
            r#"session_policy = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}'"#
        )
    };
    let [a, b] = differ_only_in("session policy", "", &policy("s3:GetObject"), &policy("s3:PutObject")).await;
    assert!(a["Policy"].contains("s3:GetObject") && b["Policy"].contains("s3:PutObject"), "{a:?} {b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_scope_policy() {
    let [a, b] = differ_only_in("scope policy", "", "scope_to_prefix = true", "scope_to_prefix = true").await;
    assert!(a["Policy"].contains("/a/*") && b["Policy"].contains("/b/*"), "{a:?} {b:?}");
}
