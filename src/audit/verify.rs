//! `audit verify`: checks the hash chain (SPEC §7.2) over rotated files, or over the segments and
//! digests shipped to S3 (§7.3), and names the first record removed, altered, reordered or inserted,
//! a missing file or segment, and a file cut off in the middle of a record.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::chain::{Sealed, GENESIS};
use super::segment;
use super::ship::SegmentDigest;

/// The first break found: where (`file:line`), what, and the details.
#[derive(Debug, PartialEq, Eq)]
pub struct Break {
    pub place: String,
    pub kind: &'static str,
    pub detail: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BROKEN {}: {}: {}", self.place, self.kind, self.detail)
    }
}

/// An intact chain.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub files: usize,
    /// Lines before the first chained record (written before the chain was turned on).
    pub unchained: u64,
    /// The first record continues a file that was not given (`prev_file`), or `None` when the
    /// records given start the chain.
    pub continues: Option<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = if self.files == 1 { "file" } else { "files" };
        write!(
            f,
            "intact: {} records, seq {}..{} in {} {files}",
            self.records, self.first_seq, self.last_seq, self.files
        )?;
        if let Some(prev) = &self.continues {
            write!(f, " (the first continues {prev}, not given)")?;
        }
        if self.unchained > 0 {
            write!(f, "; {} earlier records carry no chain", self.unchained)?;
        }
        Ok(())
    }
}

/// One file (or shipped segment) of a log: its name in messages and its lines.
pub struct Piece {
    pub name: String,
    pub lines: Vec<Vec<u8>>,
    /// The last line has no newline: the file was cut off.
    pub torn: bool,
}

impl Piece {
    pub fn from_bytes(name: String, bytes: &[u8]) -> Piece {
        let torn = !bytes.is_empty() && !bytes.ends_with(b"\n");
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let lines =
            if body.is_empty() { Vec::new() } else { body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect() };
        Piece { name, lines, torn }
    }

    /// A local file, gunzip'd when its name ends in `.gz` (logrotate's `compress`).
    pub fn read(path: &Path) -> Result<Piece, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bytes = match path.extension().is_some_and(|e| e == "gz") {
            true => gunzip(&bytes).map_err(|e| format!("{}: not gzip: {e}", path.display()))?,
            false => bytes,
        };
        Ok(Piece::from_bytes(path.display().to_string(), &bytes))
    }

    fn first_seq(&self) -> Option<u64> {
        self.lines.iter().find_map(|l| Sealed::parse(l).ok().map(|s| s.seq))
    }

    fn base_name(&self) -> &str {
        let name = self.name.rsplit('/').next().unwrap_or(&self.name);
        name.strip_suffix(".gz").unwrap_or(name)
    }
}

pub fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// What a gap at the start of a file is called: a rotated file, or a shipped segment.
#[derive(Clone, Copy)]
pub enum Missing {
    File,
    Segment,
}

