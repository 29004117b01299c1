//! `Config::parse` on arbitrary text: never panics, and every error renders (file, line, column,
//! key). A NUL byte splits the input into the config text and a `mappings_file` content, so the
//! EMR formats are reached through the config loader too.
#![no_main]

use std::path::Path;

use emrfs_role_agent::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (config, mappings) = match text.split_once('\0') {
        Some((config, mappings)) => (config, Some((Path::new("/etc/emrfs-role-agent/mappings.json"), mappings))),
        None => (text, None),
    };
    match Config::parse(config, Path::new("/etc/emrfs-role-agent/config.toml"), mappings) {
        Ok(config) => {
            for rule in config.rules.rules() {
                let _ = emrfs_role_agent::cli::describe_rule(rule);
            }
        }
        Err(err) => {
            let shown = err.to_string();
            assert!(!shown.is_empty());
            if let Some(line) = err.line {
                let lines = config.lines().count().max(1) + 1;
                assert!(line >= 1 && line <= lines, "error line {line} outside a {lines}-line text: {shown}");
            }
        }
    }
});
