//! The `check`, `explain` and `import` commands, through the built binary and through the library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use emrfs_role_agent::caller::Identity;
use emrfs_role_agent::cli::write_explanation;
use emrfs_role_agent::config::{
    AuditConfig, CacheConfig, Config, FallbackMode, IdentityConfig, ServerConfig, StsConfig,
};
use emrfs_role_agent::location::Location;
use emrfs_role_agent::node::{NodeInfo, UNKNOWN};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example() -> PathBuf {
    root().join("config/example.toml")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emrfs-role-agent"))
        .args(args)
        .env_remove("EMRFS_ROLE_AGENT_CONFIG")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn example_config_loads_with_every_default() {
    let c = Config::load(&example()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.server, ServerConfig::default());
    assert_eq!(c.identity, IdentityConfig::default());
    assert_eq!(c.sts, StsConfig::default());
    assert_eq!(c.cache, CacheConfig::default());
    assert_eq!(c.audit, AuditConfig::default());
    assert_eq!(c.fallback, FallbackMode::InstanceProfile);
    assert_eq!(c.mappings_file, None);
    assert!(c.rules.rules().len() >= 3);
}

#[test]
fn example_config_shows_every_key() {
    let text = std::fs::read_to_string(example()).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let expect: &[(&str, &[&str])] = &[
        (
            "server",
            &["listen", "token_file", "require_token", "max_connections", "header_read_timeout", "request_timeout"],
        ),
        ("identity", &["trusted_proxy_users", "group_cache_ttl"]),
        (
            "sts",
            &[
                "region",
                "endpoint_url",
                "session_duration",
                "refresh_before_expiry",
                "min_remaining_when_stale",
                "session_name",
                "source_identity",
                "max_calls_per_second",
                "call_timeout",
                "negative_cache",
            ],
        ),
        ("cache", &["max_sessions", "idle_timeout"]),
        ("audit", &["path", "durability"]),
        ("fallback", &["mode"]),
        ("imds", &["listen", "exempt_users", "exempt_uids_below", "upstream"]),
        ("access_grants", &["endpoint_url", "privilege", "duration"]),
    ];
    for (table, keys) in expect {
        let t = doc[*table].as_table().unwrap_or_else(|| panic!("[{table}] missing"));
        for k in *keys {
            assert!(t.contains_key(*k), "{table}.{k} missing from config/example.toml");
        }
    }
    assert!(doc.contains_key("mappings_file"));
    let mapping_keys = [
        "name",
        "effect",
        "role",
        "users",
        "groups",
        "prefixes",
        "access",
        "external_id",
        "duration",
        "session_policy",
        "scope_to_prefix",
    ];
    let mappings = doc["mapping"].as_array().unwrap();
    for k in mapping_keys {
        assert!(mappings.iter().any(|m| m.as_table().unwrap().contains_key(k)), "mapping key {k} not shown");
    }
}

#[test]
fn check_prints_the_rules_in_order() {
    let o = run(&["check", "--config", example().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    let c = Config::load(&example()).unwrap();
    let mut last = 0;
    for r in c.rules.rules() {
        let at = out.find(&format!("{}  {}", r.name, r.effect)).unwrap_or_else(|| panic!("{} missing:\n{out}", r.name));
        assert!(at > last, "rules out of order:\n{out}");
        last = at;
    }
    assert!(out.contains("configuration is valid"), "{out}");
    assert!(out.contains("fallback:      instance-profile"), "{out}");
}

#[test]
fn check_warns_when_emr_role_mappings_are_active_beside_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = std::fs::read_to_string(root().join("tests/fixtures/emr/emrfs-site-rolemapping.txt")).unwrap();
    let core = dir.path().join("core-site.xml");
    std::fs::write(
        &core,
        format!(
            "<?xml version=\"1.0\"?>\n<configuration>\n  <property><name>fs.s3a.authorization.roleMapping</name>\
             <value>{}</value></property>\n</configuration>\n",
            mapping.trim()
        ),
    )
    .unwrap();
    let quiet = dir.path().join("emrfs-site.xml");
    std::fs::write(
        &quiet,
        "<configuration><property><name>fs.s3.consistent</name><value>false</value></property></configuration>",
    )
    .unwrap();
    let missing = dir.path().join("nonexistent.xml");
    let args = |sites: &[&Path]| {
        let mut a = vec!["check".to_owned(), "--config".into(), example().to_str().unwrap().into()];
        for s in sites {
            a.extend(["--hadoop-site".to_owned(), s.to_str().unwrap().to_owned()]);
        }
        a
    };
    let o =
        Command::new(env!("CARGO_BIN_EXE_emrfs-role-agent")).args(args(&[&core, &quiet, &missing])).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "a warning is not an error: {}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains(&format!("{}:3: fs.s3a.authorization.roleMapping is set", core.display())), "{out}");
    // What the warning says to run works on that very file.
    let imported = run(&["import", core.to_str().unwrap()]);
    assert_eq!(imported.status.code(), Some(0), "{}", String::from_utf8_lossy(&imported.stderr));
    assert_eq!(stdout(&imported).matches("[[mapping]]").count(), 3);
    let o = Command::new(env!("CARGO_BIN_EXE_emrfs-role-agent")).args(args(&[&quiet])).output().unwrap();
    assert!(!stdout(&o).contains("warning:"), "{}", stdout(&o));
}

#[test]
fn check_with_mappings_checks_the_local_file_in_place_of_the_installed_one() {
    // The guide's config names the path the bootstrap installs the mappings at, which a workstation lacks.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "mappings_file = \"/etc/emrfs-role-agent/mappings\"\n").unwrap();
    let good = root().join("tests/fixtures/emr/security-configuration.json");
    let o = run(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(78), "without --mappings the installed path is read: {}", stdout(&o));
    let o = run(&["check", "--config", config.to_str().unwrap(), "--mappings", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("mappings_file: /etc/emrfs-role-agent/mappings (checked: {})", good.display())),
        "{out}"
    );
    assert!(out.contains("emr-0"), "{out}");
    // explain decides with them the same way.
    let o = run(&[
        "explain",
        "--config",
        config.to_str().unwrap(),
        "--mappings",
        good.to_str().unwrap(),
        "--user",
        "nobody",
        "--groups",
        "analysts",
        "s3://any-bucket/k",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("decision:  rule 1 'emr-1'"), "{}", stdout(&o));
    // A mistake in the mappings is named in the file that was checked.
    let bad = dir.path().join("mappings.json");
    std::fs::write(&bad, "arn:aws:iam::1:role/x=u:alice").unwrap();
    let o = run(&["check", "--config", config.to_str().unwrap(), "--mappings", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(78));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:1:1: roleMapping[0].Role", bad.display())), "{err}");
    // Mappings the config would never read are an error, not a silent pass.
    let bare = dir.path().join("bare.toml");
    std::fs::write(&bare, "").unwrap();
    let o = run(&["check", "--config", bare.to_str().unwrap(), "--mappings", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(78));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("mappings_file: not set"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `check` says when the metadata listener is on a port any local user could bind (a squatter would take
/// redirected users' tokens while the agent is down), and not for the default, which only root can bind.
#[test]
fn check_warns_of_a_metadata_port_any_user_could_bind() {
    let unprivileged_from: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .map_or(1024, |s| s.trim().parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    for port in [9945u16, 254] {
        let squattable = port >= unprivileged_from;
        std::fs::write(&config, format!("[imds]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
        let o = run(&["check", "--config", config.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let warned = stdout(&o).lines().any(|l| l.starts_with("warning: imds.listen"));
        assert_eq!(warned, squattable, "port {port}: {}", stdout(&o));
    }
}

#[test]
fn check_of_a_missing_file_exits_78() {
    let o = run(&["check", "--config", "/nonexistent/config.toml"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/config.toml"));
}

#[test]
fn check_reads_the_config_path_from_the_environment() {
    let o = Command::new(env!("CARGO_BIN_EXE_emrfs-role-agent"))
        .arg("check")
        .env("EMRFS_ROLE_AGENT_CONFIG", example())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn explain_names_rule_role_session_and_earlier_rules() {
    let o = run(&[
        "explain",
        "--config",
        example().to_str().unwrap(),
        "--user",
        "alice",
        "--groups",
        "staff,analysts",
        "s3a://team-red/shared/q1/report.csv",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    for want in [
        "user:      alice",
        "groups:    staff, analysts",
        "location:  s3://team-red/shared/q1/report.csv",
        "decision:  rule 2 'analysts-team-shared' (allow)",
        "matched:   s3://team-*/shared/** (glob)",
        "role:      arn:aws:iam::333333333333:role/analyst-role",
        "session:   alice",
        "duration:  2h",
        "0 'no-audit-bucket': location s3://team-red/shared/q1/report.csv matches none of [s3://audit-logs-bucket/]",
        "1 'partner-exports': location",
        "credentials are not limited",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn explain_deny_and_fallback() {
    let cfg = example();
    let o = run(&[
        "explain",
        "--config",
        cfg.to_str().unwrap(),
        "--user",
        "etl",
        "--groups",
        "",
        "s3://audit-logs-bucket/x",
    ]);
    let out = stdout(&o);
    assert!(out.contains("decision:  rule 0 'no-audit-bucket' (deny)") && out.contains("403"), "{out}");
    let o = run(&[
        "explain",
        "--config",
        cfg.to_str().unwrap(),
        "--user",
        "nobody-here",
        "--groups",
        "g",
        "s3://other-bkt/x",
    ]);
    let out = stdout(&o);
    assert!(out.contains("no rule matched: fallback instance-profile"), "{out}");
    assert!(out.contains("3 'etl': user 'nobody-here' is not in users [etl, airflow]"), "{out}");
    assert!(
        out.contains("2 'analysts-team-shared': none of the groups [g] is in groups [analysts, data-science]"),
        "{out}"
    );
}

/// `explain --as-proxy` decides `user=` as `serve` does: who may act for whom, then the rules for that user.
#[test]
fn explain_as_proxy_decides_the_impersonation_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let example = std::fs::read_to_string(example()).unwrap();
    std::fs::write(
        &config,
        example.replacen("trusted_proxy_users = []", "trusted_proxy_users = [\"yarn\", \"hive\"]", 1)
            + "\n[identity.proxies.hive]\nusers = [\"etl\"]\n",
    )
    .unwrap();
    let explain = |proxy: &str, user: &str| {
        let o = run(&[
            "explain",
            "--config",
            config.to_str().unwrap(),
            "--as-proxy",
            proxy,
            "--user",
            user,
            "--groups",
            "",
            "s3://audit-logs-bucket/x",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
    };
    let out = explain("yarn", "etl");
    assert!(
        out.contains("proxy:     yarn may act for etl") && out.contains("rule 0 'no-audit-bucket' (deny)"),
        "{out}"
    );
    for (proxy, user) in [("alice", "etl"), ("yarn", "root"), ("hive", "airflow")] {
        let out = explain(proxy, user);
        assert!(out.contains("decision:  refused, ImpersonationDenied"), "{proxy} for {user}: {out}");
        assert!(!out.contains("rule 0"), "no rule is looked at for a refused proxy: {out}");
    }
    let o = run(&["explain", "--config", config.to_str().unwrap(), "--as-proxy", "yarn", "s3://b/k"]);
    assert_eq!(o.status.code(), Some(2), "--as-proxy without --user");
}

/// `explain` of an access-grants rule says what `GetDataAccess` would be asked, per access.
#[test]
fn explain_names_the_get_data_access_call_of_an_access_grants_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[access_grants]\nprivilege = \"minimal\"\n[[mapping]]\nname = \"lake-grants\"\neffect = \"access-grants\"\n\
         role = \"arn:aws:iam::111122223333:role/grantee\"\nprefixes = [\"s3://lake/\"]\n",
    )
    .unwrap();
    let explain = |args: &[&str]| {
        let mut all = vec!["explain", "--config", config.to_str().unwrap(), "--user", "u", "--groups", ""];
        all.extend_from_slice(args);
        stdout(&run(&all))
    };
    let out = explain(&["--access", "write", "s3://lake/t/part 0.parquet"]);
    assert!(out.contains("decision:  rule 0 'lake-grants' (access-grants)"), "{out}");
    assert!(out.contains("grantee:   arn:aws:iam::111122223333:role/grantee"), "{out}");
    assert!(
        out.contains(
            "asks:      GetDataAccess target=s3://lake/t/part 0.parquet targetType=Object permission=WRITE \
             (account 111122223333, privilege Minimal, 1h)"
        ),
        "{out}"
    );
    let out = explain(&["s3://lake/t/"]);
    assert!(out.contains("GetDataAccess target=s3://lake/t/* permission=READWRITE"), "{out}");
    let out = explain(&[]);
    assert!(out.contains("no rule matched") && out.contains("needs a location"), "{out}");
}

#[test]
fn explain_defaults_to_the_current_os_user() {
    let me = nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().map(|u| u.name).unwrap();
    let o = run(&["explain", "--config", example().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(out.contains(&format!("user:      {me}\n")), "{out}");
    assert!(out.contains("location:  (none)"), "{out}");
    // Without --groups, the user's OS groups are used: the primary group at least.
    let gid = nix::unistd::getgid();
    let primary = nix::unistd::Group::from_gid(gid).unwrap().map(|g| g.name).unwrap();
    let groups_line = out.lines().find(|l| l.starts_with("groups:")).unwrap();
    assert!(groups_line.contains(&primary), "{groups_line}");
}

#[test]
fn explain_rejects_a_bad_location_with_exit_2() {
    let o = run(&["explain", "--config", example().to_str().unwrap(), "--user", "a", "http://x/y"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unsupported scheme"));
}

#[test]
fn explain_via_imds_decides_without_a_location_after_the_exemptions() {
    let cfg = example();
    let imds = |user: &str, extra: &[&str]| {
        let mut args = vec!["explain", "--config", cfg.to_str().unwrap(), "--via", "imds", "--user", user];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = imds("etl", &["--groups", ""]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    for want in [
        "via:       instance metadata",
        "location:  (none)",
        "decision:  rule 3 'etl' (allow)",
        "0 'no-audit-bucket': the rule needs a location (prefixes or S3 Access Grants) and the request has none",
        "answer:    a refusal is a 404",
        "rules with prefixes never match here",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // The example exempts root and every system account: they are not redirected at all.
    let out = stdout(&imds("root", &[]));
    assert!(out.contains("exempt:    root:") && !out.contains("decision:"), "{out}");
    let out = stdout(&imds("daemon", &[]));
    assert!(out.contains("exempt:    uids below 1000:") && !out.contains("decision:"), "{out}");
    // The metadata path carries no location.
    let o = imds("etl", &["s3://b/k"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("carries no location"));
}

#[test]
fn explain_on_an_invalid_config_exits_78() {
    let bad = root().join("tests/fixtures/invalid/bad-arn.toml");
    let o = run(&["explain", "--config", bad.to_str().unwrap(), "--user", "a"]);
    assert_eq!(o.status.code(), Some(78));
}

#[test]
fn session_name_uses_cluster_and_instance_ids() {
    let text = "[sts]\nsession_name = \"{user}.{cluster_id}.{instance_id}\"\nsource_identity = \"{user}+{rule}\"\n\
                [[mapping]]\nname = \"r1\"\nrole = \"arn:aws:iam::123456789012:role/a\"\nusers = [\"jörg\", \"bob\"]\n";
    let c = Config::parse(text, Path::new("c.toml"), None).unwrap();
    let mut out = Vec::new();
    write_explanation(&c, &node("j-2AXXXXXXGAPLF", "i-0123456789abcdef0"), &named("bob"), None, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("session:   bob.j-2AXXXXXXGAPLF.i-0123456789abcdef0 "), "{out}");
    assert!(out.contains("source id: bob+r1 "), "{out}");
    let mut out = Vec::new();
    write_explanation(&c, &node("j-1", "i-1"), &named("jörg"), Some(&Location::parse("s3://b1b/k").unwrap()), &mut out)
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    let session = out.lines().find(|l| l.starts_with("session:")).unwrap();
    assert!(session.starts_with("session:   j-rg.j-1.i-1-"), "{session}");
}

#[test]
fn node_ids_come_from_emr_info_files() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = dir.path().join("instance-id");
    let ids = |d: &Path| {
        let node = NodeInfo::read_from(d, &cloud);
        (node.cluster_id, node.instance_id)
    };
    assert_eq!(ids(dir.path()), (UNKNOWN.to_string(), UNKNOWN.to_string()));
    std::fs::write(
        dir.path().join("job-flow.json"),
        r#"{"jobFlowId": "j-3KVTXXXXXX7UG", "jobFlowCreationInstant": 1}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("instance.json"), r#"{"isMaster": true, "instanceId": "i-0abc"}"#).unwrap();
    assert_eq!(ids(dir.path()), ("j-3KVTXXXXXX7UG".to_string(), "i-0abc".to_string()));
    std::fs::write(&cloud, "i-0cloudinit\n").unwrap();
    assert_eq!(ids(dir.path()).1, "i-0cloudinit");
    std::fs::remove_file(&cloud).unwrap();
    std::fs::write(dir.path().join("instance.json"), "not json").unwrap();
    assert_eq!(ids(dir.path()).1, UNKNOWN);
}

#[test]
fn import_prints_mapping_toml() {
    let o = run(&["import", root().join("tests/fixtures/emr/emrfs-site-rolemapping.txt").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert_eq!(out.matches("[[mapping]]").count(), 3, "{out}");
    assert!(out.contains("groups = [\"analysts\", \"data-science\"]"), "{out}");
    let o = run(&["import", "/nonexistent/file.json"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn version_and_usage() {
    let o = run(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains(env!("CARGO_PKG_VERSION")));
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
}

fn node(cluster_id: &str, instance_id: &str) -> NodeInfo {
    NodeInfo { cluster_id: cluster_id.into(), instance_id: instance_id.into() }
}

/// A user the OS does not know: no groups.
fn named(user: &str) -> Identity {
    Identity { uid: None, user: user.into(), groups: Vec::new() }
}
