//! `import` round trip: for every EMR sample in tests/fixtures/emr/, the rules read through
//! `mappings_file` and the rules printed by `import` (then loaded as `[[mapping]]`) are the same and
//! decide every request of the case tables identically; all forms of one configuration agree; and the
//! expected decisions of emr/cases*.json hold.

use std::path::{Path, PathBuf};
use std::process::Command;

use emrfs_role_agent::cli::import_text;
use emrfs_role_agent::config::Config;
use emrfs_role_agent::location::Location;
use emrfs_role_agent::rules::{Decision, Request};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

const BASIC: [&str; 3] =
    ["security-configuration.json", "describe-security-configuration.json", "emrfs-site-rolemapping.txt"];
const EXTENDED: [&str; 3] = [
    "security-configuration-extended.json",
    "describe-security-configuration-extended.json",
    "emrfs-site-rolemapping-extended.txt",
];

fn cases(name: &str) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

/// Every request of every case table (the main table and the EMR ones).
fn all_requests() -> Vec<Value> {
    let mut v = cases("rules.json");
    v.extend(cases("emr/cases.json"));
    v.extend(cases("emr/cases-extended.json"));
    v
}

/// (rule name, role, effect, matched prefix) or "fallback" / "invalid".
fn outcome(config: &Config, case: &Value) -> String {
    let groups: Vec<String> = case["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().into()).collect();
    let mut loc = case["location"].as_str().map(str::to_owned);
    if let (Some(l), Some(a)) = (loc.as_mut(), case.get("append")) {
        l.push_str(&a["text"].as_str().unwrap().repeat(a["times"].as_u64().unwrap() as usize));
    }
    let location = match loc.map(|l| Location::parse(&l)) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(_)) => return "invalid".into(),
    };
    let req =
        Request { user: case["user"].as_str().unwrap(), groups: &groups, location: location.as_ref(), access: None };
    match config.rules.decide(&req) {
        Decision::Rule { rule, matched_prefix } => format!(
            "{} {} {} {}",
            rule.name,
            rule.effect,
            rule.effect.role().map_or("-", |r| r.as_str()),
            matched_prefix.map_or("-", |p| p.as_str())
        ),
        Decision::Fallback => "fallback".into(),
    }
}

fn via_mappings_file(dir: &Path, sample: &str) -> Config {
    let config = dir.join(format!("{sample}.toml"));
    let text = format!("mappings_file = {:?}\n", fixtures().join("emr").join(sample).to_str().unwrap());
    std::fs::write(&config, text).unwrap();
    Config::load(&config).unwrap_or_else(|e| panic!("{sample}: {e}"))
}

fn via_import(sample: &str) -> Config {
    let text = std::fs::read_to_string(fixtures().join("emr").join(sample)).unwrap();
    let toml = import_text(&text).unwrap_or_else(|e| panic!("{sample}: {e}"));
    Config::parse(&toml, Path::new("imported.toml"), None).unwrap_or_else(|e| panic!("{sample}: {e}\n{toml}"))
}

#[test]
fn imported_rules_decide_like_the_mappings_file() {
    let dir = tempfile::tempdir().unwrap();
    let requests = all_requests();
    for sample in BASIC.iter().chain(EXTENDED.iter()) {
        let a = via_mappings_file(dir.path(), sample);
        let b = via_import(sample);
        assert_eq!(a.rules, b.rules, "{sample}: imported rules differ");
        for case in &requests {
            assert_eq!(outcome(&a, case), outcome(&b, case), "{sample}: {case}");
        }
    }
}

#[test]
fn the_three_forms_agree() {
    let dir = tempfile::tempdir().unwrap();
    for forms in [BASIC, EXTENDED] {
        let configs: Vec<Config> = forms.iter().map(|s| via_mappings_file(dir.path(), s)).collect();
        assert!(!configs[0].rules.rules().is_empty());
        for c in &configs[1..] {
            assert_eq!(c.rules, configs[0].rules, "{forms:?}");
        }
    }
}

#[test]
fn expected_decisions_of_the_emr_samples() {
    let dir = tempfile::tempdir().unwrap();
    for (forms, table) in [(BASIC, "emr/cases.json"), (EXTENDED, "emr/cases-extended.json")] {
        for sample in forms {
            for config in [via_mappings_file(dir.path(), sample), via_import(sample)] {
                for case in cases(table) {
                    let got = outcome(&config, &case);
                    let name = got.split(' ').next().unwrap();
                    assert_eq!(name, case["expect"].as_str().unwrap(), "{sample}: {case}");
                }
            }
        }
    }
}

#[test]
fn mappings_file_rules_follow_inline_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::copy(fixtures().join("emr/emrfs-site-rolemapping.txt"), dir.path().join("m.txt")).unwrap();
    // Relative to the configuration file's directory, not to the working directory.
    std::fs::write(
        &config,
        "mappings_file = \"m.txt\"\n[[mapping]]\nname = \"first\"\neffect = \"deny\"\nusers = [\"etl\"]\n",
    )
    .unwrap();
    let c = Config::load(&config).unwrap();
    let names: Vec<(usize, &str)> = c.rules.rules().iter().map(|r| (r.index, r.name.as_str())).collect();
    assert_eq!(names, [(0, "first"), (1, "emr-0"), (2, "emr-1"), (3, "emr-2")]);
    assert_eq!(c.mappings_file.as_deref(), Some(dir.path().join("m.txt").as_path()));
    let req = Request { user: "etl", groups: &[], location: None, access: None };
    assert!(matches!(c.rules.decide(&req), Decision::Rule { rule, .. } if rule.name == "first"));
}

#[test]
fn import_command_output_passes_check() {
    let bin = env!("CARGO_BIN_EXE_emrfs-role-agent");
    let dir = tempfile::tempdir().unwrap();
    for sample in BASIC.iter().chain(EXTENDED.iter()) {
        let out = Command::new(bin).arg("import").arg(fixtures().join("emr").join(sample)).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{sample}: {}", String::from_utf8_lossy(&out.stderr));
        let toml = String::from_utf8(out.stdout).unwrap();
        assert!(toml.contains("[[mapping]]"), "{toml}");
        let path = dir.path().join("imported.toml");
        std::fs::write(&path, &toml).unwrap();
        let check = Command::new(bin).arg("check").arg("--config").arg(&path).output().unwrap();
        assert_eq!(check.status.code(), Some(0), "{sample}: {}", String::from_utf8_lossy(&check.stderr));
        let summary = String::from_utf8(check.stdout).unwrap();
        assert!(summary.contains("emr-0"), "{summary}");
    }
}

#[test]
fn import_of_an_invalid_file_exits_78_naming_line_and_key() {
    let bin = env!("CARGO_BIN_EXE_emrfs-role-agent");
    let file = fixtures().join("invalid/emr-bad-arn.txt");
    let out = Command::new(bin).arg("import").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:2:", file.display())) && stderr.contains("roleMapping[1].Role"), "{stderr}");
}
