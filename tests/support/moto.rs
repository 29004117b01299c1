//! A moto server child process and the AWS world the tests build in it.
//!
//! The world is built by `tests/e2e/helpers/moto_setup.py` (boto3, run with the test virtualenv's
//! python), the same code the pytest fixtures use; its module doc lists exactly what moto enforces.
//! In short, with enforcement on: signatures and known keys; the caller's identity policy (RoleArn as
//! the resource of sts:AssumeRole); the trust policy and its `StringEquals sts:ExternalId` condition for
//! roles in the caller's account 123456789012 only (a missing ExternalId passes, a wrong one fails);
//! the assumed role's policy on S3. moto's errors are `<ErrorResponse><Errors><Error>…` (an extra
//! `<Errors>` level) with an `x-amzn-requestid` header: the Rust SDK sees them by status only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Where the Python side lives and how long moto may take to start.
#[derive(Clone, Debug)]
pub struct MotoOptions {
    /// Default: `$EMRFS_TEST_VENV`, else `~/.cache/emrfs-role-agent/venv`.
    pub venv: PathBuf,
    /// Default 60 s (two cores shared with a compiler can make moto slow to import).
    pub startup_timeout: Duration,
}

impl Default for MotoOptions {
    fn default() -> Self {
        let venv = std::env::var_os("EMRFS_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".cache/emrfs-role-agent/venv")
        });
        MotoOptions { venv, startup_timeout: Duration::from_secs(60) }
    }
}

/// `moto_server -H 127.0.0.1 -p <free port>`; killed on drop. Its output goes to [`Moto::log_path`].
pub struct Moto {
    child: Child,
    addr: SocketAddr,
    venv: PathBuf,
    dir: tempfile::TempDir,
}

impl Moto {
    /// Starts moto and waits until it answers. Panics (test failure) if it cannot.
    pub fn start(opts: MotoOptions) -> Moto {
        let exe = opts.venv.join("bin/moto_server");
        assert!(exe.exists(), "{} missing: run scripts/setup-test-env.sh", exe.display());
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("moto.log");
        // Port 0, and the port read from moto's own log: a port picked here and handed over could be
        // taken meanwhile by the moto of a test running in parallel, which would then answer for both.
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", exe.display()));
        let mut moto = Moto { child, addr: super::loopback(0), venv: opts.venv, dir };
        let deadline = Instant::now() + opts.startup_timeout;
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited with {status} before answering:\n{}", moto.log());
            }
            if moto.addr.port() == 0 {
                let port = moto.log().lines().find_map(|l| {
                    l.split_once("Running on http://127.0.0.1:").and_then(|(_, port)| port.trim().parse::<u16>().ok())
                });
                if let Some(port) = port {
                    moto.addr = super::loopback(port);
                }
            }
            if moto.addr.port() != 0 && matches!(moto.request("GET", "/moto-api/", ""), Ok(200)) {
                return moto;
            }
            assert!(Instant::now() < deadline, "moto did not answer in time:\n{}", moto.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("moto.log")
    }

    /// The virtualenv's python (boto3, requests).
    pub fn python(&self) -> PathBuf {
        self.venv.join("bin/python")
    }

