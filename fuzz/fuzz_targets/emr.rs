//! The EMR import formats (security configuration JSON, describe-security-configuration output,
//! emrfs-site roleMapping) on arbitrary text: never panic; and whatever `import` prints loads as
//! `[[mapping]]` TOML into exactly the rules that the same text gives as a `mappings_file`.
#![no_main]

use std::path::Path;

use emrfs_role_agent::cli::{describe_rule, import_text};
use emrfs_role_agent::config::Config;
use emrfs_role_agent::emr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = emr::parse(text);
    let rules = emr::parse_rules(text, 0);
    assert!(parsed.is_ok() || rules.is_err(), "parse_rules cannot succeed where parse fails");
    let Ok((_, rules)) = rules else { return };
    let toml = import_text(text).expect("import succeeds where parse_rules does");
    let source = Path::new("/etc/emrfs-role-agent/config.toml");
    let via_mappings = Config::parse(
        "mappings_file = \"mappings\"\n",
        source,
        Some((Path::new("/etc/emrfs-role-agent/mappings"), text)),
    );
    let via_import = Config::parse(&toml, source, None);
    match (via_mappings, via_import) {
        (Ok(a), Ok(b)) => {
            let a: Vec<String> = a.rules.rules().iter().map(describe_rule).collect();
            let b: Vec<String> = b.rules.rules().iter().map(describe_rule).collect();
            assert_eq!(a, b, "imported TOML:\n{toml}");
            assert_eq!(a.len(), rules.len());
        }
        (Err(a), Err(_)) => {
            let _ = a.to_string();
        }
        (a, b) => panic!(
            "mappings_file and imported TOML disagree: mappings_file {:?}, import {:?}\nTOML:\n{toml}",
            a.err().map(|e| e.to_string()),
            b.err().map(|e| e.to_string())
        ),
    }
});
