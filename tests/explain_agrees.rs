//! `explain` predicts `serve`: for every case of the rule table (tests/fixtures/rules.json) the running
//! agent and `explain` name the same rule, role, session name and session policy — the agent's as they
//! reach STS (recorded by the proxy in front of moto), explain's as it prints them — and the same
//! `Scope`, the agent's in its answer (200 and 403 alike). And a group without
//! a name (a gid only) is the same group to both.
//!
//! The agent asks as a trusted proxy for each case's user, so both sides look the user up in the OS
//! the same way (an unknown user has no groups); the case's own groups are the rule table's business.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use emrfs_role_agent::caller;
use emrfs_role_agent::cli::write_explanation;
use emrfs_role_agent::location::Location;
use serde_json::Value;
use support::{StsPeer, TestAgent};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// What one side says about a request.
#[derive(Debug, Default, PartialEq, Eq)]
struct Said {
    /// The deciding rule's name, or "fallback".
    rule: String,
    role: Option<String>,
    session_name: Option<String>,
    policy: Option<String>,
    external_id: Option<String>,
    duration: Option<String>,
    /// How far the answer holds (`Scope`); `None` for exactly the location asked for.
    scope: Option<String>,
}

/// The agent with the rule table's rules, templates that use every variable, and moto behind the
/// recording proxy (no IAM enforcement: the table's roles live in accounts moto does not model).
async fn agent(extra: &str) -> TestAgent {
    TestAgent::builder()
        .sts(StsPeer::FaultProxy)
        .world(support::AwsSpec::default_world().without_enforcement())
        .config(&std::fs::read_to_string(fixture("rules.toml")).unwrap())
        .config("[identity]\ntrusted_proxy_users = [\"root\"]")
        .config("[sts]\nsession_name = \"{user}.{cluster_id}.{rule}\"")
        .config(extra)
        .start()
        .await
}

/// `explain` for `user` at `location`, run on the agent's own configuration and node facts.
fn explain(h: &TestAgent, user: &str, location: Option<&str>) -> Said {
    let app = &h.running().app;
    let config = app.config.load();
    let identity = caller::lookup_name(user).unwrap();
    let location = location.map(|l| Location::parse(l).unwrap());
    let mut out = Vec::new();
    write_explanation(&config, &app.node, &identity, location.as_ref(), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let field = |name: &str| out.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim_start().to_owned());
    let decision = field("decision:").unwrap();
    let rule = match decision.split('\'').nth(1) {
        Some(name) => name.to_owned(),
        None => "fallback".to_owned(),
    };
    Said {
        rule,
        role: field("role:"),
        // "name (template …)"
        session_name: field("session:").map(|s| s.split(" (template").next().unwrap().to_owned()),
        policy: field("policy:"),
        external_id: field("external:"),
        duration: field("duration:"),
        // "<scope> (every location …)": a key may hold spaces, so the note is cut off at its own " (".
        scope: field("scope:")
            .filter(|s| !s.contains(" only ("))
            .map(|s| s.rsplit_once(" (every location").map_or(s.clone(), |(scope, _)| scope.to_owned())),
    }
}

