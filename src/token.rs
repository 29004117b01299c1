//! The shared secret callers send in `Authorization`. The file is re-read whenever its inode,
//! size or modification time changes (one `stat` per check), and compared in constant time.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::RwLock;

use http::HeaderValue;
use subtle::ConstantTimeEq;

pub struct Token {
    path: PathBuf,
    current: RwLock<Option<Loaded>>,
}

struct Loaded {
    stamp: (u64, u64, i64, i64),
    value: Vec<u8>,
}

impl Token {
    pub fn new(path: PathBuf) -> Token {
        Token { path, current: RwLock::new(None) }
    }

    /// Whether `header` carries the token. An unreadable or empty token file matches nothing.
    pub fn matches(&self, header: Option<&HeaderValue>) -> bool {
        let Some(header) = header else { return false };
        let Ok(meta) = std::fs::metadata(&self.path) else { return false };
        let stamp = (meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec());
        {
            let current = self.current.read().expect("token lock");
            if let Some(loaded) = current.as_ref().filter(|l| l.stamp == stamp) {
                return compare(&loaded.value, header.as_bytes());
            }
        }
        let Ok(mut value) = std::fs::read(&self.path) else { return false };
        // Tolerate a trailing newline in the file (SDKs cannot send one).
        while value.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            value.pop();
        }
        let ok = compare(&value, header.as_bytes());
        *self.current.write().expect("token lock") = Some(Loaded { stamp, value });
        ok
    }

    /// Whether the token file can be read now.
    pub fn is_readable(&self) -> bool {
        std::fs::read(&self.path).is_ok_and(|v| !v.is_empty())
    }
}

fn compare(expected: &[u8], given: &[u8]) -> bool {
    !expected.is_empty() && expected.ct_eq(given).into()
}
