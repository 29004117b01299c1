//! Shipping closed segments of the audit log to S3 (SPEC §7.3).
//!
//! Each segment is gzip'd (the same bytes every time) and uploaded with the node's own credentials
//! to `<bucket>/<prefix>cluster_id=<id>/instance_id=<id>/dt=<YYYY-MM-DD>/<segment>.jsonl.gz`, then its
//! digest object `<segment>.digest.json`; only then is the local segment deleted. Object names come
//! from the segment's first record, so an upload cut short (an outage, a SIGKILL) is simply made
//! again under the same names: nothing is lost and nothing is shipped twice. During an outage the
//! segments wait on disk; above `max_backlog` the agent says so (log and metric) and keeps them all.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::Notify;

use super::chain::Sealed;
use super::segment;
use crate::clock::Clock;
use crate::config::ShipConfig;
use crate::metrics::Metrics;
use crate::node::NodeInfo;

/// What the digest object beside each shipped segment says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentDigest {
    pub v: u8,
    /// The segment's object key.
    pub object: String,
    pub cluster_id: String,
    pub instance_id: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    /// `chain` of the segment's last record.
    pub last_chain: String,
    /// Hex SHA-256 of the object's (gzip'd) bytes.
    pub sha256: String,
}

/// An S3 client for `endpoint_url` (or the SDK's endpoint); path-style addressing whenever an
/// endpoint is given, as S3-compatible endpoints expect.
pub fn s3_client(sdk: &SdkConfig, endpoint_url: Option<&str>) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(sdk).timeout_config(
        aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(60))
            .build(),
    );
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    if endpoint_url.is_some() || sdk.endpoint_url().is_some() {
        builder = builder.force_path_style(true);
    }
    if sdk.region().is_none() {
        builder = builder.region(aws_sdk_s3::config::Region::from_static("us-east-1"));
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// Ships the segments of one audit log.
pub struct Shipper {
    client: aws_sdk_s3::Client,
    config: ShipConfig,
    dir: PathBuf,
    node: NodeInfo,
    metrics: Arc<Metrics>,
    /// Notified by the writer whenever a segment closes.
    ready: Arc<Notify>,
    over_backlog: AtomicBool,
    /// Set when the agent stops: [`Shipper::run`] returns after the pass it is in.
    stopping: AtomicBool,
    clock: Arc<dyn Clock>,
}

/// Waits between failed attempts: 1 s, doubling, at most `interval`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

impl Shipper {
    pub fn new(
        sdk: &SdkConfig,
        config: &ShipConfig,
        log: &Path,
        node: &NodeInfo,
        metrics: Arc<Metrics>,
        ready: Arc<Notify>,
        clock: Arc<dyn Clock>,
    ) -> Shipper {
        Shipper {
            client: s3_client(sdk, config.endpoint_url.as_deref()),
            config: config.clone(),
            dir: segment::dir_of(log),
            node: node.clone(),
            metrics,
            ready,
            over_backlog: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            clock,
        }
    }

    /// Ships whatever is waiting, then again whenever a segment closes; after a failure, again
    /// after a backoff. Returns once [`Shipper::stop`] was called and the pass it was in is done.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let shipped = self.ship_waiting().await;
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            let wait = match shipped {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    self.config.interval
                }
                Err(()) => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.config.interval.max(FIRST_BACKOFF));
                    wait
                }
            };
            let _ = tokio::time::timeout(wait, self.ready.notified()).await;
        }
    }

    /// At stop, with the writer closed: lets the running pass finish (an upload is never cut off and
    /// made again), then ships what is left, all within `limit`. Whether everything was shipped.
    pub async fn stop(self: Arc<Self>, task: tokio::task::JoinHandle<()>, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        self.stopping.store(true, Ordering::Relaxed);
        self.ready.notify_one();
        let mut task = task;
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
            return false;
        }
        matches!(tokio::time::timeout_at(deadline, self.ship_waiting()).await, Ok(Ok(())))
    }

    /// Ships every waiting segment, oldest first; stops at the first that fails (it is logged and
    /// counted, and stays on disk).
    pub async fn ship_waiting(&self) -> Result<(), ()> {
        let waiting = match segment::waiting(&self.dir) {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::error!(error = %e, dir = %self.dir.display(), "the audit segments directory cannot be read");
                return Err(());
            }
        };
        let mut backlog: u64 = waiting.iter().map(|(_, len)| len).sum();
        self.note_backlog(backlog);
        for (path, len) in waiting {
            if let Err(e) = self.ship(&path).await {
                self.metrics.audit_ship_failures.inc();
                tracing::warn!(segment = %path.display(), error = %e, backlog_bytes = backlog, "shipping an audit segment failed; it stays on disk and is tried again");
                return Err(());
            }
            backlog -= len;
            self.note_backlog(backlog);
        }
        Ok(())
    }

    fn note_backlog(&self, bytes: u64) {
        self.metrics.audit_ship_backlog_bytes.set(bytes as i64);
        let over = bytes > self.config.max_backlog;
        self.metrics.audit_ship_backlog_exceeded.set(over as i64);
        if over && !self.over_backlog.swap(true, Ordering::Relaxed) {
            tracing::error!(
                backlog_bytes = bytes,
                max_backlog = self.config.max_backlog,
                "audit backlog of {bytes} bytes exceeds max_backlog ({}); records are kept, shipping goes on trying",
                self.config.max_backlog
            );
        } else if !over && self.over_backlog.swap(false, Ordering::Relaxed) {
            tracing::info!(backlog_bytes = bytes, "audit backlog back under max_backlog");
        }
    }

    /// Uploads one segment and its digest, then deletes it.
    async fn ship(&self, path: &Path) -> Result<(), String> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = tokio::fs::read(path).await.map_err(|e| format!("reading it: {e}"))?;
        let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
        let date = segment::date_of(stem).ok_or("its name carries no date")?;
        let base = format!(
            "{}cluster_id={}/instance_id={}/dt={date}/{stem}",
            self.config.prefix, self.node.cluster_id, self.node.instance_id
        );
        let object = format!("{base}.jsonl.gz");
        let gzipped = gzip(&bytes).map_err(|e| format!("compressing it: {e}"))?;
        let digest = digest_of(&bytes, &gzipped, &object, &self.node).map_err(|e| format!("{name}: {e}"))?;
        self.put(&object, gzipped, "application/gzip").await?;
        let digest = serde_json::to_vec(&digest).expect("a digest serialises");
        self.put(&format!("{base}.digest.json"), digest, "application/json").await?;
        tokio::fs::remove_file(path).await.map_err(|e| format!("deleting the shipped segment: {e}"))?;
        self.metrics.audit_ship_segments.inc();
        let now = self.clock.now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.metrics.audit_ship_last_success.set(now.as_secs() as i64);
        tracing::debug!(object, "audit segment shipped");
        Ok(())
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), String> {
        self.client
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!("uploading s3://{}/{key}: {}", self.config.bucket, aws_sdk_s3::error::DisplayErrorContext(e))
            })
    }
}

