//! S3 locations: parsing and normalisation. PURE — no clock, environment or files.
//!
//! A location is `scheme://bucket[/key]` where the scheme is `s3`, `s3a` or `s3n` in any case (EMRFS and
//! S3A treat them alike). The bucket must follow the S3 bucket naming rules; the key is any UTF-8 of at
//! most 1024 bytes, **taken literally**: keys are bytes (SPEC §5). The HTTP API's query parser has
//! already undone the one percent-encoding of transport; what reaches [`Location::parse`] is the key as
//! S3 stores it, so `x%2Fy` is the five characters `x`, `%`, `2`, `F`, `y` (Hive writes such keys) and not
//! `x/y`, and `100%off.csv` is a key like any other. Nothing is decoded a second time anywhere: a
//! location, a rule's prefix and an answer's `Scope` are compared in this one form.
//!
//! The normalised form ([`Location`]'s `Display`) is `s3://bucket/key` (`s3://bucket/` for a bucket-only
//! location), the key exactly as given: parsing it gives back the same location.

use std::fmt;

/// The longest key S3 accepts, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// A parsed, normalised S3 location: a bucket and a (possibly empty) key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    bucket: String,
    key: String,
}

/// Why a string is not an S3 location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("empty location")]
    Empty,
    #[error("not an S3 URI (expected s3://bucket/key): '{0}'")]
    NotAnS3Uri(String),
    #[error("unsupported scheme '{0}' (expected s3, s3a or s3n)")]
    UnsupportedScheme(String),
    #[error("missing bucket name in '{0}'")]
    MissingBucket(String),
    #[error("invalid bucket name '{bucket}': {reason}")]
    InvalidBucket { bucket: String, reason: &'static str },
    #[error("key is {0} bytes long; S3 allows at most 1024")]
    KeyTooLong(usize),
}

impl Location {
    /// Parses `s3://bucket/key` (also `s3a`, `s3n`, any case); the key is taken literally.
    pub fn parse(input: &str) -> Result<Location, LocationError> {
        if input.is_empty() {
            return Err(LocationError::Empty);
        }
        let rest = strip_scheme(input)?;
        let (raw_bucket, raw_key) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if raw_bucket.is_empty() {
            return Err(LocationError::MissingBucket(shorten(input)));
        }
        Location::new(raw_bucket, raw_key)
    }

    /// Builds a location from a bucket and a key (validated the same way as `parse`).
    pub fn new(bucket: &str, key: &str) -> Result<Location, LocationError> {
        validate_bucket(bucket)?;
        if key.len() > MAX_KEY_BYTES {
            return Err(LocationError::KeyTooLong(key.len()));
        }
        Ok(Location { bucket: bucket.to_owned(), key: key.to_owned() })
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key; `""` for a bucket-only location.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// `s3://bucket/key`: the string that globs are matched against (the normalised form).
    pub fn raw_uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl std::str::FromStr for Location {
    type Err = LocationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Location::parse(s)
    }
}

/// Removes `s3://` / `s3a://` / `s3n://` (any case) and returns the rest.
pub(crate) fn strip_scheme(input: &str) -> Result<&str, LocationError> {
    let Some(idx) = input.find("://") else {
        return Err(LocationError::NotAnS3Uri(shorten(input)));
    };
    let scheme = &input[..idx];
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return Err(LocationError::NotAnS3Uri(shorten(input)));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "s3" | "s3a" | "s3n" => Ok(&input[idx + 3..]),
        _ => Err(LocationError::UnsupportedScheme(shorten(scheme))),
    }
}

/// Checks the S3 bucket naming rules: 3–63 characters of `a-z 0-9 . -`, starting and ending with a
/// letter or digit, no `..`, not an IPv4 address.
pub fn validate_bucket(bucket: &str) -> Result<(), LocationError> {
    let err = |reason| Err(LocationError::InvalidBucket { bucket: shorten(bucket), reason });
    if bucket.len() < 3 || bucket.len() > 63 {
        return err("must be 3 to 63 characters long");
    }
    if bucket.bytes().any(|b| b.is_ascii_uppercase()) {
        return err("must be lowercase");
    }
    if !bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return err("may contain only lowercase letters, digits, '.' and '-'");
    }
    let first = bucket.as_bytes()[0];
    let last = bucket.as_bytes()[bucket.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return err("must begin and end with a letter or digit");
    }
    if bucket.contains("..") {
        return err("must not contain '..'");
    }
    if bucket.parse::<std::net::Ipv4Addr>().is_ok() {
        return err("must not be formatted as an IP address");
    }
    Ok(())
}

/// Keeps error messages short when the input is huge (a 1 MiB query string, say).
fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Location {
        Location::parse(s).unwrap()
    }

    #[test]
    fn schemes_are_equivalent_in_any_case() {
        for s in ["s3://bucket/a/b", "S3A://bucket/a/b", "s3n://bucket/a/b", "S3n://bucket/a/b"] {
            assert_eq!(p(s), Location { bucket: "bucket".into(), key: "a/b".into() });
        }
    }

    #[test]
    fn bucket_only_and_empty_key() {
        assert_eq!(p("s3://bucket").key(), "");
        assert_eq!(p("s3://bucket/").key(), "");
        assert_eq!(p("s3://bucket").to_string(), "s3://bucket/");
        assert_eq!(p("s3://bucket//x").key(), "/x");
    }

    #[test]
    fn keys_are_taken_literally() {
        // What Hive, S3 and users put in keys: no sequence is decoded, none is an error.
        for key in [
            "a%20b",
            "x%2Fy/secret/f",
            "100%off.csv",
            "a%",
            "%FF",
            "caf%C3%A9",
            "dt=2026-01-01 00%3A00/p",
            "a+b c",
            "café/été",
            "a
b",
        ] {
            let l = p(&format!("s3://bucket/{key}"));
            assert_eq!(l.key(), key);
            assert_eq!(l.to_string(), format!("s3://bucket/{key}"));
            assert_eq!(p(&l.to_string()), l);
        }
        assert_ne!(p("s3://bucket/x%2Fy"), p("s3://bucket/x/y"));
    }

    #[test]
    fn bad_inputs() {
        assert_eq!(Location::parse(""), Err(LocationError::Empty));
        assert!(matches!(Location::parse("bucket/key"), Err(LocationError::NotAnS3Uri(_))));
        assert!(matches!(Location::parse("https://bucket/key"), Err(LocationError::UnsupportedScheme(_))));
        assert!(matches!(Location::parse("s3:///key"), Err(LocationError::MissingBucket(_))));
        for b in ["ab", "Bucket", "bu_cket", "-bucket", "bucket-", "a..b", "192.168.1.1", &"a".repeat(64)] {
            let r = Location::parse(&format!("s3://{b}/k"));
            assert!(matches!(r, Err(LocationError::InvalidBucket { .. })), "{b}: {r:?}");
        }
        assert!(Location::parse(&format!("s3://bucket/{}", "k".repeat(1024))).is_ok());
        assert_eq!(Location::parse(&format!("s3://bucket/{}", "k".repeat(1025))), Err(LocationError::KeyTooLong(1025)));
    }

    #[test]
    fn controls_are_part_of_the_key() {
        let l = p("s3://bucket/a
b%25");
        assert_eq!(
            l.key(),
            "a
b%25"
        );
        assert_eq!(p(&l.to_string()), l);
    }
}