    /// Forgets everything moto holds, then builds `spec` (see [`AwsSpec`]) and returns what it made.
    pub fn setup(&self, spec: &AwsSpec) -> AwsWorld {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/helpers/moto_setup.py");
        let mut child = Command::new(self.python())
            .args([script, "--reset", "--endpoint", &self.endpoint()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run moto_setup.py");
        let input = serde_json::to_vec(spec).expect("spec json");
        child.stdin.take().expect("stdin").write_all(&input).expect("write spec");
        let out = child.wait_with_output().expect("moto_setup.py");
        assert!(
            out.status.success(),
            "moto_setup.py failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("moto_setup.py output")
    }

    /// IAM enforcement on (every later request is authenticated and authorised) or off.
    /// moto's `POST /moto-api/reset-auth` takes a bare number: requests let through before enforcing.
    pub fn set_enforcement(&self, on: bool) {
        let status = self.request("POST", "/moto-api/reset-auth", if on { "0" } else { "inf" }).expect("reset-auth");
        assert_eq!(status, 200, "reset-auth");
    }

    /// Tail of moto's own log, for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// One HTTP/1.0 request straight to moto; returns the status code.
    fn request(&self, method: &str, path: &str, body: &str) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad response: {response:.80}")))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What to build in moto (serialised to `moto_setup.py`; see its doc).
#[derive(Clone, Debug, Serialize)]
pub struct AwsSpec {
    /// IAM user whose keys become the agent's source credentials. Default `emrfs-agent-source`.
    pub user: Option<String>,
    pub roles: Vec<RoleSpec>,
    /// Extra buckets that no role's policy allows.
    pub buckets: Vec<String>,
    /// Turn IAM enforcement on once everything exists. Default true.
    pub enforce_iam: bool,
}

impl AwsSpec {
    pub fn new(roles: Vec<RoleSpec>) -> Self {
        AwsSpec { user: None, roles, buckets: Vec::new(), enforce_iam: true }
    }

    /// The roles the pytest `moto` fixture builds by default: `analytics`, `engineering` (trusted),
    /// `partner` (trusted, ExternalId `partner-external-id`), `untrusted` (neither allowed nor trusted).
    pub fn default_world() -> Self {
        AwsSpec::new(vec![
            RoleSpec::trusted("analytics"),
            RoleSpec::trusted("engineering"),
            RoleSpec::trusted("partner").external_id("partner-external-id"),
            RoleSpec::untrusted("untrusted"),
        ])
    }

    pub fn without_enforcement(mut self) -> Self {
        self.enforce_iam = false;
        self
    }

    pub fn bucket(mut self, name: &str) -> Self {
        self.buckets.push(name.to_owned());
        self
    }
}

/// One destination role, with a bucket its policy allows (and nothing else).
#[derive(Clone, Debug, Serialize)]
pub struct RoleSpec {
    pub name: String,
    /// None: moto's default account 123456789012, where trust policies are evaluated.
    pub account: Option<String>,
    /// The source user's identity policy allows sts:AssumeRole on this role.
    pub allowed_by_user: bool,
    /// The role's trust policy names the source user (else another principal).
    pub trusts_user: bool,
    /// Trust policy condition `StringEquals sts:ExternalId`.
    pub external_id: Option<String>,
    /// Default `<name>-bucket`.
    pub bucket: Option<String>,
    /// Seconds; default 43200.
    pub max_session_duration: u32,
}

impl RoleSpec {
    pub fn trusted(name: &str) -> Self {
        RoleSpec {
            name: name.to_owned(),
            account: None,
            allowed_by_user: true,
            trusts_user: true,
            external_id: None,
            bucket: None,
            max_session_duration: 43200,
        }
    }

    /// Neither in the user's identity policy nor trusting the user.
    pub fn untrusted(name: &str) -> Self {
        RoleSpec { allowed_by_user: false, trusts_user: false, ..RoleSpec::trusted(name) }
    }

    pub fn external_id(mut self, id: &str) -> Self {
        self.external_id = Some(id.to_owned());
        self
    }

    /// Put the role in another account (its trust policy is then not evaluated by moto).
    pub fn account(mut self, account: &str) -> Self {
        self.account = Some(account.to_owned());
        self
    }

    pub fn bucket(mut self, bucket: &str) -> Self {
        self.bucket = Some(bucket.to_owned());
        self
    }

    pub fn allowed_by_user(mut self, allowed: bool) -> Self {
        self.allowed_by_user = allowed;
        self
    }

    pub fn trusts_user(mut self, trusts: bool) -> Self {
        self.trusts_user = trusts;
        self
    }
}

/// What [`Moto::setup`] built.
#[derive(Clone, Debug, Deserialize)]
pub struct AwsWorld {
    pub endpoint: String,
    pub region: String,
    /// moto's default account, where the users live: 123456789012.
    pub account_id: String,
    /// The agent's source credentials (its "instance profile").
    pub user: Principal,
    /// Full access to everything, also once enforcement is on.
    pub admin: Principal,
    pub roles: Vec<RoleInfo>,
    /// Every bucket (roles' and extra); each holds `seed.txt`.
    pub buckets: Vec<String>,
    pub enforce_iam: bool,
}

impl AwsWorld {
    pub fn role(&self, name: &str) -> &RoleInfo {
        self.roles.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no role {name}"))
    }

    /// The source user's keys as SDK credentials.
    pub fn source_credentials(&self) -> aws_credential_types::Credentials {
        self.user.credentials()
    }

    /// Environment that gives a child process (the agent) the source user's keys.
    pub fn source_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.user.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.user.secret_access_key.clone()),
            ("AWS_REGION".into(), self.region.clone()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }
}

/// An IAM user and its access key.
#[derive(Clone, Deserialize)]
pub struct Principal {
    pub name: String,
    pub arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Principal {
    pub fn credentials(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "moto-test-user",
        )
    }
}

impl std::fmt::Debug for Principal {
    // Keeps the secret out of assertion messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("arn", &self.arn)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct RoleInfo {
    pub name: String,
    pub arn: String,
    pub account_id: String,
    pub bucket: String,
    pub external_id: Option<String>,
    pub allowed_by_user: bool,
    pub trusts_user: bool,
}
