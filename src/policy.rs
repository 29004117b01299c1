//! The session policy generated for a rule with `scope_to_prefix = true`. Pure.
//!
//! The credentials may then read and write objects only where the matched prefix matches, and list
//! a bucket only below it (`s3:prefix`). The policy never grants a location the prefix does not
//! match: IAM's wildcards (`*`, `?`) also match `/`, where a glob's `*`, `?` and `[..]` stay inside
//! one path segment and a bucket pattern stays inside the bucket name, so only what IAM can say
//! exactly is accepted ([`object_patterns`]): a plain prefix; a glob whose `{a,b}` alternatives (nested
//! or not) are each a literal bucket and key, optionally ending in a `/**` segment. Anything else is a
//! configuration error that says why.

use serde_json::{json, Value};

use crate::rules::Prefix;

/// Object-level actions a job needs under its prefix.
const OBJECT_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
];

/// Bucket-level actions that reveal no object data.
const BUCKET_ACTIONS: &[&str] = &["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"];

/// The longest inline session policy STS accepts (characters, without white space).
pub const MAX_POLICY_CHARS: usize = 2048;

/// One place the policy grants: a bucket and an IAM pattern of keys (literal, or ending in `*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectPattern {
    pub bucket: String,
    pub key: String,
}

/// The IAM patterns that grant exactly the locations `prefix` matches (an alternative's `**` folder
/// form, the key without its `/`, is left out: narrower, never wider), or why there are none.
pub fn object_patterns(prefix: &Prefix) -> Result<Vec<ObjectPattern>, String> {
    if !prefix.is_glob() {
        return Ok(vec![ObjectPattern {
            bucket: escape_literal(prefix.bucket_part()),
            key: format!("{}*", escape_literal(prefix.key_part())),
        }]);
    }
    let body = prefix.as_str().strip_prefix("s3://").unwrap_or(prefix.as_str());
    let mut patterns = Vec::new();
    for alternative in expand_braces(body)? {
        let (bucket, key) = alternative.split_once('/').unwrap_or((alternative.as_str(), ""));
        let bucket = literal(bucket).ok_or_else(|| {
            format!(
                "scope_to_prefix cannot confine '{prefix}': a wildcard in the bucket name would reach other \
                 buckets (IAM's wildcards also match '/'); name the buckets, e.g. s3://{{bucket-a,bucket-b}}/..."
            )
        })?;
        // `**` crosses segments only as a whole segment (`.../**`); elsewhere it is a segment wildcard.
        let (key_literal, anything_after) = match key.strip_suffix("**") {
            Some(head) if head.is_empty() || head.ends_with('/') => (head, true),
            _ => (key, false),
        };
        let key_literal = literal(key_literal).ok_or_else(|| {
            format!(
                "scope_to_prefix cannot confine '{prefix}' exactly: the glob's '*', '?' and '[..]' stay within \
                 one path segment, IAM's wildcards do not; use a plain prefix, {{a,b}} alternatives or a \
                 trailing '**'"
            )
        })?;
        let key = escape_literal(&key_literal) + if anything_after { "*" } else { "" };
        patterns.push(ObjectPattern { bucket: escape_literal(&bucket), key });
    }
    Ok(patterns)
}

/// The policy JSON (compact) limiting S3 access to `prefix`, for roles in `partition`. `prefix` must
/// have passed [`check`] (configuration validation sees to it).
pub fn scope_policy(partition: &str, prefix: &Prefix) -> String {
    let patterns = object_patterns(prefix).expect("validated by check");
    let objects: Vec<String> =
        patterns.iter().map(|p| format!("arn:{partition}:s3:::{}/{}", p.bucket, p.key)).collect();
    let mut buckets: Vec<&str> = patterns.iter().map(|p| p.bucket.as_str()).collect();
    buckets.sort_unstable();
    buckets.dedup();
    let mut statements = vec![json!({
        "Sid": "ObjectsUnderPrefix", "Effect": "Allow", "Action": OBJECT_ACTIONS, "Resource": objects,
    })];
    // Listing: each bucket below its own keys only.
    for (i, bucket) in buckets.iter().enumerate() {
        let keys: Vec<&str> = patterns.iter().filter(|p| p.bucket == *bucket).map(|p| p.key.as_str()).collect();
        statements.push(json!({
            "Sid": format!("ListUnderPrefix{i}"), "Effect": "Allow", "Action": "s3:ListBucket",
            "Resource": format!("arn:{partition}:s3:::{bucket}"),
            "Condition": {"StringLike": {"s3:prefix": keys}},
        }));
    }
    let bucket_resources: Vec<String> = buckets.iter().map(|b| format!("arn:{partition}:s3:::{b}")).collect();
    statements.push(json!({
        "Sid": "BucketMetadata", "Effect": "Allow", "Action": BUCKET_ACTIONS, "Resource": bucket_resources,
    }));
    let policy: Value = json!({"Version": "2012-10-17", "Statement": statements});
    policy.to_string()
}

