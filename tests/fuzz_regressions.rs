//! Fuzzing's findings, kept: every input saved under `fuzz/seeds/<target>/` (the seed inputs,
//! and each input that ever made a target fail, minimised) is replayed through the same checks
//! the fuzz targets run (`fuzz/checks.rs`), on the stable toolchain, in the ordinary test suite.
//! FUZZING.md lists the findings and how the targets are run.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files.into_iter().map(|path| (path.clone(), std::fs::read(&path).unwrap())).collect()
}

/// Runs `check` on every saved input of `target`; names every input that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no saved inputs for {target}");
    let failed: Vec<String> = inputs
        .iter()
        .filter(|(_, data)| catch_unwind(AssertUnwindSafe(|| check(data))).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: {} saved input(s) fail: {failed:?}", failed.len());
}

#[test]
fn location_inputs() {
    replay("location", checks::location);
}

#[test]
fn query_inputs() {
    replay("query", checks::query);
}

#[test]
fn config_inputs() {
    replay("config", checks::config);
}

#[test]
fn emr_inputs() {
    replay("emr", checks::emr);
}

/// The config target's first failure (in the check, not the loader): an error in the mappings
/// file carries that file's line number, which the check compared with the config text's length.
#[test]
fn an_error_in_the_mappings_file_names_a_line_of_that_file() {
    let config =
        "mappings_file = \"mappings.json\"\n[[mapping]]\nname = \"first\"\neffect = \"deny\"\nusers = [\"mallory\"]\n";
    let mappings = "{\n\n\n\n\n\n\n\n\n\n\n  \"x\": 1, 2\n}\n";
    let err = emrfs_role_agent::config::Config::parse(
        config,
        std::path::Path::new("/etc/emrfs-role-agent/config.toml"),
        Some((std::path::Path::new("/etc/emrfs-role-agent/mappings.json"), mappings)),
    )
    .unwrap_err();
    assert_eq!(err.file, std::path::Path::new("/etc/emrfs-role-agent/mappings.json"));
    assert_eq!(err.line, Some(12), "{err}");
    checks::config(format!("{config}\0{mappings}").as_bytes());
}
