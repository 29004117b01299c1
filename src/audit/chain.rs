//! The hash chain that makes the audit log tamper-evident (SPEC §7.2).
//!
//! Every line is one JSON object whose first key is `seq` and whose last key is `chain`:
//!
//! ```text
//! {"seq":42,"v":1,"time":"…",…,"chain":"<64 hex>"}
//! ```
//!
//! `seq` counts records from 1 and carries on across rotation and restarts; the first record written
//! into a new file names the file that holds its predecessor in `prev_file`, right after `seq`.
//! `chain` is `hex(SHA-256(previous chain ‖ the line without its chain))`, where the line without its
//! chain is the line with its trailing `,"chain":"…"}` replaced by `}`; the very first record starts
//! from [`GENESIS`]. Removing, altering, reordering or inserting a record breaks the chain at that
//! record, and `seq` tells which.
//!
//! Pure: [`Chain::seal`] makes lines, [`Sealed::parse`] takes them apart again for `audit verify`.

use sha2::{Digest, Sha256};

/// The `chain` the first record of a log starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const CHAIN_KEY: &[u8] = br#","chain":""#;
/// `,"chain":"` + 64 hex + `"}`.
const CHAIN_SUFFIX_LEN: usize = CHAIN_KEY.len() + 64 + 2;

/// Where the chain stands: the last record written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// `seq` of the last record; 0 before the first.
    pub seq: u64,
    /// `chain` of the last record, hex.
    pub head: String,
    /// Set when the next record starts a new file: the file holding the last record.
    pub prev_file: Option<String>,
}

impl Default for Chain {
    fn default() -> Self {
        Chain { seq: 0, head: GENESIS.to_owned(), prev_file: None }
    }
}

impl Chain {
    /// Appends to `out` the sealed form of `record` (one JSON object, with or without its newline)
    /// and moves the chain on.
    pub fn seal(&mut self, record: &[u8], out: &mut Vec<u8>) {
        let body = record.strip_suffix(b"\n").unwrap_or(record);
        let inner = body.strip_prefix(b"{").and_then(|b| b.strip_suffix(b"}")).expect("a record is a JSON object");
        self.seq += 1;
        let start = out.len();
        out.extend_from_slice(b"{\"seq\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.seq).as_bytes());
        if let Some(file) = self.prev_file.take() {
            out.extend_from_slice(b",\"prev_file\":");
            serde_json::to_writer(&mut *out, &file).expect("a string serialises");
        }
        if !inner.is_empty() {
            out.push(b',');
            out.extend_from_slice(inner);
        }
        out.push(b'}');
        self.head = link(&self.head, &out[start..]);
        out.pop();
        out.extend_from_slice(CHAIN_KEY);
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(b"\"}\n");
    }

    /// Picks the chain up after `line`, the last record of a file (restart).
    pub fn after(line: &[u8]) -> Option<Chain> {
        let sealed = Sealed::parse(line).ok()?;
        Some(Chain { seq: sealed.seq, head: sealed.chain.to_owned(), prev_file: None })
    }
}

/// `chain` of a record: SHA-256 over the previous chain and the record without its chain.
pub fn link(prev: &str, unsealed: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(prev.as_bytes());
    hash.update(unsealed);
    hex::encode(hash.finalize())
}

/// One line of a chained log, taken apart.
#[derive(Debug)]
pub struct Sealed<'a> {
    pub seq: u64,
    pub prev_file: Option<String>,
    pub chain: &'a str,
    /// The line without its chain: what `chain` hashes.
    pub unsealed: Vec<u8>,
    /// The whole record, parsed.
    pub record: serde_json::Value,
}

