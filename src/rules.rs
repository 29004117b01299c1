//! The rule engine. PURE — no clock, environment or files.
//!
//! A [`RuleSet`] is an ordered list of [`Rule`]s. A rule matches a [`Request`] when every condition it names
//! holds: `users` contains the user, `groups` intersects the user's groups, one of `prefixes` matches the
//! location. The first matching rule decides ([`Decision::Rule`]); if none matches the caller falls back
//! ([`Decision::Fallback`]). A request without a location never matches a rule that names prefixes.
//!
//! Prefixes (see `docs/rules.md`): a plain identifier (`s3://bucket/dir/`) matches by S3 key prefix inside
//! exactly that bucket; a trailing `*` is dropped as EMRFS does; an identifier with glob syntax (`*`, `?`,
//! `[..]`, `{a,b}`) anywhere else is a glob over the whole normalised location, compiled once here.

use std::fmt;
use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex_automata::dfa::{dense, Automaton};
use regex_automata::{Anchored, Input};

use crate::access::Access;
use crate::location::{self, Location, LocationError};

/// What a matching rule does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Hand out credentials for this role.
    Allow(RoleArn),
    /// Ask S3 Access Grants, as this role (the grantee), for credentials for the location (SPEC §4.1).
    AccessGrants(RoleArn),
    /// Refuse with 403 `AccessDenied`.
    Deny,
}

