//! Who a uid or a user name is: the passwd name and OS groups (primary first, then supplementary,
//! via the system's passwd/group databases).
//!
//! [`lookup_uid`] and [`lookup_name`] are the one way the agent turns a uid or a name into an
//! [`Identity`]; `serve` asks them through [`Directory`], which caches each answer for a TTL
//! against a caller-supplied `now`, and `explain` asks them directly. A failed lookup (e.g. an
//! unreachable directory service) is an error, not an unknown user, and is not cached.

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::hash::Hash;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::unistd::{getgrouplist, Gid, Group, Uid, User};

/// A caller as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The uid, when known (always for [`lookup_uid`]; from passwd for [`lookup_name`]).
    pub uid: Option<u32>,
    /// The passwd name, or `uid:<n>` when the uid has no passwd entry.
    pub user: String,
    /// OS group names: the primary group first, then supplementary groups; a gid without a group
    /// entry appears as its number.
    pub groups: Vec<String>,
}

/// Cached user and group lookups.
///
/// Every answer is kept for `ttl` (the config's `identity.group_cache_ttl`) measured against the
/// `now` each call passes in; there are no internal clock reads. At most `max_entries` uids and
/// as many names are kept (default [`Directory::DEFAULT_MAX_ENTRIES`]); when full, expired
/// entries go first, then the oldest. The lock is never held during an OS lookup.
pub struct Directory {
    ttl: Duration,
    max_entries: usize,
    uids: Mutex<HashMap<u32, Cached<Identity>>>,
    names: Mutex<HashMap<String, Cached<Identity>>>,
    os_lookups: AtomicU64,
}

struct Cached<T> {
    value: T,
    fetched: Instant,
}

impl Directory {
    /// Default bound on cached uids (and, separately, on cached names).
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

    pub fn new(ttl: Duration) -> Directory {
        Directory::with_max_entries(ttl, Directory::DEFAULT_MAX_ENTRIES)
    }

    /// Like [`Directory::new`] with a different bound (at least 1).
    pub fn with_max_entries(ttl: Duration, max_entries: usize) -> Directory {
        Directory {
            ttl,
            max_entries: max_entries.max(1),
            uids: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            os_lookups: AtomicU64::new(0),
        }
    }

    /// [`lookup_uid`], cached.
    pub fn by_uid(&self, uid: u32, now: Instant) -> io::Result<Identity> {
        if let Some(hit) = self.fresh(&self.uids, &uid, now) {
            return Ok(hit);
        }
        self.os_lookups.fetch_add(1, Ordering::Relaxed);
        let identity = lookup_uid(uid)?;
        self.store(&self.uids, uid, identity.clone(), now);
        Ok(identity)
    }

    /// [`lookup_name`], cached (for `user=` assertions by trusted proxies).
    pub fn by_name(&self, user: &str, now: Instant) -> io::Result<Identity> {
        if let Some(hit) = self.fresh(&self.names, user, now) {
            return Ok(hit);
        }
        self.os_lookups.fetch_add(1, Ordering::Relaxed);
        let identity = lookup_name(user)?;
        self.store(&self.names, user.to_string(), identity.clone(), now);
        Ok(identity)
    }

    /// How many times the OS databases were consulted (cache misses), for metrics and tests.
    pub fn os_lookups(&self) -> u64 {
        self.os_lookups.load(Ordering::Relaxed)
    }

    fn fresh<K, Q, T>(&self, map: &Mutex<HashMap<K, Cached<T>>>, key: &Q, now: Instant) -> Option<T>
    where
        K: Eq + Hash + std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
        T: Clone,
    {
        let map = map.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.get(key)?;
        (now.saturating_duration_since(entry.fetched) < self.ttl).then(|| entry.value.clone())
    }

    fn store<K: Eq + Hash + Clone, T>(&self, map: &Mutex<HashMap<K, Cached<T>>>, key: K, value: T, now: Instant) {
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.max_entries && !map.contains_key(&key) {
            let ttl = self.ttl;
            map.retain(|_, entry| now.saturating_duration_since(entry.fetched) < ttl);
            while map.len() >= self.max_entries {
                let Some(oldest) = map.iter().min_by_key(|(_, entry)| entry.fetched).map(|(k, _)| k.clone()) else {
                    break;
                };
                map.remove(&oldest);
            }
        }
        map.insert(key, Cached { value, fetched: now });
    }
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .field("os_lookups", &self.os_lookups())
            .finish_non_exhaustive()
    }
}

/// The user and groups of a uid: its passwd name and OS groups, or user `uid:<n>` with no groups
/// when passwd has no entry for it.
pub fn lookup_uid(uid: u32) -> io::Result<Identity> {
    match User::from_uid(Uid::from_raw(uid)).map_err(|e| nss_error(e, &format!("getpwuid({uid})")))? {
        Some(user) => identity_of(&user),
        None => Ok(Identity { uid: Some(uid), user: format!("uid:{uid}"), groups: Vec::new() }),
    }
}

/// The user and groups of a user name: its OS groups, or none (and no uid) when the OS does not
/// know the user.
pub fn lookup_name(name: &str) -> io::Result<Identity> {
    let unknown = || Identity { uid: None, user: name.to_owned(), groups: Vec::new() };
    if name.is_empty() || name.contains('\0') {
        return Ok(unknown());
    }
    match User::from_name(name).map_err(|e| nss_error(e, &format!("getpwnam({name:?})")))? {
        Some(user) => identity_of(&user),
        None => Ok(unknown()),
    }
}

fn identity_of(user: &User) -> io::Result<Identity> {
    let c_name = CString::new(user.name.as_str())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("user name {:?} contains NUL", user.name)))?;
    let gids = getgrouplist(&c_name, user.gid).map_err(|e| nss_error(e, &format!("getgrouplist({:?})", user.name)))?;
    let mut seen: Vec<Gid> = Vec::with_capacity(gids.len() + 1);
    let mut groups = Vec::with_capacity(gids.len() + 1);
    for gid in std::iter::once(user.gid).chain(gids) {
        if seen.contains(&gid) {
            continue;
        }
        seen.push(gid);
        let name = Group::from_gid(gid)
            .map_err(|e| nss_error(e, &format!("getgrgid({gid})")))?
            .map(|group| group.name)
            .unwrap_or_else(|| gid.to_string());
        groups.push(name);
    }
    Ok(Identity { uid: Some(user.uid.as_raw()), user: user.name.clone(), groups })
}

fn nss_error(error: nix::Error, call: &str) -> io::Error {
    let error = io::Error::from(error);
    io::Error::new(error.kind(), format!("{call}: {error}"))
}