/// Checks the chain through `pieces`, taken in the order of their first `seq`.
pub fn verify(mut pieces: Vec<Piece>, missing: Missing) -> Result<Summary, Break> {
    pieces.sort_by_key(|p| p.first_seq().unwrap_or(u64::MAX));
    let files = pieces.iter().filter(|p| !p.lines.is_empty()).count();
    // Every record by seq, for telling reordering and insertion from removal and alteration.
    let mut seen: HashMap<u64, (usize, usize)> = HashMap::new();
    let mut by_seq: HashMap<u64, Vec<(usize, usize)>> = HashMap::new();
    for (p, piece) in pieces.iter().enumerate() {
        for (i, line) in piece.lines.iter().enumerate() {
            if let Ok(s) = Sealed::parse(line) {
                by_seq.entry(s.seq).or_default().push((p, i));
            }
        }
    }
    let place = |p: usize, i: usize| format!("{}:{}", pieces[p].name, i + 1);
    let mut prev: Option<(u64, String)> = None;
    // The chain before the last record accepted, and where that record is: a forged record that hashes
    // correctly is found when the real one after it hashes from the same predecessor.
    let mut before_prev: Option<(String, usize, usize)> = None;
    let mut summary = Summary { records: 0, first_seq: 0, last_seq: 0, files, unchained: 0, continues: None };
    for (p, piece) in pieces.iter().enumerate() {
        for (i, line) in piece.lines.iter().enumerate() {
            let here = place(p, i);
            if piece.torn && i + 1 == piece.lines.len() {
                let detail = format!("the file ends in the middle of a record ({} bytes, no newline)", line.len());
                return Err(Break { place: here, kind: "truncated", detail });
            }
            let s = match Sealed::parse(line) {
                Ok(s) => s,
                Err(_) if prev.is_none() && !line.starts_with(b"{\"seq\":") && line.starts_with(b"{") => {
                    summary.unchained += 1;
                    continue;
                }
                Err(e) => return Err(Break { place: here, kind: "malformed", detail: e }),
            };
            let Some((pseq, pchain)) = &prev else {
                // The first record: only the very first of a log can be checked against its start.
                if s.seq == 1 && !s.follows(GENESIS) {
                    return Err(Break {
                        place: here,
                        kind: "altered",
                        detail: "seq 1 does not hash from the start of the chain".into(),
                    });
                }
                if s.seq > 1 {
                    summary.continues =
                        Some(s.prev_file.clone().unwrap_or_else(|| format!("records before seq {}", s.seq)));
                }
                summary.first_seq = s.seq;
                seen.insert(s.seq, (p, i));
                before_prev = None;
                prev = Some((s.seq, s.chain.to_owned()));
                summary.records += 1;
                summary.last_seq = s.seq;
                continue;
            };
            let expected = pseq + 1;
            if s.seq == expected && s.follows(pchain) {
                seen.insert(s.seq, (p, i));
                before_prev = Some((pchain.clone(), p, i));
                prev = Some((s.seq, s.chain.to_owned()));
                summary.records += 1;
                summary.last_seq = s.seq;
                continue;
            }
            if s.seq == 1 && s.follows(GENESIS) {
                let detail =
                    format!("the chain starts again at seq 1 after seq {pseq}: everything before is cut off from it");
                return Err(Break { place: here, kind: "restarted", detail });
            }
            if s.seq == *pseq && before_prev.as_ref().is_some_and(|(c, _, _)| s.follows(c)) {
                // Two records with the same seq, both hashing from the same predecessor: the one the
                // next record continues from is the real one.
                let next_follows_this =
                    piece.lines.get(i + 1).and_then(|l| Sealed::parse(l).ok()).is_some_and(|n| n.follows(s.chain));
                let (ip, ii) = match (next_follows_this, &before_prev) {
                    (true, Some((_, bp, bi))) => (*bp, *bi),
                    _ => (p, i),
                };
                let detail = format!(
                    "a second record with seq {pseq} hashing from the same predecessor; the record after them continues from {}",
                    if next_follows_this { place(p, i) } else { "the other one".to_owned() }
                );
                return Err(Break { place: place(ip, ii), kind: "inserted", detail });
            }
            if let Some(&(fp, fi)) = seen.get(&s.seq) {
                let copy = pieces[fp].lines[fi] == *line;
                let detail = format!(
                    "a second record with seq {} ({} the one at {}) where seq {expected} belongs",
                    s.seq,
                    if copy { "a copy of" } else { "besides" },
                    place(fp, fi)
                );
                return Err(Break { place: here, kind: "inserted", detail });
            }
            if s.seq == expected {
                // Right number, wrong hash: a forged record in front of the real one, or this one changed.
                let next_is_real = piece
                    .lines
                    .get(i + 1)
                    .and_then(|l| Sealed::parse(l).ok())
                    .is_some_and(|n| n.seq == expected && n.follows(pchain));
                if next_is_real {
                    let detail = format!(
                        "a record with seq {expected} that does not belong to the chain, in front of the real one"
                    );
                    return Err(Break { place: here, kind: "inserted", detail });
                }
                let detail =
                    format!("seq {expected} does not hash to its chain: the record was changed after it was written");
                return Err(Break { place: here, kind: "altered", detail });
            }
            if s.seq < expected {
                let detail = format!("seq {} where seq {expected} belongs", s.seq);
                return Err(Break { place: here, kind: "inserted", detail });
            }
            // A gap: the missing records are elsewhere (reordered), gone with a file, or removed.
            if let Some(&(ep, ei)) = by_seq.get(&expected).and_then(|at| at.iter().find(|&&(ep, ei)| (ep, ei) > (p, i)))
            {
                let detail =
                    format!("seq {} where seq {expected} belongs; seq {expected} is at {}", s.seq, place(ep, ei));
                return Err(Break { place: here, kind: "reordered", detail });
            }
            let gap = if s.seq - expected == 0 {
                format!("seq {expected}")
            } else {
                format!("seq {expected}..{}", s.seq - 1)
            };
            let count = s.seq - expected;
            let previous_file = p.checked_sub(1).map(|q| pieces[q].base_name());
            let named_elsewhere =
                s.prev_file.as_deref().is_some_and(|f| Some(f.strip_suffix(".gz").unwrap_or(f)) != previous_file);
            if i == 0 && named_elsewhere {
                let (kind, what) = match missing {
                    Missing::File => ("missing file", "file"),
                    Missing::Segment => ("missing segment", "segment"),
                };
                let detail = format!(
                    "{count} records ({gap}) are in the {what} {} that comes before this one and was not given",
                    s.prev_file.as_deref().unwrap_or("?")
                );
                return Err(Break { place: here, kind, detail });
            }
            let detail = format!("{count} record{} ({gap}) missing before this one", if count == 1 { "" } else { "s" });
            return Err(Break { place: here, kind: "removed", detail });
        }
    }
    if summary.records == 0 {
        return Err(Break {
            place: pieces.first().map_or_else(|| "-".into(), |p| p.name.clone()),
            kind: "malformed",
            detail: "no chained records".into(),
        });
    }
    Ok(summary)
}

