//! The audit log's writer: one thread, group commit, the hash chain and the segments shipped to S3.
//!
//! Every credentials request produces exactly one [`super::CredentialRecord`] before its response is
//! sent. With `durability = "sync"` the request waits until its record is on disk: the writer
//! takes every record that arrived while the previous `fdatasync` ran, writes them in one
//! `write`, syncs once and answers them all (group commit). With `"buffered"` records are
//! acknowledged at once and written in batches: the writer takes what queued up, writes it,
//! then lets the next records gather for a couple of milliseconds (an agent crash loses at
//! most those); the file is synced at least every second and on shutdown.
//!
//! With `chain = true` the writer seals each record as it writes it (see [`super::chain`]): records
//! are encoded by the requests, in parallel, and only numbered and hashed here, in file order. The
//! chain carries on across every way a file ends: renamed by logrotate (the new file's first record
//! names the renamed one), truncated in place (copytruncate), deleted, closed as a segment for
//! shipping, and restarts (from the file's last record, else from the state file
//! `<audit file>.chain` beside it).
//!
//! A batch that cannot be written is cut back off the file (no half lines), its requests fail
//! with `AuditUnavailable`, and the log reports itself unhealthy until a write succeeds again.
//! Lines no request waits for (lifecycle events, buffered records) are kept and retried every
//! second, up to 4 MiB; beyond that they are dropped and counted. A file deleted from under the
//! writer is created again at the configured path; a renamed one keeps receiving records until
//! SIGHUP reopens the path (logrotate's `create` then `postrotate`).
//!
//! With `[audit.ship]` the writer also closes the file as a segment once it reaches
//! `max_segment`, once its first record is `interval` old, and at shutdown: the file moves into the
//! segments directory (see [`super::segment`]) and a new one is started; the shipper takes it from
//! there. Records carry the `AccessKeyId` handed out, never a secret key or session token.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{oneshot, Notify};

use crate::config::{AuditConfig, AuditFormat, AuditPath, Durability};
use crate::metrics::Metrics;
use crate::node::NodeInfo;

use super::chain::Chain;
#[cfg(test)]
use super::record::CredentialRecord;
use super::record::{timestamp, Event, Line, VERSION};
use super::segment::{self, Segments};

/// The record could not be written.
#[derive(Clone, Debug, thiserror::Error)]
#[error("audit log unavailable: {0}")]
pub struct AuditError(String);

type Ack = oneshot::Sender<Result<(), AuditError>>;

enum Msg {
    Record { line: Vec<u8>, at: SystemTime, ack: Option<Ack> },
    Reopen(Ack),
    Probe(oneshot::Sender<bool>),
    Close(oneshot::Sender<()>),
}