impl<'a> Sealed<'a> {
    /// Parses one line (without its newline); the error says what is wrong with it.
    pub fn parse(line: &'a [u8]) -> Result<Sealed<'a>, String> {
        let record: serde_json::Value = serde_json::from_slice(line).map_err(|e| format!("not a JSON record ({e})"))?;
        let seq = record.get("seq").and_then(serde_json::Value::as_u64).ok_or("no seq")?;
        if !line.starts_with(b"{\"seq\":") {
            return Err("seq is not the first key".into());
        }
        if line.len() < CHAIN_SUFFIX_LEN + 2 || !line[line.len() - CHAIN_SUFFIX_LEN..].starts_with(CHAIN_KEY) {
            return Err("chain is not the last key".into());
        }
        let chain = std::str::from_utf8(&line[line.len() - 66..line.len() - 2]).map_err(|_| "chain is not hex")?;
        if !chain.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) || !line.ends_with(b"\"}") {
            return Err("chain is not 64 lowercase hex digits".into());
        }
        let mut unsealed = line[..line.len() - CHAIN_SUFFIX_LEN].to_vec();
        unsealed.push(b'}');
        let prev_file = record.get("prev_file").and_then(serde_json::Value::as_str).map(str::to_owned);
        Ok(Sealed { seq, prev_file, chain, unsealed, record })
    }

    /// Whether this record follows a record whose chain is `prev`.
    pub fn follows(&self, prev: &str) -> bool {
        link(prev, &self.unsealed) == self.chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_all(chain: &mut Chain, records: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            chain.seal(format!("{r}\n").as_bytes(), &mut out);
        }
        out
    }

    #[test]
    fn sealed_lines_carry_seq_first_and_chain_last_and_link_up() {
        let mut chain = Chain::default();
        let out = seal_all(&mut chain, &[r#"{"v":1,"event":"start"}"#, r#"{"v":1,"event":"stop"}"#]);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(r#"{"seq":1,"v":1,"event":"start","chain":""#), "{}", lines[0]);
        let first = Sealed::parse(lines[0].as_bytes()).unwrap();
        let second = Sealed::parse(lines[1].as_bytes()).unwrap();
        assert_eq!(first.unsealed, br#"{"seq":1,"v":1,"event":"start"}"#);
        assert!(first.follows(GENESIS));
        assert!(second.follows(first.chain));
        assert!(!second.follows(GENESIS));
        assert_eq!((chain.seq, chain.head.as_str()), (2, second.chain));
    }

    #[test]
    fn the_first_record_of_a_new_file_names_the_previous_file_once() {
        let mut chain = Chain { prev_file: Some("audit.log.1".into()), ..Chain::default() };
        let text = String::from_utf8(seal_all(&mut chain, &[r#"{"a":1}"#, r#"{"a":2}"#])).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(r#"{"seq":1,"prev_file":"audit.log.1","a":1,"#), "{}", lines[0]);
        assert!(!lines[1].contains("prev_file"));
    }

    #[test]
    fn any_change_to_a_sealed_line_breaks_its_link() {
        let mut chain = Chain::default();
        let line = seal_all(&mut chain, &[r#"{"user":"alice","role_arn":"arn:aws:iam::1:role/a"}"#]);
        let line = String::from_utf8(line).unwrap();
        let altered = line.trim_end().replace("alice", "alicf");
        assert!(Sealed::parse(line.trim_end().as_bytes()).unwrap().follows(GENESIS));
        assert!(!Sealed::parse(altered.as_bytes()).unwrap().follows(GENESIS));
        assert!(Sealed::parse(br#"{"seq":1,"a":1}"#).unwrap_err().contains("chain"));
        assert!(Sealed::parse(br#"{"a":1,"seq":1}"#).is_err());
        assert!(Sealed::parse(&line.as_bytes()[..20]).is_err());
    }

    #[test]
    fn a_restart_picks_the_chain_up_after_the_last_record() {
        let mut chain = Chain::default();
        let text = seal_all(&mut chain, &[r#"{"a":1}"#, r#"{"a":2}"#]);
        let last = text.split(|&b| b == b'\n').rfind(|l| !l.is_empty()).unwrap();
        assert_eq!(Chain::after(last), Some(Chain { prev_file: None, ..chain }));
    }
}
