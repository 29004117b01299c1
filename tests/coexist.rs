//! Coexistence with EMR's own mechanisms: what `check` finds on a node that would fight the agent
//! (src/coexist.rs), from the fixtures in tests/fixtures/coexist (see its README for where each comes from).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use emrfs_role_agent::coexist::{self, Finding, Severity};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The uids the fixtures' listings print, as the node's user database would name them.
fn users(uid: u32) -> Option<String> {
    match uid {
        0 => Some("root".into()),
        992 => Some("hadoop".into()),
        993 => Some("userrolemapper".into()),
        995 => Some("emrsecretagent".into()),
        996 => Some("knox".into()),
        1001 => Some("alice".into()),
        1002 => Some("bob".into()),
        _ => None,
    }
}

fn nobody(_: u32) -> Option<String> {
    None
}

/// Each finding's severity and words it must contain; nothing more is found.
fn assert_findings(case: &str, found: &[Finding], expected: &[(Severity, &[&str])]) {
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), expected.len(), "{case}: {shown:#?}");
    for (f, (severity, words)) in found.iter().zip(expected) {
        assert_eq!(f.severity, *severity, "{case}: {f}");
        for w in *words {
            assert!(f.to_string().contains(w), "{case}: {w:?} missing from: {f}");
        }
    }
}

const W: Severity = Severity::Warning;
const R: Severity = Severity::Refusal;

#[test]
fn firewall_listings() {
    type Case = (&'static str, bool, fn(u32) -> Option<String>, &'static [(Severity, &'static [&'static str])]);
    let cases: &[Case] = &[
        // The agent's own rules, in either back end and both families, beside unrelated NAT: nothing.
        ("coexist/iptables-agent.txt", true, users, &[]),
        ("coexist/iptables-agent.txt", false, users, &[]),
        ("coexist/nft-agent.txt", true, users, &[]),
        // EMR User Role Mapper: told by its comments.
        (
            "coexist/iptables-user-role-mapper.txt",
            true,
            nobody,
            &[(
                R,
                &[
                    "refused: ",
                    "EMR User Role Mapper already redirects",
                    "DNAT --to-destination 127.0.0.1:9944",
                    "unset [imds] listen",
                ],
            )],
        ),
        (
            "coexist/iptables-user-role-mapper.txt",
            false,
            nobody,
            &[(W, &["warning: ", "EMR User Role Mapper redirects", "only clients wired to the agent's API"])],
        ),
        // EMR's secret agent: told by its owner matches, which the listing prints as uids.
        ("coexist/iptables-secret-agent.txt", true, users, &[(R, &["EMR's secret agent", "REDIRECT --to-ports 9443"])]),
        ("coexist/iptables-secret-agent.txt", true, nobody, &[(R, &["another metadata interceptor"])]),
        ("coexist/iptables-secret-agent.txt", false, users, &[(W, &["EMR's secret agent redirects"])]),
        // A foreign DNAT reached through a jump to a chain of its own (nft's listing of iptables-nft rules).
        (
            "coexist/nft-iptables-nft-dnat.txt",
            true,
            users,
            &[(R, &["another metadata interceptor", "ip nat METADATA-PROXY", "dnat to 127.0.0.1:8181"])],
        ),
        // Filter rules blocking the metadata service (a runtime-role cluster's kind).
        (
            "coexist/iptables-runtime-role-block.txt",
            true,
            users,
            &[(W, &["blocked for owners alice, bob", "REJECT", "nat OUTPUT runs before filter OUTPUT"])],
        ),
        ("coexist/iptables-runtime-role-block.txt", false, nobody, &[(W, &["owners 1001, 1002", "its user is among"])]),
    ];
    for (file, interception, user_of, expected) in cases {
        let case = format!("{file} (interception {interception})");
        let found = coexist::firewall_findings(file, &read(file), *interception, user_of);
        assert_findings(&case, &found, expected);
    }
}

