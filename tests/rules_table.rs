//! The rule engine against the case table in tests/fixtures/rules.json, decided by the rule set in
//! tests/fixtures/rules.toml. Each case: user, groups, location (or null), access (absent: read and
//! write) → the deciding rule's name,
//! "fallback", or "invalid" (the location does not parse).

mod support;

use std::path::{Path, PathBuf};

use emrfs_role_agent::config::Config;
use emrfs_role_agent::location::Location;
use emrfs_role_agent::rules::{Decision, Request};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn decide(config: &Config, case: &Value) -> String {
    let user = case["user"].as_str().expect("user");
    let groups: Vec<String> =
        case["groups"].as_array().expect("groups").iter().map(|g| g.as_str().expect("group").to_owned()).collect();
    let location = match support::case_location(case) {
        None => None,
        Some(l) => match Location::parse(&l) {
            Ok(l) => Some(l),
            Err(_) => return "invalid".into(),
        },
    };
    let access = case.get("access").map(|a| a.as_str().expect("access").parse().expect("read or write"));
    match config.rules.decide(&Request { user, groups: &groups, location: location.as_ref(), access }) {
        Decision::Rule { rule, .. } => rule.name.clone(),
        Decision::Fallback => "fallback".into(),
    }
}

#[test]
fn case_table_decides_as_expected() {
    let config = Config::load(&fixture("rules.toml")).expect("fixture config is valid");
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("rules.json")).unwrap()).expect("rules.json");
    assert!(cases.len() >= 80, "the table has {} cases", cases.len());
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let got = decide(&config, case);
        let want = case["expect"].as_str().expect("expect");
        if got != want {
            failures.push(format!("case {i} ({}): expected {want}, got {got}: {case}", case["note"]));
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_rule_of_the_fixture_decides_some_case() {
    let config = Config::load(&fixture("rules.toml")).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(fixture("rules.json")).unwrap()).unwrap();
    for rule in config.rules.rules() {
        assert!(
            cases.iter().any(|c| c["expect"] == rule.name.as_str()),
            "rule '{}' is not exercised by rules.json",
            rule.name
        );
    }
    for outcome in ["fallback", "invalid"] {
        assert!(cases.iter().any(|c| c["expect"] == outcome));
    }
}

#[test]
fn matched_prefix_is_reported() {
    let config = Config::load(&fixture("rules.toml")).unwrap();
    let loc = Location::parse("s3n://shared-b/k").unwrap();
    let groups = vec![];
    match config.rules.decide(&Request { user: "u", groups: &groups, location: Some(&loc), access: None }) {
        Decision::Rule { rule, matched_prefix: Some(p) } => {
            assert_eq!(rule.name, "multi-prefix");
            assert_eq!(p.as_str(), "s3://shared-b/");
            assert!(!p.is_glob());
        }
        other => panic!("unexpected {other:?}"),
    }
    match config.rules.decide(&Request { user: "u", groups: &["analysts".to_string()], location: None, access: None }) {
        Decision::Rule { rule, matched_prefix: None } => assert_eq!(rule.name, "analysts-anywhere"),
        other => panic!("unexpected {other:?}"),
    }
}