impl Effect {
    /// `effect` as the configuration writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Effect::Allow(_) => "allow",
            Effect::AccessGrants(_) => "access-grants",
            Effect::Deny => "deny",
        }
    }

    /// The role an allow rule hands out, or an access-grants rule asks as.
    pub fn role(&self) -> Option<&RoleArn> {
        match self {
            Effect::Allow(role) | Effect::AccessGrants(role) => Some(role),
            Effect::Deny => None,
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path><name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleArn {
    arn: String,
    partition_end: usize,
    account: std::ops::Range<usize>,
}

impl RoleArn {
    /// Parses and validates a role ARN. The role name is 1–64 characters of `[\w+=,.@-]`; the optional path
    /// between `role/` and the name is printable ASCII.
    pub fn parse(s: &str) -> Result<RoleArn, String> {
        let bad = |why: &str| Err(format!("not an IAM role ARN ({why}): '{}'", s.escape_debug()));
        if s.len() > 2048 {
            return bad("longer than 2048 characters");
        }
        let mut parts = s.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return bad("expected arn:<partition>:iam::<account>:role/<name>");
        };
        if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            return bad("invalid partition");
        }
        if service != "iam" {
            return bad("service must be iam");
        }
        if !region.is_empty() {
            return bad("IAM ARNs have an empty region");
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return bad("account id must be 12 digits");
        }
        let Some(path_name) = resource.strip_prefix("role/") else {
            return bad("resource must be role/<name>");
        };
        let (path, name) = match path_name.rfind('/') {
            Some(i) => (&path_name[..=i], &path_name[i + 1..]),
            None => ("", path_name),
        };
        if name.is_empty() || name.len() > 64 || !name.chars().all(is_sts_word) {
            return bad("role name must be 1-64 characters of letters, digits and +=,.@_-");
        }
        if path.len() > 511 || path.contains("//") || !path.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return bad("invalid role path");
        }
        let account_start = "arn:".len() + partition.len() + ":iam::".len();
        Ok(RoleArn {
            arn: s.to_owned(),
            partition_end: 4 + partition.len(),
            account: account_start..account_start + 12,
        })
    }

    /// The ARN text.
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The 12-digit account id.
    pub fn account_id(&self) -> &str {
        &self.arn[self.account.clone()]
    }

    /// The partition (`aws`, `aws-cn`, `aws-us-gov`, …).
    pub fn partition(&self) -> &str {
        &self.arn[4..self.partition_end]
    }

    /// The role's name: what follows the last `/` of its path.
    pub fn name(&self) -> &str {
        self.arn.rsplit('/').next().expect("rsplit yields at least one piece")
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// `[\w+=,.@-]`: the characters STS accepts in role names, session names and source identities.
pub(crate) fn is_sts_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// One entry of a rule's `prefixes`: a plain S3 prefix or a compiled glob.
#[derive(Clone, Debug)]
pub struct Prefix {
    source: String,
    bucket: String,
    key: String,
    glob: Option<GlobSet>,
    /// The glob's patterns as one anchored DFA, to tell when no location beginning with a given prefix
    /// can match (how far an answer holds, `scope`).
    automaton: Option<std::sync::Arc<dense::DFA<Vec<u32>>>>,
}

impl PartialEq for Prefix {
    fn eq(&self, other: &Prefix) -> bool {
        self.source == other.source
    }
}
impl Eq for Prefix {}

/// Characters that make an identifier a glob.
const GLOB_CHARS: &[char] = &['*', '?', '[', ']', '{', '}'];

impl Prefix {
    /// Parses a prefix identifier (see the module docs and `docs/rules.md`).
    pub fn parse(input: &str) -> Result<Prefix, String> {
        if input.is_empty() {
            return Err("empty prefix".into());
        }
        let rest = location::strip_scheme(input).map_err(|e| e.to_string())?;
        let (bucket_part, key_part) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if bucket_part.is_empty() {
            return Err(format!("missing bucket name in '{input}'"));
        }
        let bucket_glob = bucket_part.contains(GLOB_CHARS);
        let key = key_part.unwrap_or("");
        // EMRFS drops one trailing `*` from a prefix; `**` is glob syntax.
        let key_plain = match key.strip_suffix('*') {
            Some(k) if !k.ends_with('*') => k,
            _ => key,
        };
        if !bucket_glob && !key_plain.contains(GLOB_CHARS) {
            // Taken literally, as locations are: keys are bytes.
            let loc = Location::new(bucket_part, key_plain).map_err(|e: LocationError| e.to_string())?;
            return Ok(Prefix {
                source: loc.to_string(),
                bucket: bucket_part.to_owned(),
                key: key_plain.to_owned(),
                glob: None,
                automaton: None,
            });
        }
        Self::parse_glob(bucket_part, key_part.unwrap_or("**"))
    }

    fn parse_glob(bucket: &str, key: &str) -> Result<Prefix, String> {
        if let Some(c) =
            bucket.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || ".-*?[]{},!^".contains(*c)))
        {
            return Err(format!("invalid character '{}' in bucket pattern '{bucket}'", c.escape_debug()));
        }
        let full = format!("s3://{bucket}/{key}");
        let mut patterns = vec![full.clone()];
        // A trailing `/**` also matches the folder itself (`s3://b/exports`).
        if let Some(folder) = full.strip_suffix("/**") {
            if !folder.ends_with("//") && folder.len() > "s3://".len() + bucket.len() {
                patterns.push(folder.to_owned());
            }
        }
        let mut set = GlobSetBuilder::new();
        let mut regexes = Vec::new();
        for p in &patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("invalid glob '{full}': {}", e.kind()))?;
            regexes.push(glob.regex().to_owned());
            set.add(glob);
        }
        let set = set.build().map_err(|e| format!("invalid glob '{full}': {}", e.kind()))?;
        // Byte-oriented like globset's own matcher; a glob the DFA cannot take is still a valid rule, its
        // answers only hold for less (no automaton: the scope treats it as in doubt).
        let automaton = dense::Builder::new()
            .syntax(regex_automata::util::syntax::Config::new().utf8(false))
            .thompson(regex_automata::nfa::thompson::Config::new().utf8(false))
            // All matches, not leftmost-first: the DFA must not stop (go dead) after a first match.
            .configure(
                dense::Config::new()
                    .start_kind(regex_automata::dfa::StartKind::Anchored)
                    .match_kind(regex_automata::MatchKind::All),
            )
            .build_many(&regexes)
            .ok()
            .map(std::sync::Arc::new);
        Ok(Prefix { source: full, bucket: bucket.to_owned(), key: key.to_owned(), glob: Some(set), automaton })
    }

    /// The normalised form: `s3://bucket/key-prefix` (trailing `*` dropped, key re-encoded as in
    /// [`Location`]'s display) or, for a glob, `s3://bucket-pattern/key-pattern`.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The part of a glob's pattern before its first glob character (or escape): every location the
    /// glob matches begins with it. For a plain prefix, its whole normalised form.
    pub fn literal_prefix(&self) -> &str {
        match self.source.find(|c: char| GLOB_CHARS.contains(&c) || c == '\\') {
            Some(i) if self.is_glob() => &self.source[..i],
            _ => &self.source,
        }
    }

    /// For a glob: the length of the shortest prefix of `raw` (a location's `s3://bucket/key`) such that no
    /// string beginning with it matches the glob; `None` when every prefix of `raw` may still be followed
    /// by a match (or the glob has no automaton). Exact in one direction: a length returned is never too
    /// short. `Some(len)` for a plain prefix is not defined: use the key comparison instead.
    pub fn glob_excludes_from(&self, raw: &str) -> Option<usize> {
        let dfa = self.automaton.as_deref()?;
        let mut state = dfa.start_state_forward(&Input::new(raw).anchored(Anchored::Yes)).ok()?;
        for (i, &byte) in raw.as_bytes().iter().enumerate() {
            if dfa.is_dead_state(state) {
                return Some(i);
            }
            state = dfa.next_state(state, byte);
        }
        dfa.is_dead_state(state).then_some(raw.len())
    }

    /// Whether this glob has an automaton for [`Prefix::glob_excludes_from`].
    pub fn has_automaton(&self) -> bool {
        self.automaton.is_some()
    }

    /// Whether this is a glob (otherwise a plain S3 key prefix).
    pub fn is_glob(&self) -> bool {
        self.glob.is_some()
    }

    /// The bucket, or the bucket pattern of a glob.
    pub fn bucket_part(&self) -> &str {
        &self.bucket
    }

    /// The key prefix (literal) or the key pattern of a glob, without a leading `/`.
    pub fn key_part(&self) -> &str {
        &self.key
    }

    /// Whether `location` is matched. `raw_uri` must be `location.raw_uri()` (computed once per request).
    fn matches_raw(&self, location: &Location, raw_uri: &str) -> bool {
        match &self.glob {
            None => location.bucket() == self.bucket && location.key().starts_with(&self.key),
            Some(set) => set.is_match(raw_uri),
        }
    }

    /// Whether `location` is matched by this prefix.
    pub fn matches(&self, location: &Location) -> bool {
        self.matches_raw(location, &location.raw_uri())
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// One role-mapping rule. Built and validated by `config` (from `[[mapping]]`) or `emr` (from EMR formats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// 0-based position in the full rule list (`[[mapping]]` first, then `mappings_file`).
    pub index: usize,
    /// Shown in audit records, metrics and `explain`; default `mapping-<index>`.
    pub name: String,
    /// Allow (with the role to assume) or deny.
    pub effect: Effect,
    /// Any of these users (empty: any user).
    pub users: Vec<String>,
    /// Any of these groups (empty: any groups, including none).
    pub groups: Vec<String>,
    /// Any of these locations (empty: any location, or none).
    pub prefixes: Vec<Prefix>,
    /// Only requests for this access (`access = ["read"]`); `None`: read and write. A request that names
    /// no access is for both, so it matches only rules that cover both.
    pub access: Option<Access>,
    pub external_id: Option<String>,
    /// Overrides `sts.session_duration` for this rule.
    pub duration: Option<Duration>,
    /// Inline session policy, validated compact JSON.
    pub session_policy: Option<String>,
    /// Add a generated session policy limiting S3 to the matched prefix.
    pub scope_to_prefix: bool,
}

