//! EMR role-mapping formats → rules. PURE — no clock, environment or files.
//!
//! These inputs describe the same thing and are told apart automatically ([`parse`]):
//! - the raw security configuration JSON (`AuthorizationConfiguration.EmrFsConfiguration.RoleMappings`),
//!   what `aws emr create-security-configuration --security-configuration` takes;
//! - the output of `aws emr describe-security-configuration`, where `SecurityConfiguration` holds the
//!   configuration as a JSON string (an already-decoded object is accepted too);
//! - the emrfs-site `fs.s3.authorization.roleMapping` value: `<role arn>=<u|g|p>:<id>;<id>,...`, mappings
//!   separated by commas (a leading `fs.s3.authorization.roleMapping=` is ignored). EMR 7.10 and later,
//!   where S3A serves `s3://`, carry the same value as S3A's `fs.s3a.authorization.roleMapping` (EMR's
//!   "Migration guide: EMRFS to S3A" maps the one key to the other); either key is accepted;
//! - a Hadoop site file (`emrfs-site.xml`, `core-site.xml`) holding either property;
//! - an EMR `Configurations` list (`[{"Classification": "core-site", "Properties": {…}}]`, what
//!   `create-cluster --configurations` takes) holding either property in `emrfs-site` or `core-site`.
//!
//! Each mapping becomes one allow rule named `emr-<n>` (`n` = 0-based position of the mapping in the
//! input): `User` → `users`, `Group` → `groups`, `Prefix` → `prefixes`, identifiers in the same order.

use std::fmt;

use serde_json::Value;

use crate::rules::{Effect, Prefix, RoleArn, Rule};

/// Which of the three forms an input was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmrFormat {
    SecurityConfiguration,
    DescribeSecurityConfiguration,
    EmrfsSite,
    HadoopSite,
    Configurations,
}

impl fmt::Display for EmrFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EmrFormat::SecurityConfiguration => "EMR security configuration",
            EmrFormat::DescribeSecurityConfiguration => "describe-security-configuration output",
            EmrFormat::EmrfsSite => "emrfs-site roleMapping value",
            EmrFormat::HadoopSite => "Hadoop site file",
            EmrFormat::Configurations => "EMR Configurations",
        })
    }
}

/// `IdentifierType` of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentifierType {
    User,
    Group,
    Prefix,
}

/// One mapping as written in the input, before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmrMapping {
    pub role: String,
    pub identifier_type: IdentifierType,
    pub identifiers: Vec<String>,
    /// Where the mapping is, for messages: e.g. `AuthorizationConfiguration.EmrFsConfiguration.RoleMappings[1]`.
    pub key: String,
    /// 1-based line and column of the mapping (or of its role) in the input, when known.
    pub position: Option<(usize, usize)>,
}

/// An input that cannot be read as any EMR format, or a mapping that is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct EmrError {
    /// The offending key, e.g. `AuthorizationConfiguration.EmrFsConfiguration.RoleMappings[0].Role`.
    pub key: String,
    pub message: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
}

/// The parsed input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmrMappings {
    pub format: EmrFormat,
    pub mappings: Vec<EmrMapping>,
}

const ROLE_MAPPINGS: &str = "AuthorizationConfiguration.EmrFsConfiguration.RoleMappings";
/// EMRFS's role-mapping property, and S3A's on EMR 7.10 and later (the same value).
pub const SITE_KEYS: [&str; 2] = ["fs.s3.authorization.roleMapping", "fs.s3a.authorization.roleMapping"];

/// Detects the format of `text` and reads its mappings.
pub fn parse(text: &str) -> Result<EmrMappings, EmrError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('{') {
        parse_json(text)
    } else if trimmed.starts_with('[') {
        parse_configurations(text)
    } else if trimmed.starts_with('<') {
        parse_hadoop_site(text)
    } else {
        parse_site(text)
    }
}

/// A role-mapping property set in a Hadoop site file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteRoleMapping {
    /// One of [`SITE_KEYS`].
    pub key: &'static str,
    pub value: String,
    /// 1-based line and column of its `<property>`.
    pub position: (usize, usize),
}

