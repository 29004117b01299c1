//! `explain` predicts `serve`: for every case of the rule table (tests/fixtures/rules.json) the running
//! agent and `explain` name the same rule, role, session name and session policy — the agent's as they
//! reach STS (recorded by the proxy in front of moto), explain's as it prints them — and the same
//! `Scope`, the agent's in its answer (200 and 403 alike). They also agree on the effect: what explain
//! says happens (credentials of a role, the node's own credentials, a refusal) is what the agent
//! answered (status, `AccessKeyId` or `code`) and audited (`outcome`, `status`, `effect`, `source`,
//! `error_code`, `role_arn`, `session_name`, `access_key_id`). And a group without a name (a gid only)
//! is the same group to both.
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

/// What explain's `effect:` line says happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// Credentials of the role on the `role:` line.
    Allow,
    /// A deny rule: 403 AccessDenied.
    DenyRule,
    /// No rule matched; the node's own instance-profile credentials.
    FallbackInstanceProfile,
    /// No rule matched; refused (fallback "deny").
    FallbackDeny,
}

/// What one side says about a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    explain_with_effect(h, user, location).0
}

/// [`explain`], and the effect its `effect:` line names.
fn explain_with_effect(h: &TestAgent, user: &str, location: Option<&str>) -> (Said, Effect) {
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
    let effect_line = field("effect:").unwrap_or_else(|| panic!("explain printed no effect:\n{out}"));
    let effect = if effect_line.starts_with("allow:") {
        Effect::Allow
    } else if effect_line.starts_with("deny:") {
        Effect::DenyRule
    } else if effect_line.contains("instance-profile") {
        Effect::FallbackInstanceProfile
    } else if effect_line.starts_with("refused") {
        Effect::FallbackDeny
    } else {
        panic!("an effect this test does not know: {effect_line}")
    };
    let said = Said {
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
    };
    (said, effect)
}

/// How the agent's answer and its audit record differ from what `effect` (with `said`, explain's
/// rule, role and session name) says must happen; empty when they agree.
fn effect_disagreements(effect: Effect, said: &Said, status: u16, body: &Value, record: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let expect = |wrong: &mut Vec<String>, what: &str, actual: &Value, expected: Value| {
        if *actual != expected {
            wrong.push(format!("{what}: {actual} where explain means {expected}"));
        }
    };
    let (rule, role, session) = match effect {
        Effect::Allow => (
            Value::from(said.rule.as_str()),
            Value::from(said.role.as_deref().unwrap()),
            Value::from(said.session_name.as_deref().unwrap()),
        ),
        Effect::DenyRule => (Value::from(said.rule.as_str()), Value::Null, Value::Null),
        Effect::FallbackInstanceProfile | Effect::FallbackDeny => (Value::Null, Value::Null, Value::Null),
    };
    expect(&mut wrong, "audited rule_name", &record["rule_name"], rule);
    expect(&mut wrong, "audited role_arn", &record["role_arn"], role);
    expect(&mut wrong, "audited session_name", &record["session_name"], session);
    let grants = matches!(effect, Effect::Allow | Effect::FallbackInstanceProfile);
    let (code, outcome, audited_effect) = match effect {
        Effect::Allow => (200, "allow", Value::from("allow")),
        Effect::FallbackInstanceProfile => (200, "allow", Value::Null),
        Effect::DenyRule => (403, "deny", Value::from("deny")),
        Effect::FallbackDeny => (403, "deny", Value::Null),
    };
    expect(&mut wrong, "answered status", &Value::from(status), Value::from(code));
    expect(&mut wrong, "audited status", &record["status"], Value::from(code));
    expect(&mut wrong, "audited outcome", &record["outcome"], Value::from(outcome));
    expect(&mut wrong, "audited effect", &record["effect"], audited_effect);
    if grants {
        // The key handed out is the one audited, and it came from where explain says.
        let key = &body["AccessKeyId"];
        if !key.is_string() {
            wrong.push(format!("no AccessKeyId in the answer {body}"));
        }
        expect(&mut wrong, "audited access_key_id", &record["access_key_id"], key.clone());
        expect(&mut wrong, "audited error_code", &record["error_code"], Value::Null);
        let source = record["source"].as_str().unwrap_or("-");
        let from_where = match effect {
            Effect::Allow => matches!(source, "sts" | "cache"),
            _ => source == "instance-profile",
        };
        if !from_where {
            wrong.push(format!("audited source {source} for {effect:?}"));
        }
    } else {
        // Nothing handed out: no key in the answer or the record, and the refusal says why.
        expect(&mut wrong, "answered AccessKeyId", &body["AccessKeyId"], Value::Null);
        expect(&mut wrong, "answered code", &body["code"], Value::from("AccessDenied"));
        expect(&mut wrong, "audited access_key_id", &record["access_key_id"], Value::Null);
        expect(&mut wrong, "audited source", &record["source"], Value::Null);
        expect(&mut wrong, "audited error_code", &record["error_code"], Value::from("AccessDenied"));
    }
    wrong
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
    // Per decided case: (case number, explain's effect and what it said, the answer's status and body).
    let mut answers = Vec::new();
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
        let (mut predicted, effect) = explain_with_effect(&h, user, location.as_deref());
        let (status, served, body) = serve(&h, &mut sessions, user, location.as_deref()).await;
        assert_eq!(predicted.role.is_some(), effect == Effect::Allow, "case {i}: a role only for an allow");
        if effect == Effect::Allow {
            allowed += 1;
        } else {
            // Fallback or deny: no session of a role; explain printed no duration either.
            predicted.duration = None;
        }
        answers.push((i, effect, Said { duration: None, ..predicted.clone() }, status, body));
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
    // Every effect is exercised, so that each comparison below can fail.
    for effect in [Effect::Allow, Effect::DenyRule, Effect::FallbackInstanceProfile] {
        let n = answers.iter().filter(|a| a.1 == effect).count();
        assert!(n >= 3, "the table has {n} cases of {effect:?}");
    }
    // The rule names: what the agent audited against what explain printed.
    let records: Vec<Value> =
        h.stop_and_read_audit().await.into_iter().filter(|r| r["event"] == "credentials").collect();
    let audited = audited_rules(&records);
    assert_eq!(audited, explained);
    // The effect: what explain says happens against what the agent answered and audited, case by case.
    assert_eq!(records.len(), answers.len(), "one credentials record per decided case");
    let mut wrong_effects = Vec::new();
    for ((i, effect, said, status, body), record) in answers.iter().zip(&records) {
        let wrong = effect_disagreements(*effect, said, *status, body, record);
        if !wrong.is_empty() {
            wrong_effects.push(format!("case {i} ({effect:?}, {}):\n  {}", cases[*i], wrong.join("\n  ")));
        }
    }
    assert!(wrong_effects.is_empty(), "{} cases:\n{}", wrong_effects.len(), wrong_effects.join("\n"));
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
    if !support::needs_root("a_group_without_a_name_is_its_number_to_both (creating OS users)") {
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
