//! How far an answer holds (pure): the shortest prefix of the requested location under which every
//! location is decided the same way — same rule, same matched prefix, so the same role, session and
//! session policy — for the same user and groups (SPEC §5 `Scope`).
//!
//! The rules that can change the decision under a prefix `P` of the location `s3://b/k` are the ones
//! whose user and group conditions hold: every such rule before the deciding one must match nothing under
//! `P`, the deciding rule's earlier prefixes must match nothing under `P`, and its matched prefix must
//! match everything under `P` (with no deciding rule, every such rule must match nothing). Each condition
//! only gets easier as `P` grows, so each gives a shortest length and the scope is the longest of them.
//!
//! - A plain prefix `s3://b/kp` matches nothing under `s3://b/q` when neither of `q`, `kp` begins with
//!   the other, and everything when `q` begins with `kp`: exact.
//! - A glob matches nothing under `P` when its automaton (the glob's patterns as one DFA) is dead after
//!   reading `P`: no string beginning with `P` can match (`s3://lake/*/secret/**` matches nothing under
//!   `s3://lake/teamA/x`). Without an automaton it is judged by its literal part (the pattern before its
//!   first glob character): it matches nothing under `P` when neither of `P`, the literal begins with the other. It matches everything under
//!   `P` only in the form `<literal>/**` with `P` inside `<literal>/`. Otherwise the glob is in doubt.
//!
//! When no prefix of the location qualifies (a deeper rule's prefix extends the location itself, or a
//! glob in doubt), there is no scope: the answer holds for exactly the location asked for.

use std::fmt;

use crate::grants::Covered;
use crate::location::Location;
use crate::rules::{Decision, Prefix, Request, RuleSet};

/// A prefix of a location: `s3://bucket/` followed by the first bytes of its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope(Location);

impl Scope {
    /// Whether `location` lies under this scope.
    pub fn covers(&self, location: &Location) -> bool {
        location.bucket() == self.0.bucket() && location.key().starts_with(self.0.key())
    }

    pub fn bucket(&self) -> &str {
        self.0.bucket()
    }

    /// The key prefix, as literal as the location it was cut from.
    pub fn key_prefix(&self) -> &str {
        self.0.key()
    }
}

/// The normalised form, as locations display (`s3://bucket/key-prefix`): a location's normalised form
/// begins with it exactly when the location lies under the scope.
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `scope` where it also holds for `covered`, the part of `location`'s bucket S3 Access Grants' matched
/// grant covers: the longer of the two, or none (exactly the location) when the grant names the object.
pub fn narrowed(scope: Option<Scope>, location: &Location, covered: Option<Covered<'_>>) -> Option<Scope> {
    match (scope, covered) {
        (Some(scope), Some(Covered::Prefix(prefix))) if prefix.len() > scope.key_prefix().len() => {
            Some(Scope(Location::new(location.bucket(), prefix).expect("a prefix of a valid key")))
        }
        (Some(scope), Some(Covered::Prefix(_))) => Some(scope),
        _ => None,
    }
}

/// The scope of `decision`, made by `rules` for `req`; `None` when the request names no location or no
/// prefix of it qualifies.
pub fn scope_of(rules: &RuleSet, req: &Request<'_>, decision: &Decision<'_>) -> Option<Scope> {
    let location = req.location?;
    let key = location.key();
    let raw = location.raw_uri();
    // Length of "s3://bucket/": where the key starts in `raw`.
    let base = raw.len() - key.len();
    let (decided_at, matched) = match decision {
        Decision::Rule { rule, matched_prefix } => (rule.index, *matched_prefix),
        Decision::Fallback => (rules.rules().len(), None),
    };
    let mut shortest = 0;
    for rule in rules.rules().iter().filter(|r| r.applies_to(req)) {
        if rule.index > decided_at {
            break;
        }
        for prefix in &rule.prefixes {
            if matched.is_some_and(|m| std::ptr::eq(m, prefix)) {
                shortest = shortest.max(matches_everything_from(prefix, &raw, base)?);
                // Later prefixes of the deciding rule cannot change which rule decides.
                break;
            }
            shortest = shortest.max(matches_nothing_from(prefix, location, &raw, base)?);
        }
    }
    let mut end = shortest;
    while !key.is_char_boundary(end) {
        end += 1;
    }
    (end <= key.len()).then(|| Scope(Location::new(location.bucket(), &key[..end]).expect("a prefix of a valid key")))
}

/// The shortest key prefix length from which `prefix` matches no location under it; `None` if none does.
fn matches_nothing_from(prefix: &Prefix, location: &Location, raw: &str, base: usize) -> Option<usize> {
    let key = location.key();
    if !prefix.is_glob() {
        if prefix.bucket_part() != location.bucket() {
            return Some(0);
        }
        // A prefix of the key up to the common part is itself a prefix of the rule's: too short.
        let common = common_prefix_len(key, prefix.key_part());
        return (common < key.len() && common < prefix.key_part().len()).then_some(common + 1);
    }
    if prefix.has_automaton() {
        // Exact: the first prefix of the location after which the glob can match nothing.
        return prefix.glob_excludes_from(raw).map(|end| end.saturating_sub(base));
    }
    let literal = prefix.literal_prefix();
    let common = common_prefix_len(raw, literal);
    if common == literal.len() || common == raw.len() {
        // The location begins with the literal part (the glob may match anything under it), or the
        // literal part extends the whole location.
        return None;
    }
    Some((common + 1).saturating_sub(base))
}