#[test]
fn ipv6_named_owners_and_negations() {
    // ip6tables-save: the IPv6 metadata address, redirected by someone else.
    let ip6 = "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d fd00:ec2::254/128 -p tcp -m tcp --dport 80 -j DNAT \
               --to-destination [::1]:8181\nCOMMIT\n";
    let found = coexist::firewall_findings("ip6tables-save", ip6, true, &nobody);
    assert_findings(
        "ip6tables",
        &found,
        &[(R, &["refused: ip6tables-save: another metadata interceptor", "[::1]:8181"])],
    );
    // nft prints an owner it can name by its name: the secret agent is told by it without a lookup.
    let nft = "table inet secret {\n\tchain out {\n\t\ttype nat hook output priority -100; policy accept;\n\
               \t\tip daddr 169.254.169.254 meta skuid \"emrsecretagent\" accept\n\
               \t\tip daddr 169.254.169.254 tcp dport 80 redirect to :9443\n\t}\n}\n";
    let found = coexist::firewall_findings("nft list ruleset", nft, false, &nobody);
    assert_findings("nft named owner", &found, &[(W, &["EMR's secret agent redirects", "redirect to :9443"])]);
    // A transparent proxy for everything but the metadata service leaves it alone.
    let proxy = "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT ! -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT \
                 --to-destination 10.0.0.5:3128\nCOMMIT\n";
    assert_findings("iptables negation", &coexist::firewall_findings("p", proxy, true, &nobody), &[]);
    let proxy = "table ip proxy {\n\tchain out {\n\t\ttype nat hook output priority -100; policy accept;\n\
                 \t\tip daddr != 169.254.169.254 tcp dport 80 dnat to 10.0.0.5:3128\n\t}\n}\n";
    assert_findings("nft negation", &coexist::firewall_findings("p", proxy, true, &nobody), &[]);
}

#[test]
fn the_agents_own_rules_are_recognised_by_their_names_only() {
    // The same redirect under another chain or table name is somebody else's.
    let renamed = read("coexist/iptables-agent.txt").replace("EMRFS-ROLE-AGENT", "OTHER-AGENT");
    let found = coexist::firewall_findings("renamed", &renamed, true, &users);
    assert_findings("renamed chain", &found, &[(R, &["nat OTHER-AGENT: -A OTHER-AGENT -p tcp"])]);
    let renamed = read("coexist/nft-agent.txt").replace("emrfs_role_agent", "other_agent");
    let found = coexist::firewall_findings("renamed", &renamed, true, &users);
    assert_findings("renamed table", &found, &[(R, &["dnat to 127.0.0.1:254", "dnat to [::1]:254"])]);
}

#[test]
fn parsed_rules_carry_what_the_findings_need() {
    let rules = coexist::parse_iptables_save(&read("coexist/iptables-user-role-mapper.txt"));
    assert_eq!(rules.len(), 4);
    assert!(rules.iter().all(|r| r.to_metadata && r.kind == coexist::Kind::Nat && !r.ours));
    assert_eq!(rules[0].owner.as_deref(), Some("993"));
    assert_eq!(
        rules[0].comment.as_deref(),
        Some("(added by userrolemapper) whitelist ec2 metadata service for user:userrolemapper")
    );
    assert_eq!(rules[3].action, coexist::Action::Redirect { to: Some("127.0.0.1:9944".into()) });
    let nft = coexist::parse_nft(&read("coexist/nft-agent.txt"));
    let ours: Vec<_> = nft.iter().filter(|r| r.ours).collect();
    assert_eq!(ours.len(), 6, "{nft:#?}");
    assert!(ours.iter().all(|r| r.kind == coexist::Kind::Nat && r.to_metadata));
    assert_eq!(ours[2].owner.as_deref(), Some("< 1000"));
}

#[test]
fn processes() {
    type Case = (&'static str, bool, &'static [(Severity, &'static [&'static str])]);
    let cases: &[Case] = &[
        // Someone grepping for it is not the secret agent; the agent itself is not another interceptor.
        ("coexist/processes-plain.txt", true, &[]),
        ("coexist/processes-secret-agent.txt", true, &[(R, &["EMR's secret agent is running", "user emrsecretagent"])]),
        ("coexist/processes-secret-agent.txt", false, &[(W, &["EMR's secret agent is running"])]),
        (
            "coexist/processes-user-role-mapper.txt",
            true,
            &[(R, &["EMR User Role Mapper is running", "127.0.0.1:9944, the agent's default API port"])],
        ),
    ];
    for (file, interception, expected) in cases {
        let found = coexist::process_findings(file, &read(file), *interception);
        assert_findings(&format!("{file} (interception {interception})"), &found, expected);
    }
}

