//! The audit log's writer: one thread, group commit.
//!
//! Every credentials request produces exactly one [`super::CredentialRecord`] before its response is
//! sent. With `durability = "sync"` the request waits until its record is on disk: the writer
//! takes every record that arrived while the previous `fdatasync` ran, writes them in one
//! `write`, syncs once and answers them all (group commit). With `"buffered"` records are
//! acknowledged at once and written in batches: the writer takes what queued up, writes it,
//! then lets the next records gather for a couple of milliseconds (an agent crash loses at
//! most those); the file is synced at least every second and on shutdown.
//!
//! A batch that cannot be written is cut back off the file (no half lines), its requests fail
//! with `AuditUnavailable`, and the log reports itself unhealthy until a write succeeds again.
//! Lines no request waits for (lifecycle events, buffered records) are kept and retried every
//! second, up to 4 MiB; beyond that they are dropped and counted. A file deleted from under the
//! writer is created again at the configured path; a renamed one keeps receiving records until
//! SIGHUP reopens the path (logrotate's `create` then `postrotate`).
//! Records carry the `AccessKeyId` handed out, never a secret key or session token.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use crate::config::{AuditPath, Durability};
use crate::metrics::Metrics;

#[cfg(test)]
use super::record::CredentialRecord;
use super::record::{timestamp, Event, Line, VERSION};

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
        let writer = Writer {
            sink,
            durability,
            healthy: healthy.clone(),
            metrics: metrics.clone(),
            dirty: false,
            last_sync: Instant::now(),
        };
        std::thread::Builder::new().name("audit-writer".into()).spawn(move || writer.run(rx))?;
        Ok(AuditLog { tx, durability, healthy, metrics })
    }

    fn encode(&self, event: &Event<'_>, now: SystemTime) -> Vec<u8> {
        // Most records are well under this: one allocation, no regrowth.
        let mut line = Vec::with_capacity(1024);
        serde_json::to_writer(&mut line, &Line { v: VERSION, time: timestamp(now), event })
            .expect("audit records serialise");
        line.push(b'\n');
        line
    }

    /// Writes `event`; with sync durability, returns once it is on disk.
    pub async fn write(&self, event: &Event<'_>, now: SystemTime) -> Result<(), AuditError> {
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
    pub fn emit(&self, event: &Event<'_>, now: SystemTime) {
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
    /// The file's length before the last batch was written, to cut that batch back off. Only ever
    /// used to shrink the file: someone else may have truncated it meanwhile (copytruncate).
    batch_start: u64,
}

impl Sink {
    fn open(path: AuditPath) -> io::Result<Sink> {
        let mut sink = Sink { path, file: None, batch_start: 0 };
        sink.reopen()?;
        Ok(sink)
    }

    /// Opens the configured path: never through a symlink planted there, and never a file another
    /// user owns (they could read the records, or swap the file).
    fn reopen(&mut self) -> io::Result<()> {
        if let AuditPath::File(path) = &self.path {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(path)
                .map_err(|e| match e.raw_os_error() {
                    Some(code) if code == nix::errno::Errno::ELOOP as i32 => io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("{} is a symbolic link; the audit log is never opened through one", path.display()),
                    ),
                    _ => e,
                })?;
            let meta = file.metadata()?;
            let me = nix::unistd::geteuid().as_raw();
            if meta.uid() != me {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{} is owned by uid {}, not by the agent's user (uid {me})", path.display(), meta.uid()),
                ));
            }
            self.batch_start = meta.len();
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

    /// A file deleted from under us (no name left) would swallow every record: open a new
    /// one at the configured path. A renamed file (logrotate before its SIGHUP) still has a
    /// name and keeps receiving records until [`Sink::reopen`].
    fn ensure_linked(&mut self) -> io::Result<()> {
        let Some(path) = self.file_path() else { return Ok(()) };
        let linked = match &self.file {
            Some(file) => file.metadata()?.nlink() > 0,
            None => false,
        };
        if !linked {
            tracing::warn!(path = %path.display(), "the audit file was removed; creating it again");
            self.file = None;
            self.reopen()?;
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.ensure_linked()?;
        let Some(file) = &mut self.file else {
            return io::stdout().lock().write_all(bytes);
        };
        self.batch_start = file.metadata()?.len();
        file.write_all(bytes).inspect_err(|_| shrink_to(file, self.batch_start))
    }

    fn sync(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.sync_data(),
            None => io::stdout().lock().flush(),
        }
    }

    /// Cuts the last batch back off (after a failed sync).
    fn cut(&mut self) {
        if let Some(file) = &self.file {
            shrink_to(file, self.batch_start);
        }
    }

    /// Whether a write could succeed now: the file is where the config says and has room.
    fn probe(&mut self) -> bool {
        let Some(path) = self.file_path().cloned() else { return true };
        let linked = self.file.as_ref().and_then(|f| f.metadata().ok()).is_some_and(|m| m.nlink() > 0);
        if (!linked || !path.exists()) && self.reopen().is_err() {
            return false;
        }
        nix::sys::statvfs::statvfs(&path).map(|s| s.blocks_available() > 0).unwrap_or(false)
    }
}