/// The role-mapping properties a Hadoop site file sets (non-empty values); `check` warns about them,
/// `import` reads them.
pub fn hadoop_site_role_mappings(text: &str) -> Result<Vec<SiteRoleMapping>, EmrError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| EmrError {
        key: "(document)".into(),
        message: format!("invalid XML: {e}"),
        position: Some((e.pos().row as usize, e.pos().col as usize)),
    })?;
    let mut found = Vec::new();
    for property in doc.root_element().children().filter(|n| n.has_tag_name("property")) {
        let child = |tag: &str| property.children().find(|n| n.has_tag_name(tag)).and_then(|n| n.text());
        let Some(key) = SITE_KEYS.iter().find(|k| child("name").map(str::trim) == Some(**k)) else { continue };
        let value = child("value").unwrap_or("").trim();
        if !value.is_empty() {
            let at = doc.text_pos_at(property.range().start);
            found.push(SiteRoleMapping { key, value: value.to_owned(), position: (at.row as usize, at.col as usize) });
        }
    }
    Ok(found)
}

fn parse_hadoop_site(text: &str) -> Result<EmrMappings, EmrError> {
    let found = hadoop_site_role_mappings(text)?;
    let Some(SiteRoleMapping { key, value, position }) = found.into_iter().next() else {
        return Err(EmrError {
            key: "(document)".into(),
            message: format!("no {} or {} property with a value", SITE_KEYS[0], SITE_KEYS[1]),
            position: Some((1, 1)),
        });
    };
    site_value_mappings(&value, key, Some(position), EmrFormat::HadoopSite)
}

fn parse_configurations(text: &str) -> Result<EmrMappings, EmrError> {
    let list: Value = serde_json::from_str(text).map_err(|e| EmrError {
        key: "(document)".into(),
        message: format!("invalid JSON: {e}"),
        position: Some((e.line(), e.column())),
    })?;
    for (i, entry) in list.as_array().into_iter().flatten().enumerate() {
        let classification = entry.get("Classification").and_then(Value::as_str).unwrap_or("");
        if !matches!(classification, "emrfs-site" | "core-site") {
            continue;
        }
        for key in SITE_KEYS {
            if let Some(value) = entry.get("Properties").and_then(|p| p.get(key)).and_then(Value::as_str) {
                let at = locate(text, &format!("\"{key}\""));
                let path = format!("[{i}].Properties.{key}");
                return site_value_mappings(value, &path, at, EmrFormat::Configurations);
            }
        }
    }
    Err(EmrError {
        key: "(document)".into(),
        message: format!("no emrfs-site or core-site classification with {} or {}", SITE_KEYS[0], SITE_KEYS[1]),
        position: Some((1, 1)),
    })
}

/// A roleMapping value found inside another document: its mappings, keyed and placed by where it was.
fn site_value_mappings(
    value: &str,
    key: &str,
    at: Option<(usize, usize)>,
    format: EmrFormat,
) -> Result<EmrMappings, EmrError> {
    let relocate = |mut m: EmrMapping| {
        m.key = format!("{key}.{}", m.key);
        m.position = at;
        m
    };
    match parse_site(value) {
        Ok(parsed) => Ok(EmrMappings { format, mappings: parsed.mappings.into_iter().map(relocate).collect() }),
        Err(e) => Err(EmrError { key: format!("{key}.{}", e.key), message: e.message, position: at }),
    }
}

/// Reads the mappings and turns them into rules `emr-0`, `emr-1`, … with indexes from `first_index`.
pub fn parse_rules(text: &str, first_index: usize) -> Result<(EmrFormat, Vec<Rule>), EmrError> {
    let parsed = parse(text)?;
    Ok((parsed.format, to_rules(&parsed.mappings, first_index)?))
}