/// Why a rule did not match a request (first failing condition, in the order users, groups, access,
/// prefixes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The user is not in `users`.
    User,
    /// None of the user's groups is in `groups`.
    Group,
    /// The rule is for one access and the request is for the other, or for both.
    Access,
    /// The rule names prefixes, or asks S3 Access Grants, and the request has no location.
    NoLocation,
    /// The location matches none of `prefixes`.
    Prefix,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mismatch::User => "user not in users",
            Mismatch::Group => "no group in groups",
            Mismatch::Access => "the request's access is not the rule's",
            Mismatch::NoLocation => "the rule needs a location (prefixes or S3 Access Grants) and the request has none",
            Mismatch::Prefix => "location matches none of prefixes",
        })
    }
}

impl Rule {
    /// A rule with no conditions: it matches every request.
    pub fn is_unconditional(&self) -> bool {
        self.users.is_empty()
            && self.groups.is_empty()
            && self.prefixes.is_empty()
            && self.access.is_none()
            && !matches!(self.effect, Effect::AccessGrants(_))
    }

    /// Evaluates this rule alone: `Ok(matched prefix)` or the first condition that failed.
    pub fn evaluate<'r>(&'r self, req: &Request<'_>) -> Result<Option<&'r Prefix>, Mismatch> {
        let raw = req.location.map(Location::raw_uri);
        self.evaluate_raw(req, raw.as_deref())
    }

    /// Whether the user, group and access conditions hold: the ones that do not depend on the location.
    pub fn applies_to(&self, req: &Request<'_>) -> bool {
        self.unlocated_mismatch(req).is_none()
    }