/// Whether `scope_to_prefix` can confine credentials to `prefix` exactly, in a policy STS accepts.
pub fn check(partition: &str, prefix: &Prefix) -> Result<(), String> {
    object_patterns(prefix)?;
    let length = scope_policy(partition, prefix).len();
    if length > MAX_POLICY_CHARS {
        return Err(format!(
            "the session policy scope_to_prefix generates for '{prefix}' is {length} characters; STS allows \
             {MAX_POLICY_CHARS}"
        ));
    }
    Ok(())
}

/// The text of a glob piece without glob syntax (escapes resolved), or `None` if it has any.
fn literal(piece: &str) -> Option<String> {
    let mut out = String::with_capacity(piece.len());
    let mut chars = piece.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '*' | '?' | '[' | ']' | '{' | '}' => return None,
            _ => out.push(c),
        }
    }
    Some(out)
}

/// Every alternative of a glob's `{a,b}` groups, nested or not: `{a,{b,c}}x` → `ax`, `bx`, `cx`.
fn expand_braces(glob: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = glob.chars().collect();
    let (alternatives, end) = sequence(&chars, 0, false)?;
    if end != chars.len() {
        return Err(format!("unbalanced '}}' in '{glob}'"));
    }
    Ok(alternatives)
}

/// Parses from `at` up to the end (or, `inside` a group, up to its `,` or `}`): every string the
/// sequence stands for, and where it stopped.
fn sequence(chars: &[char], mut at: usize, inside: bool) -> Result<(Vec<String>, usize), String> {
    let mut out = vec![String::new()];
    while at < chars.len() {
        match chars[at] {
            '\\' if at + 1 < chars.len() => {
                out.iter_mut().for_each(|s| s.extend([chars[at], chars[at + 1]]));
                at += 2;
            }
            '{' => {
                let mut choices = Vec::new();
                at += 1;
                loop {
                    let (alternatives, stop) = sequence(chars, at, true)?;
                    choices.extend(alternatives);
                    match chars.get(stop) {
                        Some(',') => at = stop + 1,
                        Some('}') => {
                            at = stop + 1;
                            break;
                        }
                        _ => return Err("unclosed '{'".into()),
                    }
                }
                out = out.iter().flat_map(|head| choices.iter().map(move |c| format!("{head}{c}"))).collect();
            }
            ',' | '}' if inside => return Ok((out, at)),
            c => {
                out.iter_mut().for_each(|s| s.push(c));
                at += 1;
            }
        }
    }
    Ok((out, at))
}

/// IAM treats `*`, `?` and `$` specially; `${*}`, `${?}` and `${$}` are their literal forms.
fn escape_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '*' | '?' | '$' => {
                out.push_str("${");
                out.push(c);
                out.push('}');
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(prefix: &str) -> Result<Vec<String>, String> {
        object_patterns(&Prefix::parse(prefix).unwrap())
            .map(|ps| ps.into_iter().map(|p| format!("{}/{}", p.bucket, p.key)).collect())
    }

    #[test]
    fn exact_forms_become_iam_patterns() {
        assert_eq!(patterns("s3://bkt/exports/").unwrap(), ["bkt/exports/*"]);
        assert_eq!(patterns("s3://bkt/exports/**").unwrap(), ["bkt/exports/*"]);
        assert_eq!(patterns("s3://bkt/{gold,silver}/**").unwrap(), ["bkt/gold/*", "bkt/silver/*"]);
        assert_eq!(patterns("s3://bkt/{a,{b,c}}/**").unwrap(), ["bkt/a/*", "bkt/b/*", "bkt/c/*"]);
        assert_eq!(patterns("s3://{bk1,bk2}/x/{y,z}").unwrap(), ["bk1/x/y", "bk1/x/z", "bk2/x/y", "bk2/x/z"]);
        assert_eq!(escape_literal("a*b?c$"), "a${*}b${?}c${$}");
    }

    #[test]
    fn what_iam_cannot_say_exactly_is_refused_with_the_reason() {
        let bucket = patterns("s3://team-*-prod/**").unwrap_err();
        assert!(bucket.contains("other buckets"), "{bucket}");
        for glob in ["s3://bkt/landing/*/x", "s3://bkt/day-?/**", "s3://bkt/[ab]/**", "s3://bkt/x/*.csv"] {
            let e = patterns(glob).unwrap_err();
            assert!(e.contains("one path segment"), "{glob}: {e}");
        }
    }

    #[test]
    fn each_bucket_lists_only_its_own_keys() {
        let policy: Value =
            serde_json::from_str(&scope_policy("aws", &Prefix::parse("s3://{bk1/a,bk2/b}/**").unwrap())).unwrap();
        let lists: Vec<&Value> =
            policy["Statement"].as_array().unwrap().iter().filter(|s| s["Action"] == "s3:ListBucket").collect();
        assert_eq!(lists.len(), 2);
        assert_eq!(lists[0]["Resource"], "arn:aws:s3:::bk1");
        assert_eq!(lists[0]["Condition"]["StringLike"]["s3:prefix"], json!(["a/*"]));
        assert_eq!(lists[1]["Condition"]["StringLike"]["s3:prefix"], json!(["b/*"]));
    }
}