/// Validates mappings and turns them into rules (see the module docs).
pub fn to_rules(mappings: &[EmrMapping], first_index: usize) -> Result<Vec<Rule>, EmrError> {
    mappings
        .iter()
        .enumerate()
        .map(|(n, m)| {
            let err = |field: &str, message: String| EmrError {
                key: if field.is_empty() { m.key.clone() } else { format!("{}.{field}", m.key) },
                message,
                position: m.position,
            };
            let role = RoleArn::parse(&m.role).map_err(|e| err("Role", e))?;
            if m.identifiers.is_empty() {
                return Err(err("Identifiers", "no identifiers: the mapping would match every request".into()));
            }
            let mut rule = Rule {
                index: first_index + n,
                name: format!("emr-{n}"),
                effect: Effect::Allow(role),
                users: vec![],
                groups: vec![],
                prefixes: vec![],
                access: None,
                external_id: None,
                duration: None,
                session_policy: None,
                scope_to_prefix: false,
            };
            for (i, id) in m.identifiers.iter().enumerate() {
                let field = format!("Identifiers[{i}]");
                match m.identifier_type {
                    IdentifierType::User => rule.users.push(id.clone()),
                    IdentifierType::Group => rule.groups.push(id.clone()),
                    IdentifierType::Prefix => rule.prefixes.push(Prefix::parse(id).map_err(|e| err(&field, e))?),
                }
            }
            // Validated where every rule is; a user or group entry is the identifier at that position.
            rule.validate().map_err(|(field, message)| {
                let item = field.split_once('[').map_or("", |(_, rest)| rest.trim_end_matches(']'));
                err(&format!("Identifiers[{item}]"), message)
            })?;
            Ok(rule)
        })
        .collect()
}

fn parse_json(text: &str) -> Result<EmrMappings, EmrError> {
    let json_err = |e: serde_json::Error, key: &str| EmrError {
        key: key.to_owned(),
        message: format!("invalid JSON: {e}"),
        position: Some((e.line(), e.column())),
    };
    let top: Value = serde_json::from_str(text).map_err(|e| json_err(e, "(document)"))?;
    if let Some(sc) = top.get("SecurityConfiguration") {
        let at = locate(text, "\"SecurityConfiguration\"");
        let inner = match sc {
            Value::String(s) => serde_json::from_str::<Value>(s).map_err(|e| EmrError {
                key: "SecurityConfiguration".into(),
                message: format!("the embedded security configuration is not valid JSON: {e}"),
                position: at,
            })?,
            Value::Object(_) => sc.clone(),
            _ => {
                return Err(EmrError {
                    key: "SecurityConfiguration".into(),
                    message: "expected a JSON string or object".into(),
                    position: at,
                })
            }
        };
        // Inside a JSON string every mapping sits on the SecurityConfiguration line.
        let mappings = role_mappings(&inner, "SecurityConfiguration.", &mut |_| at)?;
        return Ok(EmrMappings { format: EmrFormat::DescribeSecurityConfiguration, mappings });
    }
    if top.get("AuthorizationConfiguration").is_some() {
        let mut from = 0;
        let mut find_role = |role: &str| {
            let needle = serde_json::to_string(role).unwrap_or_default();
            let off = text.get(from..)?.find(&needle)? + from;
            from = off + needle.len();
            Some(crate::text::line_col(text, off))
        };
        let mappings = role_mappings(&top, "", &mut find_role)?;
        return Ok(EmrMappings { format: EmrFormat::SecurityConfiguration, mappings });
    }
    Err(EmrError {
        key: "(document)".into(),
        message: "JSON with neither SecurityConfiguration (describe-security-configuration output) nor \
                  AuthorizationConfiguration (security configuration)"
            .into(),
        position: Some((1, 1)),
    })
}

fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    text.find(needle).map(|off| crate::text::line_col(text, off))
}

fn role_mappings(
    config: &Value,
    key_prefix: &str,
    position_of_role: &mut dyn FnMut(&str) -> Option<(usize, usize)>,
) -> Result<Vec<EmrMapping>, EmrError> {
    let base = format!("{key_prefix}{ROLE_MAPPINGS}");
    let err = |key: String, message: &str, position| Err(EmrError { key, message: message.into(), position });
    let mut node = config;
    let mut path = key_prefix.to_owned();
    for part in ROLE_MAPPINGS.split('.') {
        path.push_str(part);
        match node.get(part) {
            Some(v) => node = v,
            None => return err(path, "missing (no EMRFS role mappings in this configuration)", None),
        }
        path.push('.');
    }
    let Value::Array(list) = node else {
        return err(base, "expected an array of role mappings", None);
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let key = format!("{base}[{i}]");
        let Value::Object(obj) = m else {
            return err(key, "expected an object with Role, IdentifierType and Identifiers", None);
        };
        let role = match obj.get("Role") {
            Some(Value::String(s)) => s.clone(),
            _ => return err(format!("{key}.Role"), "missing or not a string", None),
        };
        let position = position_of_role(&role);
        if let Some(extra) = obj.keys().find(|k| !["Role", "IdentifierType", "Identifiers"].contains(&k.as_str())) {
            return err(format!("{key}.{extra}"), "unknown key (expected Role, IdentifierType, Identifiers)", position);
        }
        let identifier_type = match obj.get("IdentifierType").and_then(Value::as_str) {
            Some(t) => match identifier_type(t) {
                Some(t) => t,
                None => return err(format!("{key}.IdentifierType"), "must be User, Group or Prefix", position),
            },
            None => return err(format!("{key}.IdentifierType"), "missing or not a string", position),
        };
        let identifiers = match obj.get("Identifiers") {
            Some(Value::Array(ids)) => {
                let mut v = Vec::with_capacity(ids.len());
                for (j, id) in ids.iter().enumerate() {
                    match id {
                        Value::String(s) => v.push(s.clone()),
                        _ => return err(format!("{key}.Identifiers[{j}]"), "not a string", position),
                    }
                }
                v
            }
            _ => return err(format!("{key}.Identifiers"), "missing or not an array of strings", position),
        };
        out.push(EmrMapping { role, identifier_type, identifiers, key, position });
    }
    Ok(out)
}

