//! Segments: closed pieces of the audit log waiting to be shipped to S3 (SPEC §7.3).
//!
//! The writer closes the open file as a segment by renaming it into `<audit file>.segments/` as
//! `<first time>-<first seq>.jsonl`, named after its first record, so that a segment's name, and
//! the name of the object it becomes, is the same however often its upload is tried.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::ShipConfig;

/// The segments directory and when the writer closes a segment.
#[derive(Clone, Debug)]
pub struct Segments {
    pub dir: PathBuf,
    pub max_segment: u64,
    pub interval: Duration,
}

impl Segments {
    /// `<audit file>.segments`, beside the audit file.
    pub fn beside(log: &Path, ship: &ShipConfig) -> Segments {
        Segments { dir: dir_of(log), max_segment: ship.max_segment, interval: ship.interval }
    }

    /// Moves the audit file at `log`, whose first record is `first`, into the directory; returns
    /// the segment's name. Both directories are synced: a closed segment survives a crash.
    pub fn close(&self, log: &Path, first: (u64, SystemTime)) -> io::Result<String> {
        self.adopt(log, first)
    }

    /// Moves `file` (the open file, or one logrotate renamed) into the directory as a segment.
    pub fn adopt(&self, file: &Path, first: (u64, SystemTime)) -> io::Result<String> {
        fs::DirBuilder::new().recursive(true).mode(0o750).create(&self.dir)?;
        let name = file_name(first);
        fs::rename(file, self.dir.join(&name))?;
        // Renamed: the segment is closed whatever follows; a failed sync only makes the rename less
        // certain to survive a power loss.
        let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        for dir in [self.dir.as_path(), parent] {
            if let Err(e) = sync_dir(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "syncing a directory after closing an audit segment failed");
            }
        }
        Ok(name)
    }
}

/// The segments directory of the audit file `log`.
pub fn dir_of(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".segments");
    PathBuf::from(name)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// `<first time>-<first seq>.jsonl`, the time as `YYYYMMDDTHHMMSS.mmmZ`.
pub fn file_name((seq, time): (u64, SystemTime)) -> String {
    format!("{}-{seq}.jsonl", compact_time(time))
}

/// `2026-12-02T19:47:24.123Z` as `20261202T194724.123Z`: no colons in file or object names.
pub fn compact_time(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string().replace(['-', ':'], "")
}

/// The date partition (`YYYY-MM-DD`) of a segment named by [`file_name`].
pub fn date_of(name: &str) -> Option<String> {
    let d = name.get(..8).filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
    Some(format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]))
}

/// The first `seq` in a segment's name.
pub fn seq_of(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".jsonl").or_else(|| name.strip_suffix(".jsonl.gz"))?;
    stem.rsplit_once('-')?.1.parse().ok()
}

/// `seq` and time of a chained record: the time is the native `time`, or OCSF's `unmapped.time`.
pub fn first_of(line: &[u8]) -> Option<(u64, SystemTime)> {
    let record: serde_json::Value = serde_json::from_slice(line).ok()?;
    let seq = record.get("seq")?.as_u64()?;
    let time = record.get("time").and_then(|t| t.as_str()).or_else(|| record.pointer("/unmapped/time")?.as_str())?;
    Some((seq, humantime::parse_rfc3339(time).ok()?))
}

/// The segments waiting in `dir`, oldest first.
pub fn waiting(dir: &Path) -> io::Result<Vec<(PathBuf, u64)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(seq) = seq_of(&name).filter(|_| name.ends_with(".jsonl")) {
            found.push((entry.path(), seq, entry.metadata()?.len()));
        }
    }
    found.sort_by_key(|&(_, seq, _)| seq);
    Ok(found.into_iter().map(|(path, _, len)| (path, len)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_time_and_give_back_seq_and_date() {
        let t = humantime::parse_rfc3339("2026-12-02T19:47:24.123Z").unwrap();
        let name = file_name((42, t));
        assert_eq!(name, "20261202T194724.123Z-42.jsonl");
        assert_eq!(seq_of(&name), Some(42));
        assert_eq!(seq_of("20261202T194724.123Z-42.jsonl.gz"), Some(42));
        assert_eq!(date_of(&name).as_deref(), Some("2026-12-02"));
        assert_eq!(seq_of("audit.log"), None);
    }

    #[test]
    fn the_first_record_gives_seq_and_time_in_either_format() {
        let native = br#"{"seq":7,"v":1,"time":"2026-12-02T19:47:24.123Z","event":"start"}"#;
        let ocsf = br#"{"seq":8,"time":1764704844123,"unmapped":{"time":"2026-12-02T19:47:24.123Z"}}"#;
        let t = humantime::parse_rfc3339("2026-12-02T19:47:24.123Z").unwrap();
        assert_eq!(first_of(native), Some((7, t)));
        assert_eq!(first_of(ocsf), Some((8, t)));
        assert_eq!(first_of(br#"{"v":1,"time":"2026-12-02T19:47:24.123Z"}"#), None);
    }
}