/// Checks one shipped segment's bytes against its digest (before the chain is checked).
pub fn check_object(name: &str, gzipped: &[u8], digest: &SegmentDigest) -> Result<Piece, Break> {
    let broken = |detail: String| Break { place: name.to_owned(), kind: "digest mismatch", detail };
    let sha = hex::encode(Sha256::digest(gzipped));
    if sha != digest.sha256 {
        return Err(broken(format!("the object's SHA-256 is {sha}, its digest says {}", digest.sha256)));
    }
    let bytes = gunzip(gzipped).map_err(|e| broken(format!("not gzip: {e}")))?;
    let piece = Piece::from_bytes(name.to_owned(), &bytes);
    let records: Vec<Sealed<'_>> = piece.lines.iter().filter_map(|l| Sealed::parse(l).ok()).collect();
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Err(broken("no chained records".into()));
    };
    let says = (digest.first_seq, digest.last_seq, digest.count, digest.last_chain.as_str());
    let has = (first.seq, last.seq, records.len() as u64, last.chain);
    if says != has {
        return Err(broken(format!("the digest says seq {}..{}, {} records, last chain {}; the object holds seq {}..{}, {} records, last chain {}", says.0, says.1, says.2, says.3, has.0, has.1, has.2, has.3)));
    }
    Ok(piece)
}