/// A handle to the audit log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    durability: Durability,
    format: AuditFormat,
    node: Arc<NodeInfo>,
    healthy: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// Opens the log (failing if it cannot), picks its chain up where it stopped, and starts its
    /// writer thread. With `[audit.ship]`, `segments_ready` is notified whenever a segment closes.
    pub fn open(
        config: &AuditConfig,
        node: &NodeInfo,
        metrics: Arc<Metrics>,
        segments_ready: Arc<Notify>,
    ) -> io::Result<AuditLog> {
        let mut sink = Sink::open(config.path.clone())?;
        let state = match (&config.path, config.chain) {
            (AuditPath::File(path), true) => Some(State::open(&state_path(path))?),
            _ => None,
        };
        let chain = match config.chain {
            true => Some(sink.restore_chain(state.as_ref())?),
            false => None,
        };
        let segments = match (&config.path, &config.ship) {
            (AuditPath::File(path), Some(ship)) => Some(Segments::beside(path, ship)),
            _ => None,
        };
        let opened = sink.first_record()?.map(|first| (first, Instant::now()));
        let (tx, rx) = mpsc::channel();
        let healthy = Arc::new(AtomicBool::new(true));
        let writer = Writer {
            sink,
            durability: config.durability,
            healthy: healthy.clone(),
            metrics: metrics.clone(),
            dirty: false,
            last_sync: Instant::now(),
            chain,
            state,
            segments,
            opened,
            segments_ready,
        };
        std::thread::Builder::new().name("audit-writer".into()).spawn(move || writer.run(rx))?;
        Ok(AuditLog {
            tx,
            durability: config.durability,
            format: config.format,
            node: Arc::new(node.clone()),
            healthy,
            metrics,
        })
    }

    fn encode(&self, event: &Event<'_>, now: SystemTime) -> Vec<u8> {
        let line = Line { v: VERSION, time: timestamp(now), event };
        match self.format {
            AuditFormat::Native => {
                // Most records are well under this: one allocation, no regrowth.
                let mut bytes = Vec::with_capacity(1024);
                serde_json::to_writer(&mut bytes, &line).expect("audit records serialise");
                bytes.push(b'\n');
                bytes
            }
            AuditFormat::Ocsf => super::ocsf::encode(&line, now, &self.node),
        }
    }

    /// Writes `event`; with sync durability, returns once it is on disk.
    pub async fn write(&self, event: &Event<'_>, now: SystemTime) -> Result<(), AuditError> {
        let line = self.encode(event, now);
        match self.durability {
            Durability::Buffered => self.send(Msg::Record { line, at: now, ack: None }),
            Durability::Sync => {
                let (ack, done) = oneshot::channel();
                self.send(Msg::Record { line, at: now, ack: Some(ack) })?;
                done.await.unwrap_or_else(|_| Err(AuditError("audit writer stopped".into())))
            }
        }
    }

    /// Queues `event` without waiting (lifecycle and STS-call events).
    pub fn emit(&self, event: &Event<'_>, now: SystemTime) {
        let line = self.encode(event, now);
        if self.send(Msg::Record { line, at: now, ack: None }).is_err() {
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

    /// Flushes everything queued before this call, closes the open segment when shipping, then
    /// stops the writer.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.send(Msg::Close(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

/// `<audit file>.chain`: where the chain stood after the last write, for a restart that finds the
/// log file empty (rotated or shipped while the agent was down).
pub fn state_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".chain");
    PathBuf::from(name)
}

/// The state file, rewritten in place after every write (no sync: the log's own last record is
/// what a restart trusts first).
struct State {
    file: File,
    saved: Option<(String, Chain)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateRecord {
    seq: u64,
    chain: String,
    /// The file holding record `seq`.
    file: String,
}

impl State {
    fn open(path: &Path) -> io::Result<State> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .mode(0o640)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let saved = serde_json::from_str::<StateRecord>(&text)
            .ok()
            .map(|s| (s.file, Chain { seq: s.seq, head: s.chain, prev_file: None }));
        Ok(State { file, saved })
    }