/// Lines read from the queue and not yet written.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
    /// Lines nobody waits for (lifecycle events, buffered records): kept for the next attempt
    /// when a write fails, up to [`RETAIN_LIMIT`] bytes.
    unacked: Vec<Range<usize>>,
    acks: Vec<oneshot::Sender<Result<(), AuditError>>>,
}

impl Batch {
    fn push(&mut self, line: Vec<u8>, ack: Option<oneshot::Sender<Result<(), AuditError>>>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&line);
        self.lines += 1;
        match ack {
            Some(ack) => self.acks.push(ack),
            None => self.unacked.push(start..self.bytes.len()),
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.acks.is_empty()
    }

    /// After a failed write: keeps only the unacknowledged lines (no request waits for them),
    /// up to [`RETAIN_LIMIT`] bytes. Returns how many lines were dropped for lack of room.
    fn retain_unacked(&mut self) -> u64 {
        let mut kept = Vec::new();
        let mut ranges = Vec::new();
        let mut dropped = 0;
        for range in self.unacked.drain(..) {
            if kept.len() + range.len() <= RETAIN_LIMIT {
                let start = kept.len();
                kept.extend_from_slice(&self.bytes[range]);
                ranges.push(start..kept.len());
            } else {
                dropped += 1;
            }
        }
        self.lines = ranges.len() as u64;
        self.unacked = ranges;
        self.bytes = kept;
        self.acks.clear();
        dropped
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.lines = 0;
        self.unacked.clear();
        self.acks.clear();
    }
}

/// Unacknowledged lines kept across failed writes; beyond this they are dropped and counted.
const RETAIN_LIMIT: usize = 4 * 1024 * 1024;
/// Buffered mode syncs at least this often; failed writes are retried this often.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// In buffered mode, after writing what it took, the writer lets records gather this long.
const BUFFERED_GATHER: Duration = Duration::from_millis(2);

