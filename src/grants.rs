//! S3 Access Grants as a rule's effect (SPEC §4.1), the pure part: what the agent asks `GetDataAccess`
//! for a request, and how far the answer holds.
//!
//! - The target is the location: an object (`s3://b/k`, `targetType=Object`), or a prefix when the key
//!   is empty or ends in `/` (`s3://b/p/*`, no target type), as the S3 Control API reference defines.
//! - The permission comes from the request's access: `READ`, `WRITE`, or `READWRITE` when it named none
//!   (the caller will use the credentials for anything).
//! - The answer's `MatchedGrantTarget` is the grant that applied: `s3://b/p/*` holds for every key under
//!   `s3://b/p/`, `s3://b/k` for that object only, `s3://*` (every bucket) for the location's bucket.

use std::fmt;

use crate::access::Access;
use crate::location::Location;

/// `GetDataAccess` permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    Read,
    Write,
    ReadWrite,
}

impl Permission {
    /// The permission a request for `access` needs (`None`: read and write).
    pub fn for_access(access: Option<Access>) -> Permission {
        match access {
            Some(Access::Read) => Permission::Read,
            Some(Access::Write) => Permission::Write,
            None => Permission::ReadWrite,
        }
    }

    /// As the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadWrite => "READWRITE",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `GetDataAccess` is asked for one location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `target=`: `s3://b/k` or `s3://b/p/*`.
    pub uri: String,
    /// `targetType=Object`: the target is one object.
    pub object: bool,
}

impl Target {
    /// The target a grant matched as (`MatchedGrantTarget`), asked for again to renew it.
    pub fn matched(target: &str) -> Target {
        Target { uri: target.to_owned(), object: !target.ends_with('*') }
    }

    pub fn of(location: &Location) -> Target {
        let key = location.key();
        if key.is_empty() || key.ends_with('/') {
            Target { uri: format!("s3://{}/{key}*", location.bucket()), object: false }
        } else {
            Target { uri: format!("s3://{}/{key}", location.bucket()), object: true }
        }
    }
}

/// The key prefix under `location`'s bucket for which a grant matched as `matched` holds, if it covers
/// `location` at all: `s3://b/p/*` → `p/`; `s3://b/k` → `k` (that object, exactly); `s3://*` or
/// `s3://b/*` → the whole bucket (`""`).
pub fn covered_prefix<'m>(matched: &'m str, location: &Location) -> Option<Covered<'m>> {
    let rest = matched.strip_prefix("s3://")?;
    if rest == "*" {
        return Some(Covered::Prefix(""));
    }
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket != location.bucket() {
        return None;
    }
    match key.strip_suffix('*') {
        Some(prefix) => location.key().starts_with(prefix).then_some(Covered::Prefix(prefix)),
        None => (location.key() == key).then_some(Covered::Object),
    }
}

/// How far a matched grant holds under a location's bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Covered<'m> {
    /// Every key beginning with this.
    Prefix(&'m str),
    /// Exactly the location's object.
    Object,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(s: &str) -> Location {
        Location::parse(s).unwrap()
    }

    #[test]
    fn targets_follow_the_api_reference() {
        let t = Target::of(&loc("s3://lake/curated/t/part-0 é%.parquet"));
        assert_eq!((t.uri.as_str(), t.object), ("s3://lake/curated/t/part-0 é%.parquet", true));
        let t = Target::of(&loc("s3://lake/curated/"));
        assert_eq!((t.uri.as_str(), t.object), ("s3://lake/curated/*", false));
        let t = Target::of(&loc("s3://lake"));
        assert_eq!((t.uri.as_str(), t.object), ("s3://lake/*", false));
    }

    #[test]
    fn permissions() {
        assert_eq!(Permission::for_access(Some(Access::Read)).as_str(), "READ");
        assert_eq!(Permission::for_access(Some(Access::Write)).as_str(), "WRITE");
        assert_eq!(Permission::for_access(None).as_str(), "READWRITE");
    }

    #[test]
    fn a_matched_grant_covers_what_its_target_names() {
        let l = loc("s3://lake/curated/t/x.parquet");
        assert_eq!(covered_prefix("s3://lake/curated/*", &l), Some(Covered::Prefix("curated/")));
        assert_eq!(covered_prefix("s3://lake/*", &l), Some(Covered::Prefix("")));
        assert_eq!(covered_prefix("s3://*", &l), Some(Covered::Prefix("")));
        assert_eq!(covered_prefix("s3://lake/curated/t/x.parquet", &l), Some(Covered::Object));
        for other in ["s3://lake/raw/*", "s3://pond/*", "s3://lake/curated/t/y.parquet", "s3://lakehouse/*", "lake/*"] {
            assert_eq!(covered_prefix(other, &l), None, "{other}");
        }
    }
}
