//! What the fuzz targets check, one function per target, shared with the regression tests
//! (`tests/fuzz_regressions.rs` includes this file and replays every saved input through it).
//! Each function panics on a finding: a parser panic, or a broken promise of the parsed value.

use std::path::Path;

use emrfs_role_agent::api::parse_query;
use emrfs_role_agent::cli::{describe_rule, import_text};
use emrfs_role_agent::config::Config;
use emrfs_role_agent::emr;
use emrfs_role_agent::location::{Location, MAX_KEY_BYTES};

/// `Location::parse` never panics, and a parsed location's normalised form parses back to the
/// same location (the promise in src/location.rs).
pub fn location(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(location) = Location::parse(text) {
        let shown = location.to_string();
        let again = Location::parse(&shown).unwrap_or_else(|e| panic!("normalised form {shown:?} does not parse: {e}"));
        assert_eq!(again, location, "normalised form {shown:?} parses to another location");
        assert!(location.key().len() <= MAX_KEY_BYTES);
    }
}

/// The `/v1/credentials` query-string parser on arbitrary bytes (as a request target may carry
/// them) never panics; a `location` it accepts goes on to `Location::parse` as in the handler.
pub fn query(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    match parse_query(&raw) {
        Ok((location, user)) => {
            assert_ne!(user.as_deref(), Some(""), "an empty user is refused");
            if let Some(location) = location {
                let _ = Location::parse(&location).map(|l| l.to_string());
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }
}

/// `Config::parse` never panics, and every error renders with a line inside the file it names.
/// A NUL byte splits the input into the config text and a `mappings_file` content, so the EMR
/// formats are reached through the config loader too.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (config, mappings) = match text.split_once('\0') {
        Some((config, mappings)) => (config, Some((Path::new("/etc/emrfs-role-agent/mappings.json"), mappings))),
        None => (text, None),
    };
    match Config::parse(config, Path::new("/etc/emrfs-role-agent/config.toml"), mappings) {
        Ok(config) => {
            for rule in config.rules.rules() {
                let _ = describe_rule(rule);
            }
        }
        Err(err) => {
            let shown = err.to_string();
            assert!(!shown.is_empty());
            if let Some(line) = err.line {
                // The line is in whichever file the error names.
                let text = match mappings {
                    Some((path, content)) if err.file == path => content,
                    _ => config,
                };
                let lines = text.lines().count().max(1) + 1;
                assert!(line >= 1 && line <= lines, "error line {line} outside a {lines}-line text: {shown}");
            }
        }
    }
}

/// The EMR import formats (security configuration JSON, describe-security-configuration output,
/// emrfs-site roleMapping) never panic; and whatever `import` prints loads as `[[mapping]]` TOML
/// into exactly the rules that the same text gives as a `mappings_file`.
pub fn emr(data: &[u8]) {
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
}
