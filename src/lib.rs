//! `emrfs-role-agent`: a node-local credential agent for Amazon EMR.
//!
//! Local processes ask `GET /v1/credentials?location=s3://…&user=…` on a loopback ECS-style
//! container-credentials endpoint. The agent learns the caller's uid from the kernel, picks the
//! first matching role-mapping rule, assumes that role through STS (one call per session key,
//! cached and refreshed ahead of expiry) and writes one audit record per decision.
//!
//! # Layout
//!
//! Pure decision code (no clock, no environment, no files):
//! - [`location`]: S3 URI parsing and normalisation (`s3`/`s3a`/`s3n`, bucket, key).
//! - [`rules`]: ordered rule set + (user, groups, location) → [`rules::Decision`]; globs compiled once.
//! - [`emr`]: EMR security configuration / `describe-security-configuration` / emrfs-site formats → rules.
//! - [`template`]: session-name templates and STS sanitisation.
//! - [`refresh`]: when to refresh and whether stale credentials may still be served; every fn takes `now`.
//! - [`policy`]: the session policy generated for `scope_to_prefix`.
//!
//! Configuration and CLI:
//! - [`config`]: TOML → validated [`config::Config`]; only `load` touches the disk.
//! - [`cli`]: the `check`, `explain` and `import` commands.
//!
//! I/O at the edges:
//! - [`clock`]: the one source of time, injectable for tests.
//! - [`sts`]: the one trait between the agent and AWS, and its `aws-sdk-sts` implementation.
//! - [`cache`]: moka-backed session cache; one STS call per key however many wait; stale serving.
//! - [`caller`]: kernel-verified caller identity (netlink `sock_diag`), user and group lookup.
//! - [`audit`]: versioned JSON-lines audit records, a single writer task with group commit.
//! - [`metrics`]: the Prometheus registry.
//! - [`handler`]: caller → rules → cache → response; one function writes audit, metrics and response.
//! - [`token`]: the `Authorization` token file, re-read when it changes, compared in constant time.
//! - [`server`]: hyper accept loop, connection limits, timeouts, graceful drain.
//! - [`daemon`]: wiring for `serve`: signals, reload, systemd notification.

pub mod audit;
pub mod cache;
pub mod caller;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod emr;
pub mod handler;
pub mod location;
pub mod metrics;
pub mod policy;
pub mod refresh;
pub mod rules;
pub mod server;
pub mod sts;
pub mod template;
pub mod token;