    fn unlocated_mismatch(&self, req: &Request<'_>) -> Option<Mismatch> {
        if !self.users.is_empty() && !self.users.iter().any(|u| u == req.user) {
            return Some(Mismatch::User);
        }
        if !self.groups.is_empty() && !self.groups.iter().any(|g| req.groups.contains(g)) {
            return Some(Mismatch::Group);
        }
        if self.access.is_some() && self.access != req.access {
            return Some(Mismatch::Access);
        }
        None
    }

    fn evaluate_raw<'r>(&'r self, req: &Request<'_>, raw: Option<&str>) -> Result<Option<&'r Prefix>, Mismatch> {
        if let Some(mismatch) = self.unlocated_mismatch(req) {
            return Err(mismatch);
        }
        let (Some(loc), Some(raw)) = (req.location, raw) else {
            // S3 Access Grants answer for a location: a request without one cannot match such a rule.
            if self.prefixes.is_empty() && !matches!(self.effect, Effect::AccessGrants(_)) {
                return Ok(None);
            }
            return Err(Mismatch::NoLocation);
        };
        if self.prefixes.is_empty() {
            return Ok(None);
        }
        self.prefixes.iter().find(|p| p.matches_raw(loc, raw)).map(Some).ok_or(Mismatch::Prefix)
    }

    /// Checks the rule on its own — the one place rules are validated, whichever format they came
    /// from: a deny rule takes no session settings; no empty or space-padded user or group; a valid
    /// name; `scope_to_prefix` only with prefixes and without `session_policy`. Returns the offending
    /// field (`users[1]`) and a message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        validate_name(&self.name).map_err(|m| ("name".to_owned(), m))?;
        match self.effect {
            Effect::Deny => {
                let extra = [
                    ("external_id", self.external_id.is_some()),
                    ("duration", self.duration.is_some()),
                    ("session_policy", self.session_policy.is_some()),
                    ("scope_to_prefix", self.scope_to_prefix),
                ];
                if let Some((field, _)) = extra.iter().find(|(_, set)| *set) {
                    return Err((
                        (*field).to_owned(),
                        format!("a deny rule assumes no role, so {field} has no meaning here"),
                    ));
                }
            }
            Effect::AccessGrants(_) => {
                // The grant decides what the credentials reach; a session policy of ours would only
                // narrow the grantee's own session, not what S3 Access Grants vends.
                let extra =
                    [("session_policy", self.session_policy.is_some()), ("scope_to_prefix", self.scope_to_prefix)];
                if let Some((field, _)) = extra.iter().find(|(_, set)| *set) {
                    return Err((
                        (*field).to_owned(),
                        format!("an access-grants rule's credentials are what the grant allows, so {field} has no meaning here"),
                    ));
                }
            }
            Effect::Allow(_) => {}
        }
        for (field, list) in [("users", &self.users), ("groups", &self.groups)] {
            if let Some((i, v)) = list.iter().enumerate().find(|(_, v)| v.is_empty() || v.trim() != v.as_str()) {
                return Err((format!("{field}[{i}]"), format!("empty or space-padded entry '{v}' can never match")));
            }
        }
        if self.scope_to_prefix && self.prefixes.is_empty() {
            return Err(("scope_to_prefix".into(), "needs prefixes to scope the credentials to".into()));
        }
        // STS takes one inline session policy, and two policies cannot be merged into one that
        // allows only what both allow: the rule must say which one it means.
        if self.scope_to_prefix && self.session_policy.is_some() {
            return Err((
                "scope_to_prefix".into(),
                "cannot be combined with session_policy (STS takes one inline policy): put the prefix limits \
                 into session_policy, or drop it"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Rule names: 1–128 characters of letters, digits and `_ . : @ + = , / -`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err("must be 1 to 128 characters long".into());
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.:@+=,/-".contains(*c))) {
        return Err(format!("invalid character '{}' in rule name '{name}'", c.escape_debug()));
    }
    Ok(())
}

/// What is asked: who, in which groups, for which location (if any), for which access (`None`: read
/// and write).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub location: Option<&'a Location>,
    pub access: Option<Access>,
}

/// The outcome of [`RuleSet::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision<'r> {
    /// A rule matched; `matched_prefix` is the first of its prefixes that matched (None when it names none).
    Rule { rule: &'r Rule, matched_prefix: Option<&'r Prefix> },
    /// No rule matched: `fallback.mode` decides.
    Fallback,
}

