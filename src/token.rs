//! The shared secret callers send in `Authorization`, compared in constant time.
//!
//! The file is looked at (one `stat`) at most once per [`RECHECK`] of decision time and re-read
//! whenever its inode, size or modification time changed: a rotated token is in force within a
//! second, and a busy agent does not pay a system call per request.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use subtle::ConstantTimeEq;

/// How long a look at the token file stands.
pub const RECHECK: Duration = Duration::from_secs(1);

pub struct Token {
    path: PathBuf,
    current: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// When the file was last looked at; `None` before the first request.
    checked: Option<SystemTime>,
    /// Its identity and content then; `None` if it could not be read.
    loaded: Option<Loaded>,
}

struct Loaded {
    stamp: (u64, u64, i64, i64),
    value: Vec<u8>,
}

impl Token {
    pub fn new(path: PathBuf) -> Token {
        Token { path, current: RwLock::new(State::default()) }
    }

    /// Whether `header` carries the token at `now`. An unreadable or empty token file matches
    /// nothing.
    pub fn matches(&self, header: Option<&HeaderValue>, now: SystemTime) -> bool {
        let Some(header) = header else { return false };
        {
            let state = self.current.read().expect("token lock");
            if state.checked.is_some_and(|at| is_recent(at, now)) {
                return state.loaded.as_ref().is_some_and(|l| compare(&l.value, header.as_bytes()));
            }
        }
        let mut state = self.current.write().expect("token lock");
        // Another request may have looked while this one waited for the lock.
        if !state.checked.is_some_and(|at| is_recent(at, now)) {
            state.loaded = self.load(state.loaded.take());
            state.checked = Some(now);
        }
        state.loaded.as_ref().is_some_and(|l| compare(&l.value, header.as_bytes()))
    }

    /// The file as it is now: `previous` again if it did not change.
    fn load(&self, previous: Option<Loaded>) -> Option<Loaded> {
        let meta = std::fs::metadata(&self.path).ok()?;
        let stamp = (meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec());
        if let Some(previous) = previous.filter(|l| l.stamp == stamp) {
            return Some(previous);
        }
        let mut value = std::fs::read(&self.path).ok()?;
        // Tolerate a trailing newline in the file (SDKs cannot send one).
        while value.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            value.pop();
        }
        Some(Loaded { stamp, value })
    }
}

/// A look at `at` still stands at `now` (a clock stepped backwards looks again).
fn is_recent(at: SystemTime, now: SystemTime) -> bool {
    now.duration_since(at).is_ok_and(|age| age < RECHECK)
}

fn compare(expected: &[u8], given: &[u8]) -> bool {
    !expected.is_empty() && expected.ct_eq(given).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &str) -> HeaderValue {
        HeaderValue::from_str(v).unwrap()
    }

    #[test]
    fn a_rotated_token_is_in_force_once_the_recheck_interval_passed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let token = Token::new(path.clone());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(token.matches(Some(&header("first")), t0));
        assert!(!token.matches(Some(&header("second")), t0));
        assert!(!token.matches(None, t0));

        // Rotated by writing a new file and renaming it over the old one.
        let next = dir.path().join("token.new");
        std::fs::write(&next, "second").unwrap();
        std::fs::rename(&next, &path).unwrap();
        let soon = t0 + RECHECK - Duration::from_millis(1);
        assert!(token.matches(Some(&header("first")), soon), "the last look stands within RECHECK");
        let later = t0 + RECHECK;
        assert!(token.matches(Some(&header("second")), later));
        assert!(!token.matches(Some(&header("first")), later));

        // A clock stepped backwards looks again rather than trusting a look from the future.
        std::fs::write(&path, "third").unwrap();
        assert!(token.matches(Some(&header("third")), t0));
    }

    #[test]
    fn a_missing_or_empty_file_matches_nothing_until_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let token = Token::new(path.clone());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(!token.matches(Some(&header("")), t0));
        assert!(!token.matches(Some(&header("x")), t0));
        std::fs::write(&path, "").unwrap();
        assert!(!token.matches(Some(&header("")), t0 + RECHECK));
        std::fs::write(&path, "x").unwrap();
        assert!(token.matches(Some(&header("x")), t0 + RECHECK * 2));
    }
}