/// The shortest key prefix length from which `prefix` (which matched the location) matches every
/// location under it; `None` if none does (a glob in doubt).
fn matches_everything_from(prefix: &Prefix, raw: &str, base: usize) -> Option<usize> {
    if !prefix.is_glob() {
        return Some(prefix.key_part().len());
    }
    // `<literal>/**`: everything under `<literal>/`.
    let folder = prefix.as_str().strip_suffix("**")?;
    let exact = prefix.literal_prefix() == folder && folder.ends_with('/') && raw.starts_with(folder);
    exact.then(|| folder.len().saturating_sub(base))
}

fn common_prefix_len(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Effect, RoleArn, Rule};

    fn allow() -> Effect {
        Effect::Allow(RoleArn::parse("arn:aws:iam::111111111111:role/r").unwrap())
    }

    fn rule(index: usize, effect: Effect, users: &[&str], prefixes: &[&str]) -> Rule {
        Rule {
            index,
            name: format!("r{index}"),
            effect,
            users: users.iter().map(|u| u.to_string()).collect(),
            groups: vec![],
            prefixes: prefixes.iter().map(|p| Prefix::parse(p).unwrap()).collect(),
            access: None,
            external_id: None,
            duration: None,
            session_policy: None,
            scope_to_prefix: false,
        }
    }

    fn scope(rules: &RuleSet, user: &str, location: &str) -> Option<String> {
        let location = Location::parse(location).unwrap();
        let req = Request { user, groups: &[], location: Some(&location), access: None };
        scope_of(rules, &req, &rules.decide(&req)).map(|s| s.to_string())
    }

    #[test]
    fn a_scope_stops_short_of_a_deeper_rule() {
        let rules = RuleSet::new(vec![
            rule(0, Effect::Deny, &[], &["s3://bkt/exports/secret/"]),
            rule(1, allow(), &[], &["s3://bkt/exports/"]),
        ])
        .unwrap();
        assert_eq!(scope(&rules, "u", "s3://bkt/exports/2026/a").as_deref(), Some("s3://bkt/exports/2"));
        assert_eq!(scope(&rules, "u", "s3a://bkt/exports/secret/x").as_deref(), Some("s3://bkt/exports/secret/"));
        // Under the allow rule's prefix but a prefix of the deny's: only the location itself.
        assert_eq!(scope(&rules, "u", "s3://bkt/exports/secre"), None);
        // Fallback: everything outside both rules' prefixes.
        assert_eq!(scope(&rules, "u", "s3://bkt/imports/x").as_deref(), Some("s3://bkt/i"));
        assert_eq!(scope(&rules, "u", "s3://other-bkt/x").as_deref(), Some("s3://other-bkt/"));
    }

    #[test]
    fn rules_for_other_users_do_not_shorten_a_scope() {
        let rules = RuleSet::new(vec![
            rule(0, Effect::Deny, &["eve"], &["s3://bkt/team/eve/"]),
            rule(1, allow(), &[], &["s3://bkt/team/"]),
        ])
        .unwrap();
        assert_eq!(scope(&rules, "ann", "s3://bkt/team/eve/x").as_deref(), Some("s3://bkt/team/"));
        assert_eq!(scope(&rules, "eve", "s3://bkt/team/ann/x").as_deref(), Some("s3://bkt/team/a"));
    }

    #[test]
    fn globs_are_judged_by_their_literal_part() {
        let rules = RuleSet::new(vec![
            rule(0, Effect::Deny, &[], &["s3://bkt/landing/*/*.csv"]),
            rule(1, allow(), &[], &["s3://bkt/curated/**"]),
        ])
        .unwrap();
        // The deny glob is in doubt for everything under its literal part.
        assert_eq!(scope(&rules, "u", "s3://bkt/landing/x/a.csv"), None);
        assert_eq!(scope(&rules, "u", "s3://bkt/landing/x/a.json"), None);
        // `<literal>/**` holds for everything under the literal.
        assert_eq!(scope(&rules, "u", "s3://bkt/curated/gold/a").as_deref(), Some("s3://bkt/curated/"));
        assert_eq!(scope(&rules, "u", "s3://bkt/raw/a").as_deref(), Some("s3://bkt/r"));
    }

    #[test]
    fn a_glob_matches_nothing_past_the_point_its_automaton_dies() {
        let rules = RuleSet::new(vec![
            rule(0, Effect::Deny, &[], &["s3://lake/*/secret/**"]),
            rule(1, allow(), &[], &["s3://lake/teamA/"]),
            rule(2, Effect::Deny, &[], &["s3://{lake,pond}/**/*.tmp"]),
        ])
        .unwrap();
        // Past `teamA/x` the second segment is not `secret`: the deny can match nothing there.
        assert_eq!(scope(&rules, "u", "s3://lake/teamA/x/part-0").as_deref(), Some("s3://lake/teamA/x"));
        // Under `teamA/s` it still could (`teamA/secret/...`): the scope goes on to where it cannot.
        assert_eq!(scope(&rules, "u", "s3://lake/teamA/sales/p").as_deref(), Some("s3://lake/teamA/sa"));
        // A location the glob can still reach by appending (`a.json` + `.tmp`) has no scope at all.
        assert_eq!(scope(&rules, "u", "s3://lake/other/a.json"), None);
        assert_eq!(scope(&rules, "u", "s3://lake/x%2Fy/secret/f"), None);
    }

    #[test]
    fn no_location_no_scope() {
        let rules = RuleSet::new(vec![rule(0, allow(), &["u"], &[])]).unwrap();
        let req = Request { user: "u", groups: &[], location: None, access: None };
        assert_eq!(scope_of(&rules, &req, &rules.decide(&req)), None);
        assert_eq!(scope(&rules, "u", "s3://bkt/any/key").as_deref(), Some("s3://bkt/"));
    }
}