/// The shipped objects of one node, from a listing under a prefix: segment keys by digest key.
pub fn group_by_node(keys: &[String]) -> Vec<(String, Vec<String>)> {
    let mut nodes: Vec<(String, Vec<String>)> = Vec::new();
    for key in keys {
        let Some(at) = key.find("/dt=") else { continue };
        let node = &key[..at];
        match nodes.iter_mut().find(|(n, _)| n == node) {
            Some((_, keys)) => keys.push(key.clone()),
            None => nodes.push((node.to_owned(), vec![key.clone()])),
        }
    }
    for (_, keys) in &mut nodes {
        keys.sort_by_key(|k| {
            segment::seq_of(k.rsplit('/').next().unwrap_or(k).trim_end_matches(".digest.json")).unwrap_or(u64::MAX)
        });
    }
    nodes
}

/// Verifies what was shipped under `s3://bucket/prefix`: each node's segments against their digests,
/// and the chain through them. One result per node (`…/cluster_id=…/instance_id=…`).
pub async fn shipped(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, Result<Summary, Break>)>, String> {
    let mut keys = Vec::new();
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| format!("listing s3://{bucket}/{prefix}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
    }
    let mut results = Vec::new();
    for (node, keys) in group_by_node(&keys) {
        let result = verify_node(client, bucket, &keys).await?;
        results.push((format!("s3://{bucket}/{node}/"), result));
    }
    Ok(results)
}

