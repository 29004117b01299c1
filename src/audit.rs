//! The audit log: versioned JSON lines, one writer thread, group commit.
//!
//! Every credentials request produces exactly one [`CredentialRecord`] before its response is
//! sent. With `durability = "sync"` the request waits until its record is on disk: the writer
//! takes every record that arrived while the previous `fdatasync` ran, writes them in one
//! `write`, syncs once and answers them all (group commit). With `"buffered"` records are
//! acknowledged at once and flushed at least every second and on shutdown.
//!
//! A batch that cannot be written is cut back off the file (no half lines), its requests fail
//! with `AuditUnavailable`, and the log reports itself unhealthy until a write succeeds again.
//! Records carry the `AccessKeyId` handed out, never a secret key or session token.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::oneshot;

use crate::config::{AuditPath, Durability};
use crate::metrics::Metrics;

/// The schema version written in every record's `v`.
pub const VERSION: u8 = 1;

/// `time` of a record: RFC 3339, UTC, milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .expect("formatting a UTC time")
}

/// `expiration` as every SDK accepts it: RFC 3339, UTC, whole seconds, `Z`.
pub fn expiration(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"))
        .expect("formatting a UTC time")
}

/// `outcome` of a credentials request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allow,
    Deny,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Error => "error",
        }
    }
}

/// One credentials request (`event = "credentials"`). Absent values serialise as `null`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CredentialRecord {
    pub request_id: String,
    pub outcome: Option<Outcome>,
    pub status: u16,
    pub caller_uid: Option<u32>,
    pub caller_user: Option<String>,
    pub user: Option<String>,
    pub asserted: bool,
    pub groups: Option<Vec<String>>,
    pub location: Option<String>,
    pub rule_index: Option<usize>,
    pub rule_name: Option<String>,
    pub effect: Option<&'static str>,
    pub role_arn: Option<String>,
    pub session_name: Option<String>,
    pub source_identity: Option<String>,
    pub access_key_id: Option<String>,
    pub expiration: Option<String>,
    pub source: Option<&'static str>,
    pub sts_request_id: Option<String>,
    pub error_code: Option<&'static str>,
    pub latency_us: u64,
}

/// Every event the log carries; `event` names the variant.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Credentials(CredentialRecord),
    Start { version: &'static str, pid: u32, config: String },
    Stop { reason: String },
    ConfigLoaded { config: String, rules: usize },
    ConfigRejected { config: String, error: String },
    StsAssumeRole {
        role_arn: String,
        session_name: String,
        result: &'static str,
        sts_request_id: Option<String>,
        access_key_id: Option<String>,
        error_code: Option<String>,
        duration_us: u64,
    },
}

#[derive(Serialize)]
struct Line<'a> {
    v: u8,
    time: String,
    #[serde(flatten)]
    event: &'a Event,
}

/// The record could not be written.
#[derive(Clone, Debug, thiserror::Error)]
#[error("audit log unavailable: {0}")]
pub struct AuditError(String);

enum Msg {
    Record { line: Vec<u8>, ack: Option<oneshot::Sender<Result<(), AuditError>>> },
    Reopen(oneshot::Sender<Result<(), AuditError>>),
    Probe(oneshot::Sender<bool>),
    Close(oneshot::Sender<()>),
}

/// A handle to the audit log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    durability: Durability,
    healthy: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// Opens the log (failing if it cannot) and starts its writer thread.
    pub fn open(path: &AuditPath, durability: Durability, metrics: Arc<Metrics>) -> io::Result<AuditLog> {
        let sink = Sink::open(path.clone())?;
        let (tx, rx) = mpsc::channel();
        let healthy = Arc::new(AtomicBool::new(true));
        let writer = Writer { sink, durability, healthy: healthy.clone(), metrics: metrics.clone() };
        std::thread::Builder::new().name("audit-writer".into()).spawn(move || writer.run(rx))?;
        Ok(AuditLog { tx, durability, healthy, metrics })
    }

    fn encode(&self, event: &Event, now: SystemTime) -> Vec<u8> {
        let mut line = serde_json::to_vec(&Line { v: VERSION, time: timestamp(now), event })
            .expect("audit records serialise");
        line.push(b'\n');
        line
    }

    /// Writes `event`; with sync durability, returns once it is on disk.
    pub async fn write(&self, event: &Event, now: SystemTime) -> Result<(), AuditError> {
        let line = self.encode(event, now);
        match self.durability {
            Durability::Buffered => self.send(Msg::Record { line, ack: None }),
            Durability::Sync => {
                let (ack, done) = oneshot::channel();
                self.send(Msg::Record { line, ack: Some(ack) })?;
                done.await.unwrap_or_else(|_| Err(AuditError("audit writer stopped".into())))
            }
        }
    }

    /// Queues `event` without waiting (lifecycle and STS-call events).
    pub fn emit(&self, event: &Event, now: SystemTime) {
        let line = self.encode(event, now);
        if self.send(Msg::Record { line, ack: None }).is_err() {
            tracing::error!("audit writer stopped; an event was not recorded");
        }
    }

    fn send(&self, msg: Msg) -> Result<(), AuditError> {
        self.metrics.audit_queue_depth.inc();
        self.tx.send(msg).map_err(|_| {
            self.metrics.audit_queue_depth.dec();
            AuditError("audit writer stopped".into())
        })
    }

    /// Reopens the file at the configured path (after logrotate moved it).
    pub async fn reopen(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.send(Msg::Reopen(ack))?;
        done.await.unwrap_or_else(|_| Err(AuditError("audit writer stopped".into())))
    }

    /// Whether records are being written. While broken, asks the writer to check again.
    pub async fn is_healthy(&self) -> bool {
        if self.healthy.load(Ordering::Relaxed) {
            return true;
        }
        let (ack, done) = oneshot::channel();
        if self.send(Msg::Probe(ack)).is_err() {
            return false;
        }
        done.await.unwrap_or(false)
    }

    /// Flushes everything queued before this call, then stops the writer.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.send(Msg::Close(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