struct Writer {
    sink: Sink,
    durability: Durability,
    healthy: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    /// Written since the last sync.
    dirty: bool,
    last_sync: Instant,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut batch = Batch::default();
        loop {
            let wait = if self.dirty || !batch.is_empty() {
                FLUSH_INTERVAL.saturating_sub(self.last_sync.elapsed()).max(Duration::from_millis(10))
            } else {
                FLUSH_INTERVAL
            };
            let first = match rx.recv_timeout(wait) {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.close(&mut batch);
                    return;
                }
            };
            // Group commit: take everything that queued up behind the first message.
            let mut control = None;
            let mut took = 0;
            for msg in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                self.metrics.audit_queue_depth.dec();
                took += 1;
                match msg {
                    Msg::Record { line, ack } => batch.push(line, ack),
                    other => {
                        control = Some(other);
                        break;
                    }
                }
            }
            // Sync mode: write and sync now, requests are waiting. Buffered: write now (a crash
            // of the agent then loses nothing already written), sync every FLUSH_INTERVAL.
            // While the sink is broken, lines nobody waits for are retried every FLUSH_INTERVAL.
            let due = self.last_sync.elapsed() >= FLUSH_INTERVAL;
            let healthy = self.healthy.load(Ordering::Relaxed);
            if !batch.is_empty() && (healthy || due || !batch.acks.is_empty() || control.is_some()) {
                self.commit(&mut batch, self.durability == Durability::Sync);
            }
            if self.dirty && self.last_sync.elapsed() >= FLUSH_INTERVAL {
                self.commit(&mut batch, true);
            }
            let lull = control.is_none() && took > 0 && self.durability == Durability::Buffered;
            match control {
                None | Some(Msg::Record { .. }) => {}
                Some(Msg::Reopen(ack)) => {
                    if self.dirty {
                        self.commit(&mut batch, true);
                    }
                    // Healthy again only once a write succeeds (a new file can be on a full disk).
                    let _ = ack.send(self.sink.reopen().map_err(|e| AuditError(e.to_string())));
                }
                Some(Msg::Probe(ack)) => {
                    let _ = ack.send(self.sink.probe());
                }
                Some(Msg::Close(ack)) => {
                    self.close(&mut batch);
                    let _ = ack.send(());
                    return;
                }
            }
            if lull {
                // Buffered records arrive without anyone waiting: let them gather instead of
                // being woken (a futex call on the request path) and writing once per record.
                std::thread::sleep(BUFFERED_GATHER);
            }
        }
    }

    fn close(&mut self, batch: &mut Batch) {
        self.commit(batch, true);
        if !batch.is_empty() {
            tracing::error!(records = batch.lines, "audit records could not be written before exit");
            self.metrics.audit_records_dropped.inc_by(batch.lines);
        }
    }

    /// Writes the batch (and syncs the file if `sync`), then answers the requests waiting for it.
    /// On failure the waiting requests get [`AuditError`] and unacknowledged lines are kept.
    fn commit(&mut self, batch: &mut Batch, sync: bool) {
        if batch.is_empty() && !(sync && self.dirty) {
            return;
        }
        let mut result = Ok(());
        if !batch.bytes.is_empty() {
            result = self.sink.write(&batch.bytes);
            if result.is_ok() {
                self.dirty = true;
            }
        }
        if result.is_ok() && sync && self.dirty {
            let started = Instant::now();
            result = self.sink.sync();
            self.metrics.audit_fsync_duration.observe(started.elapsed().as_secs_f64());
            if result.is_err() {
                self.sink.cut();
            }
        }
        if sync || result.is_err() {
            // A sync (or its attempt) restarts the clock: failed writes are retried, and the
            // buffered flush comes, once per FLUSH_INTERVAL.
            self.last_sync = Instant::now();
        }
        match result {
            Ok(()) => {
                if sync {
                    self.dirty = false;
                }
                self.metrics.audit_records.inc_by(batch.lines);
                self.healthy.store(true, Ordering::Relaxed);
                for ack in batch.acks.drain(..) {
                    let _ = ack.send(Ok(()));
                }
                batch.clear();
            }
            Err(e) => {
                self.metrics.audit_write_errors.inc();
                self.healthy.store(false, Ordering::Relaxed);
                self.dirty = false;
                tracing::error!(error = %e, records = batch.lines, "audit write failed");
                let error = AuditError(e.to_string());
                for ack in batch.acks.drain(..) {
                    let _ = ack.send(Err(error.clone()));
                }
                let dropped = batch.retain_unacked();
                if dropped > 0 {
                    self.metrics.audit_records_dropped.inc_by(dropped);
                    tracing::error!(records = dropped, "audit records dropped: the log stayed unwritable");
                }
            }
        }
    }
}

