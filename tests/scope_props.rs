//! `Scope` against the rule engine: for random rule sets (plain prefixes and globs, allow and deny, rules
//! for other users) and random locations, every location under the scope of an answer is decided by the
//! same rule with the same matched prefix — so the same role, session and session policy.

use emrfs_role_agent::location::Location;
use emrfs_role_agent::rules::{Decision, Effect, Prefix, Request, RoleArn, Rule, RuleSet};
use emrfs_role_agent::scope::scope_of;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::sync::atomic::{AtomicUsize, Ordering};

const BUCKETS: &[&str] = &["bkt", "bkz", "abc"];

/// Keys over a small alphabet, so that rules and locations collide often.
fn key(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![Just('a'), Just('b'), Just('/'), Just('é')], 0..max)
        .prop_map(|cs| cs.into_iter().collect())
}

fn glob_key() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("/".to_owned()),
            Just("*".to_owned()),
            Just("**".to_owned()),
            Just("?".to_owned()),
            Just("{a,b}".to_owned()),
            Just("[ab]".to_owned()),
        ],
        1..6,
    )
    .prop_map(|parts| parts.concat())
}

fn prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        (proptest::sample::select(BUCKETS), key(5)).prop_map(|(b, k)| format!("s3://{b}/{k}")),
        (proptest::sample::select(BUCKETS), glob_key()).prop_map(|(b, k)| format!("s3://{b}/{k}")),
        glob_key().prop_map(|k| format!("s3://b*/{k}")),
    ]
}

fn rule() -> impl Strategy<Value = (bool, Option<&'static str>, Vec<String>)> {
    (
        any::<bool>(),
        proptest::option::of(proptest::sample::select(&["u", "v"][..])),
        proptest::collection::vec(prefix(), 1..3),
    )
}

fn rule_set(specs: Vec<(bool, Option<&'static str>, Vec<String>)>) -> Option<RuleSet> {
    let mut rules = Vec::new();
    for (index, (allow, user, prefixes)) in specs.into_iter().enumerate() {
        let effect = if allow {
            Effect::Allow(RoleArn::parse("arn:aws:iam::111111111111:role/r").unwrap())
        } else {
            Effect::Deny
        };
        rules.push(Rule {
            index,
            name: format!("r{index}"),
            effect,
            users: user.into_iter().map(str::to_owned).collect(),
            groups: vec![],
            prefixes: prefixes.iter().map(|p| Prefix::parse(p)).collect::<Result<_, _>>().ok()?,
            access: None,
            external_id: None,
            duration: None,
            session_policy: None,
            scope_to_prefix: false,
        });
    }
    RuleSet::new(rules).ok()
}

/// Which rule and which of its prefixes decided.
fn outcome(rules: &RuleSet, location: &Location) -> (Option<usize>, Option<String>) {
    match rules.decide(&Request { user: "u", groups: &[], location: Some(location), access: None }) {
        Decision::Rule { rule, matched_prefix } => (Some(rule.index), matched_prefix.map(|p| p.as_str().to_owned())),
        Decision::Fallback => (None, None),
    }
}

/// Cases (of 4000) that must have reached a scope to check: a change to the generators or to which
/// decisions have a scope that leaves the property vacuous fails here.
const MIN_CHECKED: usize = 2500;

#[test]
fn every_location_under_a_scope_is_decided_alike() {
    let config = ProptestConfig { cases: 4000, source_file: Some(file!()), ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let checked = AtomicUsize::new(0);
    let strategy = (
        proptest::collection::vec(rule(), 1..5),
        proptest::sample::select(BUCKETS),
        key(7),
        proptest::collection::vec(key(5), 1..12),
    );
    let result = runner.run(&strategy, |(specs, bucket, key, suffixes)| {
        let Some(rules) = rule_set(specs) else { return Ok(()) };
        let location = Location::new(bucket, &key).unwrap();
        let req = Request { user: "u", groups: &[], location: Some(&location), access: None };
        let decision = rules.decide(&req);
        let Some(scope) = scope_of(&rules, &req, &decision) else { return Ok(()) };
        checked.fetch_add(1, Ordering::Relaxed);
        prop_assert!(scope.covers(&location), "{scope} does not cover {location}");
        prop_assert!(location.to_string().starts_with(&scope.to_string()));
        let expected = outcome(&rules, &location);
        for suffix in suffixes {
            let other = Location::new(scope.bucket(), &format!("{}{suffix}", scope.key_prefix())).unwrap();
            prop_assert_eq!(
                outcome(&rules, &other),
                expected.clone(),
                "{} under {} decides otherwise than {}",
                other,
                scope,
                location
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let checked = checked.into_inner();
    println!("{checked} of 4000 cases had a scope to check");
    assert!(checked >= MIN_CHECKED, "only {checked} of 4000 cases had a scope to check");
}

/// With plain prefixes only the scope is exact: one character shorter, some location under it decides
/// otherwise.
#[test]
fn plain_prefix_scopes_are_the_shortest() {
    let rules = rule_set(vec![
        (false, None, vec!["s3://bkt/exports/secret/".into()]),
        (true, None, vec!["s3://bkt/exports/".into()]),
        (true, Some("v"), vec!["s3://bkt/".into()]),
    ])
    .unwrap();
    let location = Location::parse("s3://bkt/exports/2026/part-0").unwrap();
    let req = Request { user: "u", groups: &[], location: Some(&location), access: None };
    let scope = scope_of(&rules, &req, &rules.decide(&req)).unwrap();
    assert_eq!(scope.to_string(), "s3://bkt/exports/2");
    // One shorter: `s3://bkt/exports/` also holds `secret/`, which the deny rule decides.
    let secret = Location::parse("s3://bkt/exports/secret/x").unwrap();
    assert_ne!(outcome(&rules, &secret), outcome(&rules, &location));
}
