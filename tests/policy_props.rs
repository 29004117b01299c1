//! The session policy `scope_to_prefix` generates, evaluated the way IAM evaluates it (`*` any run of
//! characters, `/` included; `?` any one character; `${*}`, `${?}`, `${$}` literal), never allows a
//! location the rule's prefix does not match: neither an object nor a listing. Random prefixes (plain,
//! globs with nested alternatives, segment wildcards, bucket wildcards) and random locations; a prefix
//! the generator cannot make exact must be refused instead.

use emrfs_role_agent::location::Location;
use emrfs_role_agent::policy;
use emrfs_role_agent::rules::Prefix;
use proptest::prelude::*;
use serde_json::Value;

const BUCKETS: &[&str] = &["bkt", "bkz", "bkt-a", "bkt-b"];

/// IAM's wildcard match of `value` against `pattern`.
fn iam_matches(pattern: &str, value: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Any,
        One,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        if let Some(lit) = ["${*}", "${?}", "${$}"].iter().find(|l| rest.starts_with(**l)) {
            tokens.push(Token::Char(lit.chars().nth(2).unwrap()));
            rest = &rest[lit.len()..];
            continue;
        }
        tokens.push(match c {
            '*' => Token::Any,
            '?' => Token::One,
            c => Token::Char(c),
        });
        rest = &rest[c.len_utf8()..];
    }
    let value: Vec<char> = value.chars().collect();
    // matched[j]: the tokens so far match value[..j].
    let mut matched = vec![false; value.len() + 1];
    matched[0] = true;
    for token in tokens {
        let mut next = vec![false; value.len() + 1];
        for j in 0..=value.len() {
            next[j] = match token {
                Token::Any => matched[j] || (j > 0 && next[j - 1]),
                Token::One => j > 0 && matched[j - 1],
                Token::Char(c) => j > 0 && matched[j - 1] && value[j - 1] == c,
            };
        }
        matched = next;
    }
    matched[value.len()]
}

/// What the policy lets the credentials do at `location`: read/write its object, list below its key.
fn allows(policy: &Value, location: &Location) -> (bool, bool) {
    let object = format!("arn:aws:s3:::{}/{}", location.bucket(), location.key());
    let bucket = format!("arn:aws:s3:::{}", location.bucket());
    let mut object_allowed = false;
    let mut list_allowed = false;
    for statement in policy["Statement"].as_array().unwrap() {
        let resources: Vec<&str> = match &statement["Resource"] {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|r| r.as_str().unwrap()).collect(),
            _ => vec![],
        };
        if statement["Action"] == "s3:ListBucket" {
            let prefixes = statement["Condition"]["StringLike"]["s3:prefix"].as_array().unwrap();
            list_allowed |= resources.iter().any(|r| iam_matches(r, &bucket))
                && prefixes.iter().any(|p| iam_matches(p.as_str().unwrap(), location.key()));
        } else if statement["Sid"] == "ObjectsUnderPrefix" {
            object_allowed |= resources.iter().any(|r| iam_matches(r, &object));
        }
    }
    (object_allowed, list_allowed)
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("a".to_owned()),
        4 => Just("b".to_owned()),
        4 => Just("/".to_owned()),
        1 => Just("*".to_owned()),
        1 => Just("?".to_owned()),
        1 => Just("[ab]".to_owned()),
        2 => Just("{a,b/}".to_owned()),
        2 => Just("{a,{b,ab}}".to_owned()),
        1 => Just("\\*".to_owned()),
    ]
}

fn prefix() -> impl Strategy<Value = String> {
    let key = proptest::collection::vec(piece(), 0..5).prop_map(|p| p.concat());
    let bucket = prop_oneof![
        proptest::sample::select(BUCKETS).prop_map(str::to_owned),
        Just("bkt-*".to_owned()),
        Just("{bkt,bkz}".to_owned()),
    ];
    (bucket, key, any::<bool>()).prop_map(|(b, k, tail)| format!("s3://{b}/{k}{}", if tail { "**" } else { "" }))
}

fn location() -> impl Strategy<Value = Location> {
    let key = proptest::collection::vec(prop_oneof![Just('a'), Just('b'), Just('/'), Just('*')], 0..7);
    (proptest::sample::select(BUCKETS), key)
        .prop_map(|(b, k)| Location::new(b, &k.into_iter().collect::<String>()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn a_generated_policy_allows_nothing_outside_the_rule(
        prefix in prefix(),
        locations in proptest::collection::vec(location(), 1..24),
    ) {
        let Ok(prefix) = Prefix::parse(&prefix) else { return Ok(()) };
        if policy::check("aws", &prefix).is_err() {
            return Ok(());
        }
        let policy: Value = serde_json::from_str(&policy::scope_policy("aws", &prefix)).unwrap();
        for location in locations {
            let (object, list) = allows(&policy, &location);
            prop_assert!(!object || prefix.matches(&location), "{} grants the object {}", prefix, location);
            prop_assert!(!list || prefix.matches(&location), "{} grants listing {}", prefix, location);
        }
    }
}

/// The attack from the field: a bucket wildcard let `team-*-prod/*` reach `team-dev/x-prod/...`.
#[test]
fn the_cross_bucket_wildcard_is_refused_and_exact_forms_still_reach_their_objects() {
    let wide = Prefix::parse("s3://team-*-prod/**").unwrap();
    assert!(policy::check("aws", &wide).unwrap_err().contains("other buckets"));
    assert!(iam_matches("arn:aws:s3:::team-*-prod/*", "arn:aws:s3:::team-dev/x-prod/y"), "the IAM matcher is IAM's");
    let exact = Prefix::parse("s3://{bkt-a,bkt-b}/exports/**").unwrap();
    let policy: Value = serde_json::from_str(&policy::scope_policy("aws", &exact)).unwrap();
    for (location, granted) in
        [("s3://bkt-a/exports/x/y", true), ("s3://bkt-b/exports/z", true), ("s3://bkt-a/other", false)]
    {
        let location = Location::parse(location).unwrap();
        assert_eq!(allows(&policy, &location).0, granted, "{location}");
    }
}
