//! The kind of S3 access a request is for (SPEC §4, §5 `access=`). PURE.
//!
//! Reads are GET, HEAD and LIST operations; everything else (a put, a multipart upload, a copy's
//! destination, a delete) is a write. A request that names no access is for both: container and metadata
//! callers use the credentials for anything.

use std::fmt;

use serde::Serialize;

/// `access=read` or `access=write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Access {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Access::Read),
            "write" => Ok(Access::Write),
            other => Err(format!("access must be \"read\" or \"write\", not {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly_read_and_write() {
        assert_eq!("read".parse(), Ok(Access::Read));
        assert_eq!("write".parse(), Ok(Access::Write));
        for bad in ["", "READ", "rw", "read,write", " read"] {
            assert!(bad.parse::<Access>().is_err(), "{bad:?}");
        }
        assert_eq!(Access::Write.to_string(), "write");
    }
}