/// What the agent did for `user` at `location`: its audit record and, for an allow, the AssumeRole
/// that made the session it handed out.
async fn serve(
    h: &TestAgent,
    sessions: &mut HashMap<String, HashMap<String, String>>,
    user: &str,
    location: Option<&str>,
) -> (u16, Said, Value) {
    let mut query = format!("user={}", urlencode(user));
    if let Some(l) = location {
        query.push_str(&format!("&location={}", urlencode(l)));
    }
    let calls_before = h.proxy().assume_role_requests().len();
    let answer = h.get(&query).await;
    let calls = h.proxy().assume_role_requests();
    let key = answer.body["AccessKeyId"].as_str().unwrap_or_default().to_owned();
    if calls.len() > calls_before {
        assert_eq!(calls.len(), calls_before + 1, "one AssumeRole per new session");
        sessions.insert(key.clone(), calls.last().unwrap().clone());
    }
    let call = sessions.get(&key);
    let param = |name: &str| call.and_then(|c| c.get(name)).cloned();
    let said = Said {
        rule: String::new(),
        role: param("RoleArn"),
        session_name: param("RoleSessionName"),
        policy: param("Policy"),
        external_id: param("ExternalId"),
        duration: param("DurationSeconds")
            .map(|s| emrfs_role_agent::text::format_duration(std::time::Duration::from_secs(s.parse().unwrap()))),
        scope: answer.body["Scope"].as_str().map(str::to_owned),
    };
    (answer.status, said, answer.body)
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The rule each credentials record names, in order.
fn audited_rules(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["event"] == "credentials")
        .map(|r| r["rule_name"].as_str().unwrap_or("fallback").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_and_serve_agree_on_every_case_of_the_rule_table() {
    let mut h = agent("").await;
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(fixture("rules.json")).unwrap()).unwrap();
    let mut sessions = HashMap::new();
    let mut explained = Vec::new();
    let mut disagreements = Vec::new();
    let mut allowed = 0;
    let mut scoped = 0;
    for (i, case) in cases.iter().enumerate() {
        let user = case["user"].as_str().unwrap();
        let location = support::case_location(case);
        if location.as_deref().is_some_and(|l| Location::parse(l).is_err()) {
            // Both refuse: the agent with 400, explain as a usage error (tests/cli.rs).
            let answer =
                h.get(&format!("user={}&location={}", urlencode(user), urlencode(location.as_deref().unwrap()))).await;
            // Refused before any decision: counted in a `refused` record, not one of its own.
            assert_eq!(answer.status, 400, "case {i}: {case}");
            continue;
        }
        let mut predicted = explain(&h, user, location.as_deref());
        let (status, served, body) = serve(&h, &mut sessions, user, location.as_deref()).await;
        let allow = predicted.role.is_some();
        if allow {
            allowed += 1;
            assert_eq!(status, 200, "case {i}: {case}: {body}");
        } else {
            assert!(status == 200 || status == 403, "case {i}: {case}: {body}");
            // Fallback or deny: no session of a role; explain printed no duration either.
            predicted.duration = None;
        }
        scoped += usize::from(served.scope.is_some());
        let mut served = served;
        served.rule.clone_from(&predicted.rule);
        if predicted != served {
            disagreements.push(format!("case {i} ({case}):\n  explain {predicted:?}\n  serve   {served:?}"));
        }
        explained.push(predicted.rule);
    }
    assert!(disagreements.is_empty(), "{} disagreements:\n{}", disagreements.len(), disagreements.join("\n"));
    assert!(allowed >= 20, "the table exercises allow rules ({allowed})");
    assert!(scoped >= 20, "most answers carry a scope ({scoped})");
    // The rule names: what the agent audited against what explain printed.
    let audited = audited_rules(&h.stop_and_read_audit().await);
    assert_eq!(audited, explained);
    // The table's options reached STS: a generated scope policy, a rule's own policy, an external id, a duration.
    let calls = h.proxy().assume_role_requests();
    assert!(calls.iter().any(|c| c.get("Policy").is_some_and(|p| p.contains("arn:aws:s3:::corp-data/reports/*"))));
    assert!(calls.iter().any(|c| c.get("Policy").is_some_and(|p| p.contains("\"Resource\":\"*\""))));
    assert!(calls.iter().any(|c| c.get("ExternalId").map(String::as_str) == Some("lake-ext-1")));
    assert!(calls.iter().any(|c| c.get("DurationSeconds").map(String::as_str) == Some("7200")));
}

/// A group that exists only as a number (the user's primary gid has no group entry) is that number to
/// `serve` and to `explain` alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_without_a_name_is_its_number_to_both() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root: this test must run there");
        eprintln!("SKIPPED a_group_without_a_name_is_its_number_to_both: creating OS users needs root");
        return;
    }
    let (user, group, gid) = ("emrfs-gid-only", "emrfs-gid-only-grp", 47_321);
    let admin = |args: &[&str]| Command::new(args[0]).args(&args[1..]).output().unwrap();
    admin(&["userdel", user]);
    admin(&["groupdel", "-f", group]);
    assert!(admin(&["groupadd", "-g", &gid.to_string(), group]).status.success());
    assert!(admin(&["useradd", "-M", "-N", "-g", group, user]).status.success());
    // The group goes; the user keeps its gid, which now has no name.
    let removed = admin(&["groupdel", "-f", group]);
    let identity = caller::lookup_name(user);
    let h = agent(&format!(
        "[[mapping]]\nname = \"by-gid\"\nrole = \"arn:aws:iam::111111111199:role/by-gid\"\ngroups = [\"{gid}\"]\n"
    ))
    .await;
    // (The override's [[mapping]] array takes the place of the table's.)
    let location = "s3://no-rule-names-this-bucket/k";
    let predicted = explain(&h, user, Some(location));
    let mut sessions = HashMap::new();
    let (status, served, body) = serve(&h, &mut sessions, user, Some(location)).await;
    admin(&["userdel", user]);
    assert!(removed.status.success(), "groupdel -f: {}", String::from_utf8_lossy(&removed.stderr));
    assert_eq!(identity.unwrap().groups, vec![gid.to_string()]);
    assert_eq!(predicted.rule, "by-gid");
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.role, predicted.role);
    assert_eq!(served.session_name, predicted.session_name);
    h.stop().await;
}