/// Cuts `file` back to `len` if it is longer: never lengthens it (a file truncated by someone else
/// since would otherwise grow a hole of NULs).
fn shrink_to(file: &File, len: u64) {
    if file.metadata().is_ok_and(|m| m.len() > len) {
        let _ = file.set_len(len);
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests date records with the real clock
mod tests {
    use super::*;

    fn record(n: usize) -> CredentialRecord {
        CredentialRecord { request_id: format!("r-{n}"), status: 200, ..Default::default() }
    }

    fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_sync_writes_are_whole_lines_each_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let metrics = Arc::new(Metrics::new());
        let log = AuditLog::open(&AuditPath::File(path.clone()), Durability::Sync, metrics.clone()).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|n| {
                let log = log.clone();
                tokio::spawn(async move { log.write(&Event::Credentials(&record(n)), SystemTime::now()).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        // Acknowledged means on disk: the file holds every record now, before close.
        let written = lines(&path);
        assert_eq!(written.len(), 200);
        let mut ids: Vec<_> = written.iter().map(|l| l["request_id"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 200);
        assert!(written.iter().all(|l| l["v"] == 1 && l["event"] == "credentials" && l["user"].is_null()));
        log.close().await;
        assert!(metrics.encode().contains("emrfs_role_agent_audit_records_total 200\n"));
    }

    #[tokio::test]
    async fn sync_write_to_a_full_device_fails_closed_and_counts_what_it_could_not_keep() {
        let metrics = Arc::new(Metrics::new());
        let log = AuditLog::open(&AuditPath::File("/dev/full".into()), Durability::Sync, metrics.clone()).unwrap();
        log.emit(&Event::Stop { reason: "kept".into() }, SystemTime::now());
        let err = log.write(&Event::Credentials(&record(1)), SystemTime::now()).await.unwrap_err();
        assert!(err.to_string().contains("audit log unavailable"), "{err}");
        assert!(!log.healthy.load(Ordering::Relaxed));
        log.close().await;
        let text = metrics.encode();
        assert!(!text.contains("emrfs_role_agent_audit_write_errors_total 0\n"), "{text}");
        // At close the kept line could not be written either: counted as dropped.
        assert!(text.contains("emrfs_role_agent_audit_records_dropped_total 1\n"), "{text}");
    }

    #[tokio::test]
    async fn buffered_records_reach_the_file_without_waiting_for_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log =
            AuditLog::open(&AuditPath::File(path.clone()), Durability::Buffered, Arc::new(Metrics::new())).unwrap();
        log.write(&Event::Credentials(&record(1)), SystemTime::now()).await.unwrap();
        // Waits for the record, not for a time: the deadline only ends a test that would hang.
        let deadline = Instant::now() + Duration::from_secs(30);
        while lines(&path).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(lines(&path).len(), 1);
        log.close().await;
    }

    #[test]
    fn a_failed_batch_keeps_only_the_lines_nobody_waits_for() {
        let mut batch = Batch::default();
        let (ack, _done) = oneshot::channel();
        batch.push(b"start\n".to_vec(), None);
        batch.push(b"request\n".to_vec(), Some(ack));
        batch.push(b"sts\n".to_vec(), None);
        assert_eq!(batch.lines, 3);
        assert_eq!(batch.retain_unacked(), 0);
        assert_eq!(batch.bytes, b"start\nsts\n");
        assert_eq!(batch.lines, 2);
        assert!(batch.acks.is_empty());
        // Kept lines stay individually droppable.
        batch.push(vec![b'x'; RETAIN_LIMIT], None);
        assert_eq!(batch.retain_unacked(), 1);
        assert_eq!(batch.bytes, b"start\nsts\n");
    }

    #[test]
    fn a_symlink_at_the_audit_path_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"").unwrap();
        let path = dir.path().join("audit.log");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = Sink::open(AuditPath::File(path)).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"");
    }

    #[test]
    fn an_audit_file_owned_by_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "CI runs as root");
            eprintln!("NOT RUN, needs root: an_audit_file_owned_by_another_user_is_refused");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, b"").unwrap();
        nix::unistd::chown(&path, Some(65534.into()), None).unwrap();
        let err = Sink::open(AuditPath::File(path)).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    }

    #[test]
    fn cutting_a_batch_back_never_lengthens_a_file_truncated_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut sink = Sink::open(AuditPath::File(path.clone())).unwrap();
        sink.write(b"{\"a\":1}\n").unwrap();
        sink.write(b"{\"b\":2}\n").unwrap();
        // Someone truncates the file in place (`: > audit.log`, logrotate's copytruncate) …
        OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
        // … and the batch written before is cut back after a failed sync.
        sink.cut();
        assert_eq!(std::fs::read(&path).unwrap(), b"", "no NULs up to a stale length");
        sink.write(b"{\"c\":3}\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"c\":3}\n", "appends go to the new end");
        sink.cut();
        assert_eq!(std::fs::read(&path).unwrap(), b"", "a failed batch is still cut off");
    }
}
