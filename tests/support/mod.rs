//! Shared code for the integration tests (`mod support;` in a `tests/*.rs` file).
//!
//! - [`moto`]: a moto server (STS, IAM, S3 emulator) as a child process, and the AWS world built in it:
//!   the agent's source user, roles with trust policies and their own buckets, IAM enforcement.
//! - [`agent`]: an agent inside the test process ([`TestAgent::builder`]): config overrides, moto or the
//!   fault proxy as its STS, rules against the moto world, a manual clock.
//! - [`fault_proxy`]: an HTTP proxy in front of moto that counts AssumeRole calls and injects delay,
//!   throttling, 5xx, AccessDenied and refusal on demand.
//!
//! The Python side (moto itself, boto3) lives in the virtualenv that `scripts/setup-test-env.sh` builds at
//! `$EMRFS_TEST_VENV` (default `~/.cache/emrfs-role-agent/venv`).
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod fault_proxy;
pub mod moto;

pub use agent::{Answer, StsPeer, TestAgent};
pub use fault_proxy::{Fault, FaultControl, FaultProxy};
pub use moto::{AwsSpec, AwsWorld, Moto, MotoOptions, Principal, RoleInfo, RoleSpec};

use std::net::{SocketAddr, TcpListener};

/// A port on 127.0.0.1 that nothing listens on right now (bind to port 0, read it, let it go).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// `127.0.0.1:<port>`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The agent binary built by cargo for these tests (`$EMRFS_ROLE_AGENT_BIN` when set).
pub fn agent_bin() -> std::path::PathBuf {
    match std::env::var_os("EMRFS_ROLE_AGENT_BIN") {
        Some(path) => path.into(),
        None => env!("CARGO_BIN_EXE_emrfs-role-agent").into(),
    }
}

/// An STS client for `endpoint` (moto or a [`FaultProxy`]) signing with `credentials`, region
/// us-east-1. `retries = false` makes one attempt per call, so a fault shows as the call's error.
pub fn sts_client(
    endpoint: &str,
    credentials: aws_credential_types::Credentials,
    retries: bool,
) -> aws_sdk_sts::Client {
    use aws_sdk_sts::config::{retry::RetryConfig, BehaviorVersion, Region};
    let retry = if retries { RetryConfig::standard() } else { RetryConfig::disabled() };
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .retry_config(retry)
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

/// The location of a rule-table case (tests/fixtures/rules.json), with `append.text` repeated
/// `append.times` times when present.
pub fn case_location(case: &serde_json::Value) -> Option<String> {
    let mut loc = case["location"].as_str()?.to_owned();
    if let Some(a) = case.get("append") {
        let times = a["times"].as_u64().expect("append.times") as usize;
        loc.push_str(&a["text"].as_str().expect("append.text").repeat(times));
    }
    Some(loc)
}

/// A rule that maps the moto world's analytics bucket to its analytics role (named "analytics").
pub fn analytics_rule(world: &AwsWorld) -> String {
    let analytics = world.role("analytics");
    format!(
        "[[mapping]]\nname = \"analytics\"\nrole = \"{}\"\nprefixes = [\"s3://{}/\"]\n",
        analytics.arn, analytics.bucket
    )
}

/// The passwd name of the user running the tests.
pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().expect("the test user has a passwd entry").name
}

/// Whether a test that needs root (it creates OS users or runs clients as another uid) may run.
/// As root: yes. Otherwise the test fails, saying why, unless `EMRFS_TESTS_SKIP_ROOT=1` is set: then
/// it is skipped, and says so on the terminal (written past the test harness's output capture), so
/// that a run that skipped it is never mistaken for one that passed it.
pub fn needs_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("EMRFS_TESTS_SKIP_ROOT").is_ok_and(|v| v == "1") {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED, needs root (EMRFS_TESTS_SKIP_ROOT=1): {test}");
        return false;
    }
    panic!("{test} needs root: run the tests as root, or set EMRFS_TESTS_SKIP_ROOT=1 to skip it (and say so)");
}

/// uid and gid of `nobody`, the other local user of the tests that need one.
pub const NOBODY: u32 = 65534;

/// Sends `request` (bytes, as they are) to `addr` on a new connection from a process running as `nobody`
/// (`setpriv`, needs root) and returns everything the agent answered before it closed the connection.
pub fn exchange_as_nobody(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::Write;
    let script = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
s.sendall(sys.stdin.buffer.read())
answer = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    answer += chunk
sys.stdout.buffer.write(answer)
"#;
    let mut child = std::process::Command::new("setpriv")
        .args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups", "/usr/bin/python3", "-c"])
        .arg(script)
        .args([addr.ip().to_string(), addr.port().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv runs");
    child.stdin.take().unwrap().write_all(request).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
