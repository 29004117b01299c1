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
//! - [`location`]: S3 URI parsing and normalisation (`s3`/`s3a`/`s3n`, bucket, key; keys taken literally).
//! - [`access`]: `access=read|write`, the kind of S3 access a request is for.
//! - [`rules`]: ordered rule set + (user, groups, location) → [`rules::Decision`]; globs compiled once.
//! - [`scope`]: how far an answer holds: the shortest prefix under which every location decides alike.
//! - [`impersonation`]: whether a caller may act for another user (`user=`, `explain --as-proxy`).
//! - [`decision`]: the whole decision `serve` and `explain` share: rule (or fallback) and the session key.
//! - [`coexist`]: what on a node would fight the agent (EMR's role mappings, other metadata interceptors).
//! - [`emr`]: EMR security configuration / `describe-security-configuration` / emrfs-site formats → rules.
//! - [`grants`]: S3 Access Grants as a rule's effect: the `GetDataAccess` target and permission, and how far
//!   a matched grant holds.
//! - [`template`]: session-name templates and STS sanitisation.
//! - [`refresh`]: when to refresh and whether stale credentials may still be served; every fn takes `now`.
//! - [`policy`]: the session policy generated for `scope_to_prefix`.
//! - [`refusal`]: the error codes of the HTTP API, with their status and audit outcome.
//! - [`text`]: durations, expirations and text positions as the config, the wire and errors write them.
//!
//! Configuration and CLI:
//! - [`config`]: TOML → validated [`config::Config`] (`raw` → `validate`); only `load` touches the disk.
//! - [`node`]: the node's cluster and instance ids, read once.
//! - [`cli`]: the `check`, `explain` and `import` commands.
//! - [`redirect`]: `imds-redirect`: the NAT rules (nft or iptables) that send instance-metadata traffic here.
//!
//! I/O at the edges:
//! - [`clock`]: the one source of time, injectable for tests.
//! - [`sts`]: the one trait between the agent and AWS, and its `aws-sdk-sts` implementation.
//! - [`share`]: each caller's share of a budget (requests, STS calls), per uid and per user a proxy acts for.
//! - [`cache`]: moka-backed session cache; one STS call per key however many wait; stale serving.
//! - [`caller`]: kernel-verified caller identity: the peer's uid (`caller::peer`, netlink `sock_diag`)
//!   and its user and groups (`caller::directory`, passwd/group, cached).
//! - [`audit`]: the audit log: the versioned record, its single writer with group commit, and the
//!   per-caller tally of refusals before any decision.
//! - [`metrics`]: the Prometheus registry.
//! - [`path`]: the credential path both doors share: admit → caller → rule → cache → one exit
//!   ([`path::finish`]) that writes the audit record, the metrics and the response.
//! - [`api`]: the HTTP API door: `/v1/credentials` parsed and answered; the admin endpoints.
//! - [`token`]: the `Authorization` token file, re-read when it changes, compared in constant time.
//! - [`imds`]: the instance-metadata door: the same path for SDK default chains; an allow-list forwarded
//!   upstream; its own session tokens.
//! - [`respond`]: the HTTP answers both doors write.
//! - [`server`]: the listener (limits, shutdown, drain) and a handler per connection.
//! - [`daemon`]: wiring for `serve`: start-up errors, signals, reload, systemd notification.

pub mod access;
pub mod api;
pub mod audit;
pub mod cache;
pub mod caller;
pub mod cli;
pub mod clock;
pub mod coexist;
pub mod config;
pub mod daemon;
pub mod decision;
pub mod emr;
pub mod grants;
pub mod imds;
pub mod impersonation;
pub mod location;
pub mod metrics;
pub mod node;
pub mod path;
pub mod policy;
pub mod redirect;
pub mod refresh;
pub mod refusal;
pub mod respond;
pub mod rules;
pub mod scope;
pub mod server;
pub mod share;
pub mod sts;
pub mod template;
pub mod text;
pub mod token;
