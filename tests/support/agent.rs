//! An agent inside the test process (`daemon::start`), built like the pytest `AgentFactory`: a base
//! configuration on 127.0.0.1:0 with a token, an audit file and an STS of the test's choosing — moto, moto
//! behind a [`FaultProxy`], or nothing reachable — plus TOML overrides, rules written against the moto
//! world, a clock and the refresher's period.
//!
//! ```ignore
//! let h = TestAgent::builder().sts(StsPeer::FaultProxy).config("[sts]\nmax_calls_per_second = 4")
//!     .mappings(|w| format!("[[mapping]]\nrole = \"{}\"", w.role("analytics").arn)).start().await;
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use emrfs_role_agent::clock::{Clock, ManualClock, SystemClock};
use emrfs_role_agent::config::Config;
use emrfs_role_agent::daemon::{self, Environment, Running, REFRESH_INTERVAL};
use emrfs_role_agent::node::NodeInfo;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use serde_json::Value;

use super::{AwsSpec, AwsWorld, FaultProxy, Moto, MotoOptions};

/// The token every test agent requires.
pub const TOKEN: &str = "test-agent-token";

/// Where the agent's STS calls go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StsPeer {
    /// Nowhere: for tests that never reach STS (an address nothing listens on).
    Unreachable,
    /// A moto server with the default world.
    Moto,
    /// The same, behind a fault-injecting proxy that counts AssumeRole calls.
    FaultProxy,
}

/// `[[mapping]]` TOML written against the moto world.
type Mappings = Box<dyn FnOnce(&AwsWorld) -> String>;

/// Builds a [`TestAgent`].
pub struct Builder {
    sts: StsPeer,
    spec: AwsSpec,
    overrides: Vec<String>,
    mappings: Option<Mappings>,
    manual_clock: bool,
    refresh_interval: Duration,
}