/// An ordered, validated list of rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

/// A rule set that cannot be built: which rule, which field, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSetError {
    pub index: usize,
    /// The offending field, with its item where it is a list (`users[1]`).
    pub field: String,
    pub message: String,
}

impl RuleSet {
    /// Validates every rule ([`Rule::validate`]), unique names, `index` equal to position, and that no rule
    /// follows one that matches every request (it could never match).
    pub fn new(rules: Vec<Rule>) -> Result<RuleSet, RuleSetError> {
        let mut catch_all: Option<&Rule> = None;
        for (i, rule) in rules.iter().enumerate() {
            let err = |field: &str, message| Err(RuleSetError { index: i, field: field.to_owned(), message });
            if rule.index != i {
                return err("index", format!("rule at position {i} has index {}", rule.index));
            }
            if let Err((field, message)) = rule.validate() {
                return err(&field, message);
            }
            if let Some(prev) = rules[..i].iter().find(|r| r.name == rule.name) {
                return err("name", format!("duplicate rule name '{}' (also rule {})", rule.name, prev.index));
            }
            if let Some(c) = catch_all {
                return err(
                    "name",
                    format!(
                        "can never match: rule {} ('{}') names no condition and matches every request",
                        c.index, c.name
                    ),
                );
            }
            if rule.is_unconditional() {
                catch_all = Some(rule);
            }
        }
        Ok(RuleSet { rules })
    }

    /// The first matching rule, or [`Decision::Fallback`].
    pub fn decide<'r>(&'r self, req: &Request<'_>) -> Decision<'r> {
        let raw = req.location.map(Location::raw_uri);
        for rule in &self.rules {
            if let Ok(matched_prefix) = rule.evaluate_raw(req, raw.as_deref()) {
                return Decision::Rule { rule, matched_prefix };
            }
        }
        Decision::Fallback
    }

    /// The rules in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(prefix: &str, loc: &str) -> bool {
        Prefix::parse(prefix).unwrap().matches(&Location::parse(loc).unwrap())
    }

    #[test]
    fn role_arns() {
        let a = RoleArn::parse("arn:aws:iam::222222222222:role/team/partner-writer").unwrap();
        assert_eq!(a.account_id(), "222222222222");
        assert_eq!(a.partition(), "aws");
        assert_eq!(RoleArn::parse("arn:aws-cn:iam::123456789012:role/x").unwrap().partition(), "aws-cn");
        assert_eq!(a.name(), "partner-writer");
        assert_eq!(RoleArn::parse("arn:aws:iam::123456789012:role/analytics").unwrap().name(), "analytics");
        for bad in [
            "arn:aws:iam::12:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:sts::123456789012:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
            "role/x",
            "",
        ] {
            assert!(RoleArn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_prefixes() {
        assert!(m("s3://b1b/dir/", "s3a://b1b/dir/x"));
        assert!(!m("s3://b1b/dir/", "s3://b1b/dir"));
        assert!(m("s3://b1b/dir", "s3://b1b/dir2/x"));
        assert!(!m("s3://b1b", "s3://b1b2/x"));
        assert!(m("s3://b1b", "s3://b1b"));
        assert!(m("s3://b1b/dir*", "s3://b1b/dir2"));
        assert_eq!(Prefix::parse("S3A://b1b/dir/*").unwrap().as_str(), "s3://b1b/dir/");
        assert!(!Prefix::parse("s3://b1b/dir/*").unwrap().is_glob());
        assert!(Prefix::parse("s3://B1b/").is_err());
        assert!(Prefix::parse("http://b1b/").is_err());
    }

    #[test]
    fn globs() {
        assert!(m("s3://team-*/exports/**", "s3://team-a/exports"));
        assert!(m("s3://team-*/exports/**", "s3://team-a/exports/"));
        assert!(m("s3://team-*/exports/**", "s3://team-a/exports/x/y"));
        assert!(!m("s3://team-*/exports/**", "s3://team-a/exports2/x"));
        assert!(!m("s3://team-*/exports/**", "s3://team-a/b/exports/x"));
        assert!(m("s3://b1b/*/x", "s3://b1b/a/x"));
        assert!(!m("s3://b1b/*/x", "s3://b1b/a/b/x"));
        assert!(m("s3://team-*", "s3://team-a/k/l"));
        assert_eq!(Prefix::parse("s3://team-*").unwrap().as_str(), "s3://team-*/**");
        assert!(Prefix::parse("s3://b1b/[").is_err());
    }
}
