//! Invalid configurations. Every file in tests/fixtures/invalid/*.toml starts with
//! `# expect: [<file>:]<line> <key> | <message fragment>`; loading it must fail with an error naming that
//! file, line and key, and `check` on it must exit 78 with the same message on stderr.

use std::path::{Path, PathBuf};
use std::process::Command;

use emrfs_role_agent::config::{Config, ConfigError};

struct Expect {
    file: PathBuf,
    line: usize,
    key: String,
    fragment: String,
}

fn invalid_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid")
}

fn fixtures() -> Vec<(PathBuf, Expect)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(invalid_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let header = text.lines().next().unwrap().strip_prefix("# expect: ").unwrap_or_else(|| panic!("{path:?}"));
        let (head, fragment) = header.split_once(" | ").unwrap();
        let (place, key) = head.split_once(' ').unwrap();
        let (file, line) = match place.rsplit_once(':') {
            Some((f, l)) => (invalid_dir().join(f), l),
            None => (path.clone(), place),
        };
        out.push((
            path.clone(),
            Expect { file, line: line.parse().unwrap(), key: key.into(), fragment: fragment.into() },
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 40, "only {} invalid fixtures", out.len());
    out
}

fn check_error(path: &Path, want: &Expect, err: &ConfigError) -> Result<(), String> {
    let msg = err.to_string();
    let prefix = format!("{}:{}:", want.file.display(), want.line);
    if err.file != want.file || err.line != Some(want.line) || err.key != want.key {
        return Err(format!("{}: expected {prefix} {}, got {msg}", path.display(), want.key));
    }
    if !msg.starts_with(&prefix) || !msg.contains(&format!(": {}: ", want.key)) || !msg.contains(&want.fragment) {
        return Err(format!("{}: message '{msg}' lacks {prefix} / key / '{}'", path.display(), want.fragment));
    }
    Ok(())
}

#[test]
fn every_invalid_fixture_names_file_line_and_key() {
    let mut failures = Vec::new();
    for (path, want) in fixtures() {
        match Config::load(&path) {
            Ok(_) => failures.push(format!("{}: loaded without error", path.display())),
            Err(e) => {
                if let Err(f) = check_error(&path, &want, &e) {
                    failures.push(f);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn check_exits_78_on_every_invalid_fixture() {
    let bin = env!("CARGO_BIN_EXE_emrfs-role-agent");
    let mut failures = Vec::new();
    for (path, want) in fixtures() {
        let out = Command::new(bin).arg("check").arg("--config").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let prefix = format!("{}:{}:", want.file.display(), want.line);
        if out.status.code() != Some(78) || !stderr.contains(&prefix) || !stderr.contains(&want.key) {
            failures.push(format!("{}: exit {:?}, stderr {stderr}", path.display(), out.status.code()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn parse_err(text: &str) -> ConfigError {
    Config::parse(text, Path::new("/etc/emrfs-role-agent/config.toml"), None).expect_err(text)
}

#[test]
fn display_has_file_line_column_key_message() {
    let e = parse_err("[[mapping]]\neffect = \"deny\"\n[[mapping]]\nrole = \"arn:aws:iam::12:role/x\"\n");
    assert!(
        e.to_string().starts_with("/etc/emrfs-role-agent/config.toml:4:8: mapping[1].role: not an IAM role ARN"),
        "{e}"
    );
    assert_eq!(e.column, Some(8));
}

#[test]
fn columns_count_characters_not_bytes() {
    let e = parse_err("[[mapping]]\nusers = [\"é\", \"\"]\nrole = \"arn:aws:iam::123456789012:role/a\"\n");
    assert_eq!((e.line, e.column, e.key.as_str()), (Some(2), Some(15), "mapping[0].users[1]"));
}

#[test]
fn unreadable_config_names_the_file() {
    let e = Config::load(Path::new("/nonexistent/emrfs-role-agent.toml")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/emrfs-role-agent.toml: "), "{e}");
    assert!(e.to_string().contains("cannot read"), "{e}");
}

#[test]
fn mappings_file_named_but_not_supplied_to_pure_parse() {
    let e = parse_err("mappings_file = \"m.json\"\n");
    assert_eq!((e.line, e.key.as_str()), (Some(1), "mappings_file"));
}

#[test]
fn valid_edge_values_are_accepted() {
    let ok = |t: &str| Config::parse(t, Path::new("c.toml"), None).unwrap_or_else(|e| panic!("{t}: {e}"));
    let c = ok("[server]\nlisten = [\"127.0.0.2:1\", \"[::1]:9944\", \"127.0.0.1:0\"]\n");
    assert_eq!(c.server.listen.len(), 3);
    let c =
        ok("[sts]\nsession_duration = \"12h\"\nrefresh_before_expiry = \"9h\"\nmin_remaining_when_stale = \"0s\"\n");
    assert_eq!(c.sts.session_duration.as_secs(), 12 * 3600);
    let c =
        ok("[sts]\nsession_duration = \"21m\"\nrefresh_before_expiry = \"15m1s\"\nmin_remaining_when_stale = \"1m\"\n");
    assert_eq!(c.sts.refresh_before_expiry.as_secs(), 901);
    let c = ok("[[mapping]]\nrole = \"arn:aws:iam::123456789012:role/a\"\nexternal_id = \"ab\"\nduration = \"12h\"\n");
    assert_eq!(c.rules.rules()[0].external_id.as_deref(), Some("ab"));
    let c = ok(&format!(
        "[[mapping]]\nrole = \"arn:aws:iam::123456789012:role/a\"\nexternal_id = \"{}\"\n",
        "a:/=,.@+-".repeat(136)
    ));
    assert_eq!(c.rules.rules()[0].external_id.as_ref().unwrap().len(), 1224);
    let c = ok("[[mapping]]\nrole = \"arn:aws:iam::123456789012:role/a\"\nduration = \"40m\"\n");
    assert_eq!(c.rules.rules()[0].duration, Some(std::time::Duration::from_secs(2400)));
    let c = ok("[audit]\npath = \"audit.log\"\n[server]\ntoken_file = \"token\"\n");
    assert_eq!(c.server.token_file, Path::new("token"));
}
