//! Session-name and source-identity templates. PURE — no clock, environment or files.
//!
//! A template is text with the placeholders `{user}`, `{cluster_id}`, `{instance_id}` and `{rule}`; any other
//! `{...}` or an unbalanced brace is a parse error. Rendering substitutes the placeholders and then makes the
//! result acceptable to STS (`[\w+=,.@-]`, 2 to 64 characters): when that needs any change (a replaced
//! character, truncation, padding) the result ends in `-` and 8 hex digits of a hash of the unsanitised
//! text, so two different users never share a session name by accident.

use std::fmt;

use crate::rules::is_sts_word;

/// The longest session name / source identity STS accepts.
pub const MAX_LEN: usize = 64;
/// The shortest session name / source identity STS accepts.
pub const MIN_LEN: usize = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    User,
    ClusterId,
    InstanceId,
    Rule,
}

/// A parsed template such as `"{user}-{cluster_id}"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// The values substituted into a template.
#[derive(Clone, Copy, Debug)]
pub struct TemplateVars<'a> {
    pub user: &'a str,
    pub cluster_id: &'a str,
    pub instance_id: &'a str,
    pub rule: &'a str,
}

impl Template {
    /// Parses a template; an empty template, an unknown placeholder or a stray brace is an error.
    pub fn parse(s: &str) -> Result<Template, String> {
        if s.is_empty() {
            return Err("empty template".into());
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            match c {
                '{' => {
                    let Some(end) = rest.find('}') else {
                        return Err(format!("unclosed '{{' in template '{s}'"));
                    };
                    let name = &rest[1..end];
                    let part = match name {
                        "user" => Part::User,
                        "cluster_id" => Part::ClusterId,
                        "instance_id" => Part::InstanceId,
                        "rule" => Part::Rule,
                        _ => {
                            return Err(format!(
                                "unknown placeholder '{{{name}}}' in template '{s}' \
                                 (known: {{user}} {{cluster_id}} {{instance_id}} {{rule}})"
                            ))
                        }
                    };
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(part);
                    rest = &rest[end + 1..];
                }
                '}' => return Err(format!("unmatched '}}' in template '{s}'")),
                _ => {
                    text.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { source: s.to_owned(), parts })
    }

    /// Substitutes the placeholders and sanitises the result to `[\w+=,.@-]{2,64}`.
    pub fn render(&self, vars: &TemplateVars<'_>) -> String {
        let mut raw = String::new();
        for part in &self.parts {
            raw.push_str(match part {
                Part::Text(t) => t,
                Part::User => vars.user,
                Part::ClusterId => vars.cluster_id,
                Part::InstanceId => vars.instance_id,
                Part::Rule => vars.rule,
            });
        }
        sanitise(&raw)
    }

    /// The template text as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template mentions `{user}` (a session name without it hides who asked in CloudTrail).
    pub fn mentions_user(&self) -> bool {
        self.parts.contains(&Part::User)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Makes `raw` a valid STS session name (see the module docs).
pub fn sanitise(raw: &str) -> String {
    let clean: String = raw.chars().map(|c| if is_sts_word(c) { c } else { '-' }).collect();
    if clean == raw && (MIN_LEN..=MAX_LEN).contains(&clean.len()) {
        return clean;
    }
    let suffix = format!("-{:08x}", fnv1a(raw.as_bytes()));
    let mut body = clean;
    body.truncate(MAX_LEN - suffix.len()); // ASCII only, so any index is a char boundary
    body + &suffix
}

/// 32-bit FNV-1a: small, stable across versions and platforms (session names must not change on upgrade).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(user: &'a str) -> TemplateVars<'a> {
        TemplateVars { user, cluster_id: "j-ABC", instance_id: "i-0123", rule: "r1" }
    }

    #[test]
    fn renders_placeholders() {
        let t = Template::parse("{user}@{cluster_id}.{instance_id}+{rule}").unwrap();
        assert_eq!(t.render(&vars("alice")), "alice@j-ABC.i-0123+r1");
        assert_eq!(t.as_str(), "{user}@{cluster_id}.{instance_id}+{rule}");
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in ["", "{usr}", "{user", "user}", "{}", "{{user}}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sanitises_to_sts_rules() {
        let t = Template::parse("{user}").unwrap();
        let ok = |s: &str| (2..=64).contains(&s.len()) && s.chars().all(is_sts_word);
        for user in ["a", "jörg", "a b", &"x".repeat(100), "", "uid:1001"] {
            let s = t.render(&vars(user));
            assert!(ok(&s), "{user:?} -> {s:?}");
        }
        assert_ne!(t.render(&vars("a b")), t.render(&vars("a-b")));
        assert_eq!(t.render(&vars("a-b")), "a-b");
        assert_ne!(t.render(&vars(&format!("{}1", "x".repeat(80)))), t.render(&vars(&format!("{}2", "x".repeat(80)))));
    }
}
