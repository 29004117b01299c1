//! Properties of the location normaliser: it never panics, and normalising is idempotent —
//! `parse(display(parse(x))) == parse(x)` whenever `parse(x)` succeeds.

use emrfs_role_agent::location::Location;
use emrfs_role_agent::rules::Prefix;
use emrfs_role_agent::template::{Template, TemplateVars};
use proptest::prelude::*;

fn assert_idempotent(input: &str) -> Result<(), TestCaseError> {
    if let Ok(loc) = Location::parse(input) {
        let shown = loc.to_string();
        let again = Location::parse(&shown);
        prop_assert_eq!(again.as_ref(), Ok(&loc), "input {:?} displayed as {:?}", input, shown);
        prop_assert_eq!(again.unwrap().to_string(), shown);
    }
    Ok(())
}

fn scheme() -> impl Strategy<Value = String> {
    prop_oneof![Just("s3"), Just("s3a"), Just("s3n"), Just("S3"), Just("S3A"), Just("s3N"), Just("http"), Just("")]
        .prop_map(str::to_owned)
}

fn bucket() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]",
        1 => ".{0,70}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_input(input in ".{0,300}") {
        let _ = Location::parse(&input);
        let _ = Prefix::parse(&input);
        assert_idempotent(&input)?;
    }

    #[test]
    fn never_panics_on_arbitrary_s3_like_input(s in scheme(), b in bucket(), key in ".{0,200}", sep in "(://|:/|//|)") {
        let input = format!("{s}{sep}{b}/{key}");
        let _ = Prefix::parse(&input);
        assert_idempotent(&input)?;
    }

    #[test]
    fn structured_locations_roundtrip(s in scheme(), b in "[a-z0-9][a-z0-9-]{1,30}[a-z0-9]", key in "\\PC{0,100}") {
        prop_assume!(!s.is_empty() && s != "http");
        let input = format!("{s}://{b}/{key}");
        let loc = Location::parse(&input).map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))?;
        prop_assert_eq!(loc.bucket(), b.as_str());
        prop_assert_eq!(loc.key(), key.as_str());
        assert_idempotent(&input)?;
    }

    #[test]
    fn percent_sequences_are_taken_literally(b in "[a-z]{3,10}", key in "([a-z0-9/]|%[0-9A-Fa-f]{2}|%25[0-9A-F]{2}|%|%[g-z]){0,20}") {
        // Keys are bytes (SPEC §5): nothing in a key is decoded, and no `%` is an error.
        let input = format!("s3://{b}/{key}");
        let loc = Location::parse(&input).map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))?;
        prop_assert_eq!(loc.key(), key.as_str());
        prop_assert_eq!(loc.to_string(), input.clone());
        assert_idempotent(&input)?;
    }

    #[test]
    fn plain_prefix_matches_every_location_under_it(b in "[a-z]{3,10}", p in "[a-z/]{0,10}", rest in "\\PC{0,20}") {
        let prefix = Prefix::parse(&format!("s3://{b}/{p}")).unwrap();
        let loc = Location::parse(&format!("s3a://{b}/{p}{rest}")).unwrap();
        prop_assert!(prefix.matches(&loc));
        let other = Location::parse(&format!("s3://{b}x/{p}{rest}")).unwrap();
        prop_assert!(!prefix.matches(&other));
    }

    #[test]
    fn rendered_session_names_satisfy_sts(t in ".{0,40}", user in ".{0,100}", rule in ".{0,20}") {
        if let Ok(template) = Template::parse(&t) {
            let s = template.render(&TemplateVars { user: &user, cluster_id: "j-1", instance_id: "i-1", rule: &rule });
            prop_assert!((2..=64).contains(&s.len()), "{:?}", s);
            prop_assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)), "{:?}", s);
        }
    }
}