/// Where lines go.
struct Sink {
    path: AuditPath,
    file: Option<File>,
    /// Length of the file after the last good write, to cut a failed batch back off.
    len: u64,
}

impl Sink {
    fn open(path: AuditPath) -> io::Result<Sink> {
        let mut sink = Sink { path, file: None, len: 0 };
        sink.reopen()?;
        Ok(sink)
    }

    fn reopen(&mut self) -> io::Result<()> {
        if let AuditPath::File(path) = &self.path {
            let file = OpenOptions::new().create(true).append(true).mode(0o640).open(path)?;
            self.len = file.metadata()?.len();
            self.file = Some(file);
        }
        Ok(())
    }

    fn file_path(&self) -> Option<&PathBuf> {
        match &self.path {
            AuditPath::File(p) => Some(p),
            AuditPath::Stdout => None,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return match self.path {
                AuditPath::Stdout => io::stdout().lock().write_all(bytes),
                AuditPath::File(_) => Err(io::Error::other("audit file is not open")),
            };
        };
        match file.write_all(bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = file.set_len(self.len);
                Err(e)
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.sync_data().inspect_err(|_| {
                let _ = file.set_len(self.len);
            }),
            None => io::stdout().lock().flush(),
        }
    }

    /// Whether a write could succeed now: the file is where the config says and has room.
    fn probe(&mut self) -> bool {
        let Some(path) = self.file_path().cloned() else { return true };
        if !path.exists() || self.file.is_none() {
            if self.reopen().is_err() {
                return false;
            }
        }
        nix::sys::statvfs::statvfs(&path).map(|s| s.blocks_available() > 0).unwrap_or(false)
    }
}

struct Writer {
    sink: Sink,
    durability: Durability,
    healthy: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut pending: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut acks = Vec::new();
        let mut last_flush = Instant::now();
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.commit(&mut pending, &mut acks);
                    return;
                }
            };
            // Group commit: take everything that queued up behind the first message.
            let mut control = None;
            for msg in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                self.metrics.audit_queue_depth.dec();
                match msg {
                    Msg::Record { line, ack } => {
                        pending.extend_from_slice(&line);
                        acks.extend(ack);
                    }
                    other => {
                        control = Some(other);
                        break;
                    }
                }
            }
            let flush_due = last_flush.elapsed() >= Duration::from_secs(1) || pending.len() >= 256 * 1024;
            if self.durability == Durability::Sync || flush_due || control.is_some() {
                self.commit(&mut pending, &mut acks);
                last_flush = Instant::now();
            }
            match control {
                None | Some(Msg::Record { .. }) => {}
                Some(Msg::Reopen(ack)) => {
                    let result = self.sink.reopen().map_err(|e| AuditError(e.to_string()));
                    if result.is_ok() {
                        self.healthy.store(true, Ordering::Relaxed);
                    }
                    let _ = ack.send(result);
                }
                Some(Msg::Probe(ack)) => {
                    let _ = ack.send(self.sink.probe());
                }
                Some(Msg::Close(ack)) => {
                    let _ = ack.send(());
                    return;
                }
            }
        }
    }

    /// Writes and (in sync mode) syncs the pending lines, then answers their requests.
    fn commit(&mut self, pending: &mut Vec<u8>, acks: &mut Vec<oneshot::Sender<Result<(), AuditError>>>) {
        if pending.is_empty() && acks.is_empty() {
            return;
        }
        let lines = pending.iter().filter(|&&b| b == b'\n').count() as u64;
        let mut result = self.sink.write(pending);
        if result.is_ok() && self.durability == Durability::Sync {
            let started = Instant::now();
            result = self.sink.sync();
            self.metrics.audit_fsync_duration.observe(started.elapsed().as_secs_f64());
        }
        let result = match result {
            Ok(()) => {
                self.metrics.audit_records.inc_by(lines);
                self.healthy.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.metrics.audit_write_errors.inc();
                self.healthy.store(false, Ordering::Relaxed);
                tracing::error!(error = %e, records = lines, "audit write failed");
                // A file removed from under us is recreated for the next batch.
                if self.sink.file_path().is_some_and(|p| !p.exists()) {
                    let _ = self.sink.reopen();
                }
                Err(AuditError(e.to_string()))
            }
        };
        pending.clear();
        for ack in acks.drain(..) {
            let _ = ack.send(result.clone());
        }
    }
}
