//! S3 locations: parsing and normalisation. PURE — no clock, environment or files.
//!
//! A location is `scheme://bucket[/key]` where the scheme is `s3`, `s3a` or `s3n` in any case (EMRFS and
//! S3A treat them alike). The bucket must follow the S3 bucket naming rules; the key is any UTF-8 of at
//! most 1024 bytes. Percent-encoded input (`%20`, `%C3%A9`, `%25`) is decoded exactly once; a `%` not
//! followed by two hex digits is an error, so a literal `%` is written `%25`.
//!
//! The normalised form ([`Location`]'s `Display`) is `s3://bucket/key` (`s3://bucket/` for a bucket-only
//! location), with `%` and control characters in the key percent-encoded again so that parsing the
//! normalised form gives back the same location.

use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// The longest key S3 accepts, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Characters re-encoded when a key is displayed: controls and `%` itself (so display → parse round-trips).
const DISPLAY_ENCODE: &AsciiSet = &CONTROLS.add(b'%');

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
    #[error(
        "invalid percent-encoding at byte {0} ('%' must be followed by two hex digits; write a literal '%' as %25)"
    )]
    InvalidPercentEncoding(usize),
    #[error("percent-decoded {0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("key is {0} bytes long; S3 allows at most 1024")]
    KeyTooLong(usize),
}

impl Location {
    /// Parses `s3://bucket/key` (also `s3a`, `s3n`, any case). Percent-encoding is decoded once.
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
        let scheme_len = input.len() - rest.len();
        let bucket = decode(raw_bucket, scheme_len, "bucket")?;
        validate_bucket(&bucket)?;
        let key = decode(raw_key, scheme_len + raw_bucket.len() + 1, "key")?;
        if key.len() > MAX_KEY_BYTES {
            return Err(LocationError::KeyTooLong(key.len()));
        }
        Ok(Location { bucket, key })
    }

    /// Builds a location from an already-decoded bucket and key (validated the same way as `parse`).
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

    /// The key, decoded; `""` for a bucket-only location.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// `s3://bucket/key` without any re-encoding: the string that globs are matched against.
    pub fn raw_uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, utf8_percent_encode(&self.key, DISPLAY_ENCODE))
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

/// Percent-decodes `s` once; `base` is the byte offset of `s` in the original input (for messages).
pub(crate) fn decode(s: &str, base: usize, what: &'static str) -> Result<String, LocationError> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(off) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + off;
        let ok = bytes.len() >= at + 3 && bytes[at + 1].is_ascii_hexdigit() && bytes[at + 2].is_ascii_hexdigit();
        if !ok {
            return Err(LocationError::InvalidPercentEncoding(base + at));
        }
        i = at + 3;
    }
    percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).map_err(|_| LocationError::NotUtf8(what))
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
    fn percent_decoding_once() {
        assert_eq!(p("s3://bucket/a%20b").key(), "a b");
        assert_eq!(p("s3://bucket/a%2520b").key(), "a%20b");
        assert_eq!(p("s3://bucket/caf%C3%A9").key(), "café");
        assert_eq!(p("s3://bucket/a%2520b").to_string(), "s3://bucket/a%2520b");
        assert!(matches!(Location::parse("s3://bucket/a%zz"), Err(LocationError::InvalidPercentEncoding(13))));
        assert!(matches!(Location::parse("s3://bucket/a%"), Err(LocationError::InvalidPercentEncoding(_))));
        assert!(matches!(Location::parse("s3://bucket/%FF"), Err(LocationError::NotUtf8("key"))));
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
    fn display_reencodes_percent_and_controls() {
        let l = p("s3://bucket/a%0Ab%25");
        assert_eq!(l.key(), "a\nb%");
        assert_eq!(l.to_string(), "s3://bucket/a%0Ab%25");
        assert_eq!(p(&l.to_string()), l);
    }
}
