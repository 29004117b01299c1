//! The session policy generated for a rule with `scope_to_prefix = true`. Pure.
//!
//! The credentials may then read and write objects only under the matched prefix, and list the
//! bucket only below it (`s3:prefix`). A glob prefix is widened to the IAM wildcards that cover
//! it (`*`, `**` → `*`; `?` and `[..]` → `?`; `{a,b}` → one resource per alternative): IAM
//! wildcards cross `/`, so the policy may allow slightly more than the glob, never less.

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

/// The policy JSON (compact) limiting S3 access to `prefix`, for roles in `partition`.
pub fn scope_policy(partition: &str, prefix: &Prefix) -> String {
    let (buckets, keys) = if prefix.is_glob() {
        (expand_glob(prefix.bucket_part()), expand_glob(prefix.key_part()))
    } else {
        (vec![escape_literal(prefix.bucket_part())], vec![escape_literal(prefix.key_part())])
    };
    let object_resources: Vec<String> = buckets
        .iter()
        .flat_map(|b| keys.iter().map(move |k| format!("arn:{partition}:s3:::{b}/{}", with_star(k))))
        .collect();
    let bucket_resources: Vec<String> = buckets.iter().map(|b| format!("arn:{partition}:s3:::{b}")).collect();
    let list_prefixes: Vec<String> = keys.iter().map(|k| with_star(k)).collect();
    let policy: Value = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ObjectsUnderPrefix", "Effect": "Allow", "Action": OBJECT_ACTIONS,
             "Resource": object_resources},
            {"Sid": "ListUnderPrefix", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": bucket_resources, "Condition": {"StringLike": {"s3:prefix": list_prefixes}}},
            {"Sid": "BucketMetadata", "Effect": "Allow", "Action": BUCKET_ACTIONS,
             "Resource": bucket_resources},
        ]
    });
    policy.to_string()
}

fn with_star(key: &str) -> String {
    if key.ends_with('*') {
        key.to_owned()
    } else {
        format!("{key}*")
    }
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

/// Rewrites a glob to IAM wildcards, one string per `{a,b}` alternative.
fn expand_glob(glob: &str) -> Vec<String> {
    if let Some(open) = glob.find('{') {
        if let Some(close_rel) = glob[open..].find('}') {
            let close = open + close_rel;
            let (head, tail) = (&glob[..open], &glob[close + 1..]);
            return glob[open + 1..close]
                .split(',')
                .flat_map(|alt| expand_glob(&format!("{head}{alt}{tail}")))
                .collect();
        }
    }
    let mut out = String::with_capacity(glob.len());
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                out.push('*');
            }
            '?' => out.push('?'),
            '[' => {
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                }
                out.push('?');
            }
            '$' => out.push_str("${$}"),
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push_str(&escape_literal(&next.to_string()));
                }
            }
            _ => out.push(c),
        }
    }
    // A trailing "/*" (from "/**") already covers the folder's objects.
    vec![out]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_expansion() {
        assert_eq!(expand_glob("exports/**"), vec!["exports/*"]);
        assert_eq!(expand_glob("team-*"), vec!["team-*"]);
        assert_eq!(expand_glob("{a,b}/x?/[0-9]"), vec!["a/x?/?", "b/x?/?"]);
        assert_eq!(escape_literal("a*b?c$"), "a${*}b${?}c${$}");
    }
}