    fn save(&mut self, chain: &Chain, file: &str) {
        let record = StateRecord { seq: chain.seq, chain: chain.head.clone(), file: file.to_owned() };
        let bytes = serde_json::to_vec(&record).expect("the state serialises");
        let written = self.file.write_all_at(&bytes, 0).and_then(|()| self.file.set_len(bytes.len() as u64));
        if let Err(e) = written {
            tracing::warn!(error = %e, "the audit chain state could not be saved");
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
    /// Where the file ended after our last write: a shorter file was truncated by someone else.
    end: u64,
}

/// Why the file the writer appends to is not the one it wrote its last record to.
#[derive(Debug, PartialEq, Eq)]
enum Break {
    /// Deleted from under the writer: a new file was created at the path.
    Recreated,
    /// Truncated in place (logrotate's copytruncate).
    Truncated,
}

impl Sink {
    fn open(path: AuditPath) -> io::Result<Sink> {
        let mut sink = Sink { path, file: None, batch_start: 0, end: 0 };
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
                .read(true)
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
            self.end = meta.len();
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

    /// The base name of the configured file.
    fn base_name(&self) -> String {
        self.file_path().and_then(|p| p.file_name()).map_or_else(|| "-".into(), |n| n.to_string_lossy().into_owned())
    }

    /// Where the open file is now, if it was renamed since it was opened.
    fn renamed_to(&self) -> Option<PathBuf> {
        use std::os::fd::AsRawFd;
        let file = self.file.as_ref()?;
        let now = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
        (Some(&now) != self.file_path() && file.metadata().is_ok_and(|m| m.nlink() > 0)).then_some(now)
    }

    /// Before a write: whether the file is still the one the last record went to. A file deleted
    /// from under us (no name left) would swallow every record: a new one is opened at the
    /// configured path. A renamed file still has a name and keeps receiving records until
    /// [`Sink::reopen`].
    fn check(&mut self) -> io::Result<Option<Break>> {
        let Some(path) = self.file_path() else { return Ok(None) };
        let meta = match &self.file {
            Some(file) => Some(file.metadata()?),
            None => None,
        };
        match meta {
            Some(meta) if meta.nlink() > 0 => {
                let truncated = meta.len() < self.end;
                self.end = meta.len();
                Ok(truncated.then_some(Break::Truncated))
            }
            _ => {
                tracing::warn!(path = %path.display(), "the audit file was removed; creating it again");
                self.file = None;
                self.reopen()?;
                Ok(Some(Break::Recreated))
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return io::stdout().lock().write_all(bytes);
        };
        self.batch_start = file.metadata()?.len();
        file.write_all(bytes).inspect_err(|_| shrink_to(file, self.batch_start))?;
        self.end = self.batch_start + bytes.len() as u64;
        Ok(())
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
            self.end = self.end.min(self.batch_start);
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

    /// The chain after the file's last record, else after the state file's, else from the start.
    /// A last line cut short (a crash mid-write) is ended, so that the next record starts a line of
    /// its own; `audit verify` names the damaged one.
    fn restore_chain(&mut self, state: Option<&State>) -> io::Result<Chain> {
        let base = self.base_name();
        let dir = self.file_path().and_then(|p| p.parent()).map(Path::to_path_buf);
        let from_state = || match state.and_then(|s| s.saved.clone()) {
            // The log itself held the last record: it was renamed while the agent was down. Name the
            // file it was renamed to, if it is still beside the log.
            Some((file, chain)) if file == base => {
                let renamed = dir.as_deref().and_then(|dir| renamed_while_down(dir, &base, &chain.head));
                Chain { prev_file: Some(renamed.unwrap_or(file)), ..chain }
            }
            Some((file, chain)) => Chain { prev_file: Some(file), ..chain },
            None => Chain::default(),
        };
        let Some(file) = &mut self.file else { return Ok(from_state()) };
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(from_state());
        }
        let tail = read_tail(file, len)?;
        if !tail.ends_with(b"\n") {
            tracing::warn!(
                "the audit file ends in a cut-off record; it is ended and the chain goes on from the last whole one"
            );
            file.write_all(b"\n")?;
            self.end = len + 1;
        }
        let last_whole = tail.strip_suffix(b"\n").unwrap_or(&tail);
        let last_whole = match tail.ends_with(b"\n") {
            true => last_whole,
            false => last_whole.rsplit_once_byte(b'\n').map_or(&b""[..], |(before, _)| before),
        };
        let last = last_whole.rsplit(|&b| b == b'\n').next().unwrap_or_default();
        Ok(Chain::after(last).unwrap_or_else(|| {
            tracing::warn!("the audit file's last record carries no chain; the chain starts again");
            from_state()
        }))
    }

    /// `seq` and time of the file's first record, if it has a chained one.
    fn first_record(&mut self) -> io::Result<Option<(u64, SystemTime)>> {
        let Some(file) = &mut self.file else { return Ok(None) };
        file.seek(SeekFrom::Start(0))?;
        let mut head = Vec::new();
        file.take(64 * 1024).read_to_end(&mut head)?;
        let Some(line) = head.split(|&b| b == b'\n').next().filter(|_| head.contains(&b'\n')) else {
            return Ok(None);
        };
        Ok(segment::first_of(line))
    }
}

/// The file beside the log, named after it (`audit.log.1`, `audit.log-20261202`), whose last record has
/// chain `head`.
fn renamed_while_down(dir: &Path, base: &str, head: &str) -> Option<String> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        let candidate = name.starts_with(base) && name != base && !name.ends_with(".chain") && !name.ends_with(".gz");
        if !candidate || !entry.file_type().is_ok_and(|t| t.is_file()) {
            return None;
        }
        let mut file = File::open(entry.path()).ok()?;
        let len = file.metadata().ok()?.len();
        let tail = read_tail(&mut file, len).ok()?;
        let last = tail.strip_suffix(b"\n")?.rsplit(|&b| b == b'\n').next()?;
        (Chain::after(last)?.head == head).then_some(name)
    })
}

/// The last 64 KiB of the file: more than any record.
fn read_tail(file: &mut File, len: u64) -> io::Result<Vec<u8>> {
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    Ok(tail)
}

trait RsplitOnceByte {
    fn rsplit_once_byte(&self, b: u8) -> Option<(&[u8], &[u8])>;
}

impl RsplitOnceByte for [u8] {
    fn rsplit_once_byte(&self, b: u8) -> Option<(&[u8], &[u8])> {
        let at = self.iter().rposition(|&c| c == b)?;
        Some((&self[..at], &self[at + 1..]))
    }
}

/// Lines read from the queue and not yet written.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Every line's bytes and time, in order.
    lines: Vec<(Range<usize>, SystemTime)>,
    /// Which of `lines` nobody waits for (lifecycle events, buffered records): kept for the next
    /// attempt when a write fails, up to [`RETAIN_LIMIT`] bytes.
    unacked: Vec<usize>,
    acks: Vec<Ack>,
}