/// A running agent and the peers it was built with.
pub struct TestAgent {
    running: Option<Running>,
    pub addr: SocketAddr,
    pub token: String,
    pub dir: tempfile::TempDir,
    /// Present when the STS peer is moto (directly or behind the proxy).
    pub moto: Option<Moto>,
    pub world: Option<AwsWorld>,
    pub proxy: Option<FaultProxy>,
    /// Present when the builder asked for a manual clock.
    pub clock: Option<Arc<ManualClock>>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// A status and its JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl TestAgent {
    pub fn builder() -> Builder {
        Builder {
            sts: StsPeer::Moto,
            spec: AwsSpec::default_world(),
            overrides: Vec::new(),
            mappings: None,
            manual_clock: false,
            refresh_interval: REFRESH_INTERVAL,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("the agent is running")
    }

    pub fn world(&self) -> &AwsWorld {
        self.world.as_ref().expect("the agent was built with moto")
    }

    pub fn proxy(&self) -> &FaultProxy {
        self.proxy.as_ref().expect("the agent was built with the fault proxy")
    }

    pub fn manual_clock(&self) -> &ManualClock {
        self.clock.as_ref().expect("the agent was built with a manual clock")
    }

    /// `GET /v1/credentials?<query>` with the token, on a pooled connection.
    pub async fn get(&self, query: &str) -> Answer {
        let uri = format!("http://{}/v1/credentials?{query}", self.addr);
        let req = http::Request::get(uri).header("Authorization", &self.token).body(Empty::new()).unwrap();
        let res = self.client.request(req).await.expect("the agent answers");
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    /// Stops the agent (flushing its audit log) and returns every audit record it wrote.
    pub async fn stop_and_read_audit(&mut self) -> Vec<Value> {
        self.stop_in_place().await;
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    pub async fn stop(mut self) {
        self.stop_in_place().await;
    }

    async fn stop_in_place(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop("test").await;
        }
    }
}

impl Builder {
    /// Where STS calls go (default: moto).
    pub fn sts(mut self, sts: StsPeer) -> Self {
        self.sts = sts;
        self
    }

    /// The moto world to build (default: [`AwsSpec::default_world`]).
    pub fn world(mut self, spec: AwsSpec) -> Self {
        self.spec = spec;
        self
    }

    /// TOML merged over the base configuration, table by table (a key given here wins).
    pub fn config(mut self, toml: &str) -> Self {
        self.overrides.push(toml.to_owned());
        self
    }

    /// `[[mapping]]` TOML, written against the moto world (role ARNs, buckets).
    pub fn mappings(mut self, mappings: impl FnOnce(&AwsWorld) -> String + 'static) -> Self {
        self.mappings = Some(Box::new(mappings));
        self
    }

    /// A [`ManualClock`] starting at the real time (moto dates its credentials by the real clock).
    pub fn manual_clock(mut self) -> Self {
        self.manual_clock = true;
        self
    }

    /// How often the background refresher looks for due sessions (default: the daemon's).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    pub async fn start(self) -> TestAgent {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), TOKEN).unwrap();
        let (moto, world) = match self.sts {
            StsPeer::Unreachable => (None, None),
            StsPeer::Moto | StsPeer::FaultProxy => {
                let moto = Moto::start(MotoOptions::default());
                let world = moto.setup(&self.spec);
                (Some(moto), Some(world))
            }
        };
        let proxy = match (&moto, self.sts) {
            (Some(moto), StsPeer::FaultProxy) => Some(FaultProxy::start(moto.addr())),
            _ => None,
        };
        let endpoint = match (&moto, &proxy) {
            (_, Some(proxy)) => proxy.url(),
            (Some(moto), None) => moto.endpoint(),
            (None, _) => "http://127.0.0.1:9".to_owned(),
        };
        let mut config = base_config(dir.path(), &endpoint);
        for text in &self.overrides {
            merge(&mut config, text.parse().expect("override is TOML"));
        }
        let mut text = toml::to_string(&config).expect("config serialises");
        if let (Some(mappings), Some(world)) = (self.mappings, &world) {
            text.push('\n');
            text.push_str(&mappings(world));
        }
        let manual = self.manual_clock.then(|| {
            #[allow(clippy::disallowed_methods)]
            Arc::new(ManualClock::new(SystemTime::now()))
        });
        let clock: Arc<dyn Clock> = match &manual {
            Some(manual) => manual.clone(),
            None => Arc::new(SystemClock),
        };
        let source = match &world {
            Some(world) => world.source_credentials(),
            None => aws_credential_types::Credentials::new("AKIAUNREACHABLE", "unused", None, None, "test"),
        };
        let running = start_agent(&text, dir.path(), source, clock, self.refresh_interval).await;
        let addr = running.addrs[0];
        TestAgent {
            running: Some(running),
            addr,
            token: TOKEN.to_owned(),
            dir,
            moto,
            world,
            proxy,
            clock: manual,
            client: Client::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
        }
    }
}

/// The configuration every test agent starts from.
fn base_config(dir: &Path, sts: &str) -> toml::Table {
    let text = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
token_file = "{dir}/token"
[sts]
region = "us-east-1"
endpoint_url = "{sts}"
call_timeout = "2s"
# Each caller's share of STS calls is not what most tests are about (tests/hostile.rs sets its own).
max_calls_per_caller = 10000
[audit]
path = "{dir}/audit.log"
durability = "buffered"
"#,
        dir = dir.display(),
    );
    text.parse().expect("base config is TOML")
}

/// `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Parses `config_text` (as if read from `<dir>/config.toml`) and starts the agent with `credentials`
/// as its source credentials (region us-east-1). Panics if either fails.
pub async fn start_agent(
    config_text: &str,
    dir: &Path,
    credentials: aws_credential_types::Credentials,
    clock: Arc<dyn Clock>,
    refresh_interval: Duration,
) -> Running {
    let config = Config::parse(config_text, &dir.join("config.toml"), None).expect("valid config");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await;
    let node = NodeInfo { cluster_id: "j-TEST".into(), instance_id: "i-test".into() };
    daemon::start(config, Environment { clock, node, sdk, refresh_interval, listeners: Vec::new() })
        .await
        .expect("agent starts")
}