#[test]
fn security_configurations() {
    type Case = (&'static str, bool, &'static [(Severity, &'static [&'static str])]);
    let cases: &[Case] = &[
        ("coexist/security-configuration-plain.json", true, &[]),
        (
            "emr/security-configuration.json",
            true,
            &[(
                W,
                &["EmrFsConfiguration.RoleMappings is set", "emrfs-role-agent import emr/security-configuration.json"],
            )],
        ),
        (
            "coexist/security-configuration-runtime-roles.json",
            true,
            &[
                (R, &["LakeFormationConfiguration is set", "secret agent"]),
                (R, &["EnableApplicationScopedIAMRole is true", "runtime-role cluster", "Unset [imds] listen"]),
            ],
        ),
        (
            "coexist/security-configuration-runtime-roles.json",
            false,
            &[
                (W, &["LakeFormationConfiguration is set"]),
                (W, &["EnableApplicationScopedIAMRole is true", "not the step's runtime role"]),
            ],
        ),
        // describe-security-configuration output: the configuration is a JSON string inside.
        ("coexist/security-configuration-ranger-described.json", true, &[(R, &["RangerConfiguration is set"])]),
    ];
    for (file, interception, expected) in cases {
        let found = coexist::security_configuration_findings(file, &read(file), *interception);
        assert_findings(&format!("{file} (interception {interception})"), &found, expected);
    }
    // describe output whose SecurityConfiguration is already an object (as some tools decode it).
    let runtime: serde_json::Value =
        serde_json::from_str(&read("coexist/security-configuration-runtime-roles.json")).unwrap();
    let decoded = serde_json::json!({"Name": "rr", "SecurityConfiguration": runtime}).to_string();
    let found = coexist::security_configuration_findings("decoded", &decoded, false);
    assert_findings("decoded describe output", &found, &[(W, &["LakeFormationConfiguration"]), (W, &["runtime-role"])]);
    let bad = coexist::security_configuration_findings("x.json", "{", true);
    assert_findings("bad JSON", &bad, &[(W, &["x.json: cannot read it as a security configuration"])]);
}

// ---- the command ----------------------------------------------------------------------------

fn check(config: &Path, extra: &[&Path], flags: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emrfs-role-agent"));
    cmd.args(["check", "--config"]).arg(config);
    for (flag, path) in flags.iter().zip(extra) {
        cmd.arg(flag).arg(path);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn check_refuses_interception_beside_another_interceptor_and_warns_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let on = dir.path().join("on.toml");
    std::fs::write(&on, "[imds]\nlisten = \"127.0.0.1:254\"\n").unwrap();
    let off = dir.path().join("off.toml");
    std::fs::write(&off, "").unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let urm = fixture("coexist/iptables-user-role-mapper.txt");
    let flags = ["--ruleset", "--processes"];

    let o = check(&on, &[&urm, &empty], &flags);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with(&format!("refused: {}: EMR User Role Mapper", urm.display()))), "{out}");
    assert!(err.contains("refused: 1 thing(s) on this node would fight the agent"), "{err}");

    let o = check(&off, &[&urm, &empty], &flags);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "a warning is not an error: {out}{err}");
    assert!(out.lines().any(|l| l.starts_with("warning: ") && l.contains("EMR User Role Mapper redirects")), "{out}");
    assert!(!out.contains("refused:"), "{out}");

    // The agent's own rules, as a node with interception on has them: nothing to say.
    let ours = fixture("coexist/iptables-agent.txt");
    let o = check(&on, &[&ours, &empty], &flags);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(!out.contains("warning:") && !out.contains("refused:"), "{out}");

    // The security configuration and the process list are looked at too, each named in its finding.
    let sc = fixture("coexist/security-configuration-runtime-roles.json");
    let sa = fixture("coexist/processes-secret-agent.txt");
    let o = check(&on, &[&ours, &sa, &sc], &["--ruleset", "--processes", "--security-configuration"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert_eq!(out.lines().filter(|l| l.starts_with("refused: ")).count(), 3, "{out}");
    assert!(out.contains(&format!("refused: {}: EMR's secret agent is running", sa.display())), "{out}");
    assert!(out.contains(&format!("refused: {}: AuthorizationConfiguration.IAMConfiguration", sc.display())), "{out}");
    assert!(err.contains("refused: 3 thing(s)"), "{err}");
}

#[test]
fn check_refuses_a_named_file_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "").unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("missing");
    for (flags, paths, named) in [
        (["--ruleset", "--processes"], [missing.as_path(), &empty], "--ruleset"),
        (["--ruleset", "--processes"], [empty.as_path(), &missing], "--processes"),
        (["--security-configuration", "--processes"], [missing.as_path(), &empty], "--security-configuration"),
    ] {
        let o = check(&config, &paths, &flags);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{out}{err}");
        assert!(err.contains(&format!("{named} {}: cannot read it", missing.display())), "{err}");
    }
}