impl Batch {
    fn push(&mut self, line: Vec<u8>, at: SystemTime, ack: Option<Ack>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&line);
        match ack {
            Some(ack) => self.acks.push(ack),
            None => self.unacked.push(self.lines.len()),
        }
        self.lines.push((start..self.bytes.len(), at));
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.acks.is_empty()
    }

    fn count(&self) -> u64 {
        self.lines.len() as u64
    }

    /// After a failed write: keeps only the unacknowledged lines (no request waits for them),
    /// up to [`RETAIN_LIMIT`] bytes. Returns how many lines were dropped for lack of room.
    fn retain_unacked(&mut self) -> u64 {
        let mut kept = Batch::default();
        let mut dropped = 0;
        for &i in &self.unacked {
            let (range, at) = self.lines[i].clone();
            if kept.bytes.len() + range.len() <= RETAIN_LIMIT {
                kept.push(self.bytes[range].to_vec(), at, None);
            } else {
                dropped += 1;
            }
        }
        *self = kept;
        dropped
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.lines.clear();
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
    /// Where the chain stands (`audit.chain`); `None` when off.
    chain: Option<Chain>,
    state: Option<State>,
    /// Where closed segments go (`[audit.ship]`).
    segments: Option<Segments>,
    /// The open file's first record (`seq`, time) and when the writer started it.
    opened: Option<((u64, SystemTime), Instant)>,
    segments_ready: Arc<Notify>,
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
                    Msg::Record { line, at, ack } => batch.push(line, at, ack),
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
            if self.segment_due() {
                self.close_segment(&mut batch);
            }
            let lull = control.is_none() && took > 0 && self.durability == Durability::Buffered;
            match control {
                None | Some(Msg::Record { .. }) => {}
                Some(Msg::Reopen(ack)) => {
                    let _ = ack.send(self.reopen(&mut batch));
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
            tracing::error!(records = batch.count(), "audit records could not be written before exit");
            self.metrics.audit_records_dropped.inc_by(batch.count());
        }
        self.close_segment(batch);
    }

    /// SIGHUP: reopens the configured path. A file logrotate renamed meanwhile is named by the new
    /// file's first record; when shipping, it becomes a segment like any other.
    fn reopen(&mut self, batch: &mut Batch) -> Result<(), AuditError> {
        if self.dirty {
            self.commit(batch, true);
        }
        let renamed = self.sink.renamed_to();
        // Healthy again only once a write succeeds (a new file can be on a full disk).
        self.sink.reopen().map_err(|e| AuditError(e.to_string()))?;
        if let Some(old) = renamed {
            let name = old.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            tracing::info!(renamed_to = %old.display(), "the audit file was rotated; records go to a new file");
            let segment = self.opened.take().map(|(first, _)| first);
            let name = match (&self.segments, segment) {
                (Some(segments), Some(first)) => match segments.adopt(&old, first) {
                    Ok(segment) => {
                        self.segments_ready.notify_one();
                        segment
                    }
                    Err(e) => {
                        tracing::error!(error = %e, file = %old.display(), "a rotated audit file could not be queued for shipping");
                        name
                    }
                },
                _ => name,
            };
            self.start_file(name);
        }
        Ok(())
    }

    /// The next record starts a new file; `prev_file` names the file holding the last one.
    fn start_file(&mut self, prev_file: String) {
        self.opened = None;
        if let Some(chain) = &mut self.chain {
            if chain.seq > 0 {
                if let Some(state) = &mut self.state {
                    state.save(chain, &prev_file);
                }
                chain.prev_file = Some(prev_file);
            }
        }
    }

    fn segment_due(&self) -> bool {
        match (&self.segments, &self.opened) {
            (Some(segments), Some((_, opened))) => {
                self.sink.end >= segments.max_segment || opened.elapsed() >= segments.interval
            }
            _ => false,
        }
    }

    /// Moves the open file into the segments directory and starts a new one.
    fn close_segment(&mut self, batch: &mut Batch) {
        let (Some(segments), Some((first, _)), AuditPath::File(path)) =
            (self.segments.clone(), self.opened, self.sink.path.clone())
        else {
            return;
        };
        if self.dirty {
            self.commit(batch, true);
        }
        match segments.close(&path, first) {
            Ok(name) => {
                self.sink.file = None;
                if let Err(e) = self.sink.reopen() {
                    tracing::error!(error = %e, "the audit file could not be started again after closing a segment");
                }
                self.start_file(name);
                self.segments_ready.notify_one();
            }
            Err(e) => {
                // Records keep going to the open file; the next check tries again.
                tracing::error!(error = %e, "an audit segment could not be closed");
                self.opened = self.opened.map(|(first, _)| (first, Instant::now()));
            }
        }
    }

    /// The batch as written: sealed into the chain when it is on, with the chain after it.
    fn seal(&mut self, batch: &Batch) -> io::Result<(Option<Vec<u8>>, Option<Chain>)> {
        let broke = self.sink.check()?;
        if broke.is_some() {
            let name = self.sink.base_name();
            tracing::warn!(?broke, "the audit file is not the one the last record went to; the chain names it");
            self.start_file(name);
        }
        let Some(chain) = &self.chain else { return Ok((None, None)) };
        let mut chain = chain.clone();
        let mut out = Vec::with_capacity(batch.bytes.len() + batch.lines.len() * 96);
        for (range, _) in &batch.lines {
            chain.seal(&batch.bytes[range.clone()], &mut out);
        }
        Ok((Some(out), Some(chain)))
    }

    /// Writes the batch (and syncs the file if `sync`), then answers the requests waiting for it.
    /// On failure the waiting requests get [`AuditError`] and unacknowledged lines are kept.
    fn commit(&mut self, batch: &mut Batch, sync: bool) {
        if batch.is_empty() && !(sync && self.dirty) {
            return;
        }
        let mut result = Ok(());
        let mut chain = None;
        if !batch.bytes.is_empty() {
            result = self.seal(batch).and_then(|(sealed, after)| {
                chain = after;
                self.sink.write(sealed.as_deref().unwrap_or(&batch.bytes))
            });
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
                self.wrote(batch, chain);
                self.metrics.audit_records.inc_by(batch.count());
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
                tracing::error!(error = %e, records = batch.count(), "audit write failed");
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

    /// After a batch reached the file: the chain moves on, and a new file has its first record.
    fn wrote(&mut self, batch: &Batch, chain: Option<Chain>) {
        let Some(&(_, first_at)) = batch.lines.first() else { return };
        let first_seq = self.chain.as_ref().map_or(0, |c| c.seq + 1);
        if let Some(chain) = chain {
            if let Some(state) = &mut self.state {
                state.save(&chain, &self.sink.base_name());
            }
            self.chain = Some(chain);
        }
        if self.opened.is_none() {
            self.opened = Some(((first_seq, first_at), Instant::now()));
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

    fn open(path: AuditPath, durability: Durability, metrics: Arc<Metrics>) -> io::Result<AuditLog> {
        let config = AuditConfig { path, durability, ..AuditConfig::default() };
        let node = NodeInfo { cluster_id: "j-1".into(), instance_id: "i-1".into() };
        AuditLog::open(&config, &node, metrics, Arc::new(Notify::new()))
    }

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
        let log = open(AuditPath::File(path.clone()), Durability::Sync, metrics.clone()).unwrap();
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
        // No chain: its state file would go beside /dev/full.
        let config = AuditConfig { path: AuditPath::File("/dev/full".into()), chain: false, ..AuditConfig::default() };
        let node = NodeInfo { cluster_id: "j-1".into(), instance_id: "i-1".into() };
        let log = AuditLog::open(&config, &node, metrics.clone(), Arc::new(Notify::new())).unwrap();
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
        let log = open(AuditPath::File(path.clone()), Durability::Buffered, Arc::new(Metrics::new())).unwrap();
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
        let now = SystemTime::UNIX_EPOCH;
        batch.push(b"start\n".to_vec(), now, None);
        batch.push(b"request\n".to_vec(), now, Some(ack));
        batch.push(b"sts\n".to_vec(), now, None);
        assert_eq!(batch.count(), 3);
        assert_eq!(batch.retain_unacked(), 0);
        assert_eq!(batch.bytes, b"start\nsts\n");
        assert_eq!(batch.count(), 2);
        assert!(batch.acks.is_empty());
        // Kept lines stay individually droppable.
        batch.push(vec![b'x'; RETAIN_LIMIT], now, None);
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

    fn open_with(config: AuditConfig) -> AuditLog {
        let node = NodeInfo { cluster_id: "j-1".into(), instance_id: "i-1".into() };
        AuditLog::open(&config, &node, Arc::new(Metrics::new()), Arc::new(Notify::new())).unwrap()
    }

    async fn write_n(log: &AuditLog, from: usize, n: usize) {
        for i in from..from + n {
            log.write(&Event::Credentials(&record(i)), SystemTime::now()).await.unwrap();
        }
    }

    fn verify(paths: &[&std::path::Path]) -> Result<super::super::verify::Summary, super::super::verify::Break> {
        let pieces = paths.iter().map(|p| super::super::verify::Piece::read(p).unwrap()).collect();
        super::super::verify::verify(pieces, super::super::verify::Missing::File)
    }

    fn first_line(path: &std::path::Path) -> serde_json::Value {
        lines(path).into_iter().next().unwrap()
    }

    #[tokio::test]
    async fn the_chain_carries_on_across_rename_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let rotated = dir.path().join("audit.log-20261202");
        let log = open_with(AuditConfig { path: AuditPath::File(path.clone()), ..AuditConfig::default() });
        write_n(&log, 0, 3).await;
        std::fs::rename(&path, &rotated).unwrap();
        write_n(&log, 3, 1).await; // still to the renamed file, as before SIGHUP
        log.reopen().await.unwrap();
        write_n(&log, 4, 2).await;
        log.close().await;
        assert_eq!(first_line(&path)["prev_file"], "audit.log-20261202");
        assert_eq!(first_line(&path)["seq"], 5);
        let summary = verify(&[&path, &rotated]).unwrap();
        assert_eq!((summary.records, summary.last_seq), (6, 6), "{summary}");
    }

    #[tokio::test]
    async fn the_chain_carries_on_across_copytruncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let copy = dir.path().join("audit.log.1");
        let log = open_with(AuditConfig { path: AuditPath::File(path.clone()), ..AuditConfig::default() });
        write_n(&log, 0, 3).await;
        std::fs::copy(&path, &copy).unwrap();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
        write_n(&log, 3, 2).await;
        log.close().await;
        assert_eq!(first_line(&path)["prev_file"], "audit.log");
        assert_eq!(verify(&[&copy, &path]).unwrap().records, 5);
    }

    #[tokio::test]
    async fn a_restart_carries_the_chain_on_from_the_file_or_from_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let config = AuditConfig { path: AuditPath::File(path.clone()), ..AuditConfig::default() };
        let log = open_with(config.clone());
        write_n(&log, 0, 2).await;
        log.close().await;
        let log = open_with(config.clone());
        write_n(&log, 2, 2).await;
        log.close().await;
        assert_eq!(verify(&[&path]).unwrap().last_seq, 4);
        // Rotated while the agent was down: the new file starts from the state file.
        let rotated = dir.path().join("audit.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        let log = open_with(config);
        write_n(&log, 4, 1).await;
        log.close().await;
        assert_eq!(first_line(&path)["seq"], 5);
        assert_eq!(first_line(&path)["prev_file"], "audit.log.1");
        assert_eq!(verify(&[&path, &rotated]).unwrap().records, 5);
    }

    #[tokio::test]
    async fn a_record_cut_off_by_a_crash_is_ended_and_named_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let config = AuditConfig { path: AuditPath::File(path.clone()), ..AuditConfig::default() };
        let log = open_with(config.clone());
        write_n(&log, 0, 2).await;
        log.close().await;
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"seq\":3,\"v\":1,\"ti").unwrap();
        let log = open_with(config);
        write_n(&log, 2, 1).await;
        log.close().await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        let broken = verify(&[&path]).unwrap_err();
        assert_eq!((broken.place.ends_with("audit.log:3"), broken.kind), (true, "malformed"), "{broken}");
    }

    #[tokio::test]
    async fn with_shipping_full_segments_are_closed_into_the_segments_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let ship = crate::config::ShipConfig {
            bucket: "b".into(),
            prefix: String::new(),
            endpoint_url: None,
            interval: Duration::from_secs(3600),
            max_segment: 1500,
            max_backlog: 1 << 30,
        };
        let ready = Arc::new(Notify::new());
        let config = AuditConfig { path: AuditPath::File(path.clone()), ship: Some(ship), ..AuditConfig::default() };
        let node = NodeInfo { cluster_id: "j-1".into(), instance_id: "i-1".into() };
        let log = AuditLog::open(&config, &node, Arc::new(Metrics::new()), ready.clone()).unwrap();
        write_n(&log, 0, 10).await;
        log.close().await;
        let segments: Vec<_> = segment::waiting(&segment::dir_of(&path)).unwrap();
        assert!(segments.len() >= 3, "{segments:?}");
        // At close the open file became a segment too: nothing is left behind unshipped.
        assert!(std::fs::metadata(&path).map_or(true, |m| m.len() == 0));
        let paths: Vec<_> = segments.iter().map(|(p, _)| p.as_path()).collect();
        let summary = verify(&paths).unwrap();
        assert_eq!((summary.records, summary.files), (10, segments.len()), "{summary}");
        let second = paths[1].file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(Some(first_line(paths[1])["seq"].as_u64().unwrap()), segment::seq_of(&second));
        assert_eq!(first_line(paths[1])["prev_file"], paths[0].file_name().unwrap().to_string_lossy().as_ref());
    }

    #[tokio::test]
    async fn without_the_chain_records_carry_no_seq() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log =
            open_with(AuditConfig { path: AuditPath::File(path.clone()), chain: false, ..AuditConfig::default() });
        write_n(&log, 0, 2).await;
        log.close().await;
        assert!(lines(&path).iter().all(|l| l.get("seq").is_none() && l.get("chain").is_none()));
        assert!(!state_path(&path).exists());
    }
}