async fn verify_node(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[String],
) -> Result<Result<Summary, Break>, String> {
    let get =
        |key: String| async move {
            let object =
                client.get_object().bucket(bucket).key(&key).send().await.map_err(|e| {
                    format!("reading s3://{bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(e))
                })?;
            let body = object.body.collect().await.map_err(|e| format!("reading s3://{bucket}/{key}: {e}"))?;
            Ok::<_, String>(body.into_bytes().to_vec())
        };
    let url = |key: &str| format!("s3://{bucket}/{key}");
    let mut pieces = Vec::new();
    for key in keys {
        if let Some(stem) = key.strip_suffix(".digest.json") {
            if !keys.iter().any(|k| k.strip_suffix(".jsonl.gz") == Some(stem)) {
                let detail = "a digest whose segment is not there".to_owned();
                return Ok(Err(Break { place: url(key), kind: "missing segment", detail }));
            }
            continue;
        }
        let Some(stem) = key.strip_suffix(".jsonl.gz") else { continue };
        let digest_key = format!("{stem}.digest.json");
        if !keys.contains(&digest_key) {
            let detail = format!("no {digest_key} beside it");
            return Ok(Err(Break { place: url(key), kind: "missing digest", detail }));
        }
        let digest: SegmentDigest = match serde_json::from_slice(&get(digest_key.clone()).await?) {
            Ok(digest) => digest,
            Err(e) => return Ok(Err(Break { place: url(&digest_key), kind: "malformed", detail: e.to_string() })),
        };
        match check_object(&url(key), &get(key.clone()).await?, &digest) {
            Ok(piece) => pieces.push(piece),
            Err(broken) => return Ok(Err(broken)),
        }
    }
    Ok(verify(pieces, Missing::Segment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::Chain;

    fn log(chain: &mut Chain, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            chain.seal(
                format!(r#"{{"v":1,"time":"2026-12-02T19:47:24.123Z","event":"credentials","user":"u{i}"}}"#)
                    .as_bytes(),
                &mut out,
            );
        }
        out
    }

    fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
        Piece::from_bytes(String::new(), bytes).lines
    }

    fn join(lines: &[Vec<u8>]) -> Vec<u8> {
        lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect()
    }

    fn check(files: &[(&str, Vec<u8>)]) -> Result<Summary, Break> {
        verify(files.iter().map(|(n, b)| Piece::from_bytes((*n).into(), b)).collect(), Missing::File)
    }

    fn rotated() -> Vec<(&'static str, Vec<u8>)> {
        let mut chain = Chain::default();
        let a = log(&mut chain, 5);
        chain.prev_file = Some("audit.log.2".into());
        let b = log(&mut chain, 5);
        chain.prev_file = Some("audit.log.1".into());
        let c = log(&mut chain, 5);
        vec![("audit.log", c), ("audit.log.1", b), ("audit.log.2", a)]
    }

    #[test]
    fn an_intact_log_verifies_across_rotated_files_given_in_any_order() {
        let summary = check(&rotated()).unwrap();
        assert_eq!((summary.records, summary.first_seq, summary.last_seq, summary.files), (15, 1, 15, 3));
        assert_eq!(summary.to_string(), "intact: 15 records, seq 1..15 in 3 files");
    }

    #[test]
    fn each_kind_of_tampering_is_named_by_file_and_line() {
        let mut chain = Chain::default();
        let original = lines(&log(&mut chain, 6));
        let at = |f: Vec<Vec<u8>>| check(&[("audit.log", join(&f))]).unwrap_err();

        let mut removed = original.clone();
        removed.remove(2);
        let b = at(removed);
        assert_eq!((b.place.as_str(), b.kind), ("audit.log:3", "removed"), "{b}");

        let mut altered = original.clone();
        altered[3] = String::from_utf8(altered[3].clone()).unwrap().replace("u3", "u9").into_bytes();
        let b = at(altered);
        assert_eq!((b.place.as_str(), b.kind), ("audit.log:4", "altered"), "{b}");

        let mut reordered = original.clone();
        reordered.swap(1, 2);
        let b = at(reordered);
        assert_eq!((b.place.as_str(), b.kind), ("audit.log:2", "reordered"), "{b}");

        let mut copied = original.clone();
        copied.insert(4, original[1].clone());
        let b = at(copied);
        assert_eq!((b.place.as_str(), b.kind), ("audit.log:5", "inserted"), "{b}");

        let mut forged = original.clone();
        let fake = String::from_utf8(original[2].clone()).unwrap().replace("u2", "mallory");
        forged.insert(2, fake.into_bytes());
        let b = at(forged);
        assert_eq!((b.place.as_str(), b.kind), ("audit.log:3", "inserted"), "{b}");

        // A forged record with the right seq and a correctly computed chain: the real one after it hashes
        // from the same predecessor, and the one after that from the real one.
        let mut forged = original.clone();
        let before = Sealed::parse(&original[1]).unwrap();
        let mut fake_chain = Chain { seq: before.seq, head: before.chain.to_owned(), prev_file: None };
        let mut fake = Vec::new();
        fake_chain.seal(br#"{"v":1,"event":"credentials","user":"mallory"}"#, &mut fake);
        forged.insert(2, fake.strip_suffix(b"\n").unwrap().to_vec());
        let b = at(forged);
        assert_eq!((b.place.as_str(), b.kind), ("audit.log:3", "inserted"), "{b}");

        let mut torn = join(&original);
        torn.truncate(torn.len() - 30);
        let b = check(&[("audit.log", torn)]).unwrap_err();
        assert_eq!((b.place.as_str(), b.kind), ("audit.log:6", "truncated"), "{b}");
    }

    #[test]
    fn a_missing_rotated_file_is_named() {
        let mut files = rotated();
        files.remove(1);
        let b = check(&files).unwrap_err();
        assert_eq!((b.place.as_str(), b.kind), ("audit.log:1", "missing file"), "{b}");
        assert!(b.detail.contains("audit.log.1") && b.detail.contains("seq 6..10"), "{b}");
    }

    #[test]
    fn a_chain_started_again_is_a_break_and_unchained_lines_before_the_chain_are_not() {
        let mut first = Chain::default();
        let mut second = Chain::default();
        let mut bytes = log(&mut first, 3);
        bytes.extend(log(&mut second, 2));
        let b = check(&[("audit.log", bytes)]).unwrap_err();
        assert_eq!((b.place.as_str(), b.kind), ("audit.log:4", "restarted"), "{b}");

        let mut bytes = b"{\"v\":1,\"event\":\"start\"}\n".to_vec();
        bytes.extend(log(&mut Chain::default(), 2));
        let summary = check(&[("audit.log", bytes)]).unwrap();
        assert_eq!((summary.records, summary.unchained), (2, 1));
    }
}