fn identifier_type(s: &str) -> Option<IdentifierType> {
    match s.to_ascii_lowercase().as_str() {
        "user" | "u" => Some(IdentifierType::User),
        "group" | "g" => Some(IdentifierType::Group),
        "prefix" | "p" => Some(IdentifierType::Prefix),
        _ => None,
    }
}

fn parse_site(text: &str) -> Result<EmrMappings, EmrError> {
    // Skip an optional `fs.s3.authorization.roleMapping=` or `fs.s3a.…=` (as copied from a properties file).
    let mut start = text.len() - text.trim_start().len();
    if let Some(key) = SITE_KEYS.iter().find(|k| text[start..].starts_with(**k)) {
        let after = text[start + key.len()..].trim_start();
        if let Some(rest) = after.strip_prefix('=') {
            start = text.len() - rest.len();
        }
    }
    let body = &text[start..];
    let mut mappings = Vec::new();
    let mut offset = start;
    for (n, piece) in body.split(',').enumerate() {
        let piece_start = offset;
        offset += piece.len() + 1;
        let lead = piece.len() - piece.trim_start().len();
        let entry = piece.trim();
        let key = format!("roleMapping[{n}]");
        let position = Some(crate::text::line_col(text, piece_start + lead));
        if entry.is_empty() {
            if n == 0 && body.trim().is_empty() {
                return Err(EmrError { key, message: "empty input: no role mappings".into(), position });
            }
            return Err(EmrError { key, message: "empty mapping (stray comma?)".into(), position });
        }
        // The role name may contain '=', never ':', so the first "=<u|g|p>:" separates role and identifiers.
        let sep = ["=u:", "=g:", "=p:", "=U:", "=G:", "=P:"].iter().filter_map(|s| entry.find(s)).min();
        let Some(sep) = sep else {
            return Err(EmrError {
                key,
                message: format!("expected <role arn>=<u|g|p>:<id>;<id>, got '{entry}'"),
                position,
            });
        };
        let role = entry[..sep].trim().to_owned();
        let identifier_type = identifier_type(&entry[sep + 1..sep + 2]).expect("matched above");
        let identifiers = entry[sep + 3..].split(';').map(|s| s.trim().to_owned()).collect();
        mappings.push(EmrMapping { role, identifier_type, identifiers, key, position });
    }
    Ok(EmrMappings { format: EmrFormat::EmrfsSite, mappings })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "arn:aws:iam::222222222222:role/role_in_destination_account=p:s3://doc-example-bucket/,\
arn:aws:iam::333333333333:role/analyst-role=g:analysts;data-science,\
arn:aws:iam::444444444444:role/etl-role=u:etl;airflow";

    #[test]
    fn site_format() {
        let m = parse(SITE).unwrap();
        assert_eq!(m.format, EmrFormat::EmrfsSite);
        assert_eq!(m.mappings.len(), 3);
        assert_eq!(m.mappings[1].identifiers, vec!["analysts", "data-science"]);
        assert_eq!(m.mappings[2].identifier_type, IdentifierType::User);
        let (_, rules) = parse_rules(SITE, 2).unwrap();
        assert_eq!(rules[0].name, "emr-0");
        assert_eq!(rules[0].index, 2);
        assert_eq!(rules[0].prefixes[0].as_str(), "s3://doc-example-bucket/");
        let with_key = format!("fs.s3.authorization.roleMapping = {SITE}\n");
        assert_eq!(
            parse(&with_key).unwrap().mappings,
            m.mappings
                .iter()
                .cloned()
                .map(|mut x| {
                    x.position = x.position.map(|(l, c)| (l, c + "fs.s3.authorization.roleMapping = ".len()));
                    x
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn s3a_forms_of_emr_7_10() {
        let expected = parse(SITE).unwrap().mappings;
        let same = |m: &EmrMappings| {
            m.mappings.iter().map(|x| (&x.role, &x.identifiers)).eq(expected.iter().map(|x| (&x.role, &x.identifiers)))
        };
        let properties = parse(&format!("fs.s3a.authorization.roleMapping={SITE}")).unwrap();
        assert_eq!(properties.format, EmrFormat::EmrfsSite);
        assert!(same(&properties));
        let xml = format!(
            "<?xml version=\"1.0\"?>\n<configuration>\n  <property><name>fs.s3a.endpoint.region</name><value>us-east-1</value></property>\n  \
             <property>\n    <name>fs.s3a.authorization.roleMapping</name>\n    <value>{SITE}</value>\n  </property>\n</configuration>\n"
        );
        let site = parse(&xml).unwrap();
        assert_eq!(site.format, EmrFormat::HadoopSite);
        assert!(same(&site));
        assert_eq!(site.mappings[0].key, "fs.s3a.authorization.roleMapping.roleMapping[0]");
        assert_eq!(site.mappings[0].position, Some((4, 3)));
        let conf = serde_json::json!([
            {"Classification": "spark-defaults", "Properties": {"spark.x": "1"}},
            {"Classification": "core-site", "Properties": {"fs.s3a.authorization.roleMapping": SITE}}
        ])
        .to_string();
        let c = parse(&conf).unwrap();
        assert_eq!(c.format, EmrFormat::Configurations);
        assert!(same(&c));
        // A bad mapping inside a site file is named by the property and placed at it.
        let bad = "<configuration><property><name>fs.s3.authorization.roleMapping</name><value>x=u:a</value></property></configuration>";
        let e = parse_rules(bad, 0).unwrap_err();
        assert_eq!(e.key, "fs.s3.authorization.roleMapping.roleMapping[0].Role");
        assert!(parse("<configuration/>").unwrap_err().message.contains("no fs.s3.authorization.roleMapping"));
        assert!(parse("<configuration>").unwrap_err().message.starts_with("invalid XML"));
        assert!(parse("[]").is_err());
    }

    #[test]
    fn site_errors_name_the_mapping() {
        let e = parse_rules("arn:aws:iam::1:role/x=u:a", 0).unwrap_err();
        assert_eq!(e.key, "roleMapping[0].Role");
        let e = parse("arn:aws:iam::123456789012:role/x=u:a,,").unwrap_err();
        assert_eq!(e.key, "roleMapping[1]");
        let e = parse("arn:aws:iam::123456789012:role/x u:a").unwrap_err();
        assert_eq!(e.key, "roleMapping[0]");
    }

    #[test]
    fn json_formats() {
        let raw = r#"{"AuthorizationConfiguration":{"EmrFsConfiguration":{"RoleMappings":[
            {"Role":"arn:aws:iam::123456789012:role/a","IdentifierType":"Group","Identifiers":["g1"]},
            {"Role":"arn:aws:iam::1:role/b","IdentifierType":"User","Identifiers":["u"]}]}}}"#;
        let m = parse(raw).unwrap();
        assert_eq!(m.format, EmrFormat::SecurityConfiguration);
        let e = parse_rules(raw, 0).unwrap_err();
        assert_eq!(e.key, "AuthorizationConfiguration.EmrFsConfiguration.RoleMappings[1].Role");
        assert_eq!(e.position, Some((3, 21)));
        let described = serde_json::json!({"Name": "x", "SecurityConfiguration": raw}).to_string();
        let d = parse(&described).unwrap();
        assert_eq!(d.format, EmrFormat::DescribeSecurityConfiguration);
        assert_eq!(d.mappings.len(), 2);
        assert!(parse("{\"Name\": 1}").is_err());
        assert!(parse("{").unwrap_err().position.is_some());
    }
}