/// The gzip form of `bytes`: no name and no time in the header, so the same segment always gives
/// the same object.
pub fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// The digest of a segment (`bytes`, chained records) shipped as `gzipped` under `object`.
pub fn digest_of(bytes: &[u8], gzipped: &[u8], object: &str, node: &NodeInfo) -> Result<SegmentDigest, String> {
    let mut first = None;
    let mut last = None;
    let mut count = 0;
    for (i, line) in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let sealed = Sealed::parse(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let time = sealed
            .record
            .get("time")
            .and_then(|t| t.as_str())
            .or_else(|| sealed.record.pointer("/unmapped/time").and_then(|t| t.as_str()))
            .map(str::to_owned);
        first.get_or_insert((sealed.seq, time.clone()));
        last = Some((sealed.seq, time, sealed.chain.to_owned()));
        count += 1;
    }
    let ((first_seq, first_time), Some((last_seq, last_time, last_chain))) = (first.ok_or("no records")?, last) else {
        return Err("no records".into());
    };
    Ok(SegmentDigest {
        v: 1,
        object: object.to_owned(),
        cluster_id: node.cluster_id.clone(),
        instance_id: node.instance_id.clone(),
        first_seq,
        last_seq,
        count,
        first_time,
        last_time,
        last_chain,
        sha256: hex::encode(Sha256::digest(gzipped)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::Chain;

    #[test]
    fn the_same_segment_always_gives_the_same_object() {
        let bytes = b"{\"seq\":1}\n".repeat(1000);
        assert_eq!(gzip(&bytes).unwrap(), gzip(&bytes).unwrap());
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip(&bytes).unwrap()[..]), &mut decoded)
            .unwrap();
        assert_eq!(decoded, bytes);
    }

    #[test]
    fn a_digest_names_the_first_and_last_record_and_the_objects_hash() {
        let mut chain = Chain { seq: 41, ..Chain::default() };
        let mut bytes = Vec::new();
        chain.seal(br#"{"v":1,"time":"2026-12-02T19:47:24.123Z","event":"start"}"#, &mut bytes);
        chain.seal(br#"{"v":1,"time":"2026-12-02T19:48:00.000Z","event":"stop"}"#, &mut bytes);
        let node = NodeInfo { cluster_id: "j-1".into(), instance_id: "i-1".into() };
        let gz = gzip(&bytes).unwrap();
        let d = digest_of(&bytes, &gz, "k.jsonl.gz", &node).unwrap();
        assert_eq!((d.first_seq, d.last_seq, d.count), (42, 43, 2));
        assert_eq!(d.first_time.as_deref(), Some("2026-12-02T19:47:24.123Z"));
        assert_eq!(d.last_chain, chain.head);
        assert_eq!(d.sha256, hex::encode(Sha256::digest(&gz)));
        assert!(digest_of(b"{\"v\":1}\n", &gz, "k", &node).unwrap_err().contains("line 1"));
    }
}
