"""The agent's answers kept by the ``Scope`` they hold for (SPEC §5), so that one answer serves every S3 request
under its scope; the same semantics as the JVM clients' ``ScopeCache``.

- Keyed by access: a ``Scope`` holds for the request's access only, so reads and writes are cached apart.
- Lookup: the longest cached scope that the location starts with (plain string comparison: locations and scopes
  are both literal ``s3://bucket/key``). An answer without ``Scope`` holds for exactly the location asked for.
- A miss asks the agent; concurrent misses for one (access, location) share that one request: the others wait
  on its future (no polling).
- Credentials are asked for again ``refresh_before_expiry`` ahead of expiry (at least a minute after they
  arrived). One caller refreshes, asking with the scope as the location; the others keep using the current
  ones meanwhile. If the refresh fails, the current ones are served until they expire. If the new answer no
  longer covers the location (a rule was narrowed: the scope now has no ``Scope``, or a shorter one elsewhere),
  the location itself is asked for.
- A deny for a scope (``403 AccessDenied`` carrying ``Scope``) is remembered for ``deny_cache`` seconds, so a
  job hammering a denied prefix does not hammer the agent.

``clock`` returns seconds since the epoch (``time.time`` unless a test gives its own). Thread-safe: lookups take
no lock (each (access, bucket) slot is an immutable tuple, replaced whole under the lock).
"""

import logging
import threading
from concurrent.futures import Future
from typing import Callable, Dict, Optional, Tuple

from .agent import AgentClient, AgentCredentials, AgentError

log = logging.getLogger(__name__)

#: Credentials that arrive inside the refresh window are kept at least this long (seconds).
MIN_CACHE_TIME = 60.0


class Entry:
    """A cached answer: credentials (and ``value``, what the SDK wants made of them), or a deny."""

    __slots__ = ("scope", "exact", "credentials", "value", "denial", "refresh_at", "expires_at")

    def __init__(self, scope, exact, credentials, value, denial, refresh_at, expires_at):
        self.scope = scope
        self.exact = exact
        self.credentials: Optional[AgentCredentials] = credentials
        self.value = value
        self.denial: Optional[AgentError] = denial
        self.refresh_at = refresh_at
        self.expires_at = expires_at

    def covers(self, location: str) -> bool:
        return location == self.scope if self.exact else location.startswith(self.scope)

    def __repr__(self):
        what = "denied" if self.denial is not None else repr(self.credentials)
        return f"Entry(scope={self.scope!r}{', exact' if self.exact else ''}, {what})"


def refresh_at(now: float, expiration: float, refresh_before: float) -> float:
    """When to ask again: ``refresh_before`` ahead of expiry, but not sooner than ``MIN_CACHE_TIME``."""
    ahead = expiration - refresh_before
    earliest = now + MIN_CACHE_TIME
    if ahead > earliest:
        return ahead
    return min(earliest, expiration)


def bucket_of(location: str) -> str:
    """The bucket of ``s3://bucket/...``; "" for the no-location key."""
    end = location.find("/", 5)
    return location[5:end] if end >= 0 else location[5:]


class ScopeCache:
    """Answers for this process (the agent decides for the caller's OS user, so one cache serves every client
    in it). ``convert`` makes the SDK's credentials object once per answer."""

    def __init__(self, client: AgentClient, clock: Callable[[], float],
                 convert: Callable[[AgentCredentials], object] = lambda c: c):
        self._client = client
        self._clock = clock
        self._convert = convert
        s = client.settings
        self._refresh_before = s.refresh_before_expiry
        self._deny_cache = s.deny_cache
        self._max_scopes = s.max_scopes
        self._slots: Dict[Tuple[str, str], Tuple[Entry, ...]] = {}
        self._in_flight: Dict[Tuple[str, str], Future] = {}
        self._lock = threading.Lock()

    def get(self, location: str, access: str) -> Entry:
        """The entry whose credentials serve ``location`` (literal ``s3://bucket/key``; "" for a request without
        a bucket) for ``access``; raises ``AgentError`` when the agent cannot be reached or refuses."""
        now = self._clock()
        cached = self.lookup(location, access, now)
        if cached is None:
            return self._fetch(location, access, None, now)
        if cached.denial is not None:
            raise cached.denial.copy()
        if now < cached.refresh_at:
            return cached
        fresh = self._fetch(cached.scope, access, cached, now)
        if fresh is cached or fresh.covers(location):
            return fresh
        # The scope's new answer does not reach this location any more: ask for the location itself.
        log.debug("the refreshed answer for %s (%s) no longer covers %s; asking for it", cached.scope, access,
                  location)
        return self._fetch(location, access, None, now)

    def lookup(self, location: str, access: str, now: float) -> Optional[Entry]:
        """The longest unexpired cached entry covering ``location`` for ``access``, or None. No agent call."""
        entries = self._slots.get((access, bucket_of(location)))
        if entries:
            for e in entries:  # longest scope first: the first match is the longest
                if now < e.expires_at and e.covers(location):
                    return e
        return None

    def size(self) -> int:
        """How many scopes are cached (for tests)."""
        return sum(len(v) for v in self._slots.values())

    def _fetch(self, location: str, access: str, current: Optional[Entry], now: float) -> Entry:
        """Asks the agent for ``location``, or waits for the request already asking; ``current`` (when
        refreshing) is served to everyone but the one caller that asks, and if the asking fails."""
        key = (access, location)
        mine = Future()
        with self._lock:
            running = self._in_flight.get(key)
            if running is None:
                self._in_flight[key] = mine
        if running is not None:
            if current is not None:
                return current
            try:
                return running.result()
            except AgentError as e:
                raise e.copy() from None
        try:
            fresh = self._load(location, access, current, now)
        except AgentError as e:
            if e.is_denial:
                until = now + self._deny_cache
                self._store(Entry(e.scope, False, None, None, e, until, until), access, current, now)
            mine.set_exception(e)
            if current is not None and not e.is_denial and now < current.expires_at:
                log.warning("refreshing %s credentials for %s failed; serving the cached %s until they expire: %s",
                            access, current.scope, current.credentials.describe(), e.message)
                return current
            raise
        except BaseException as e:
            mine.set_exception(e)
            raise
        else:
            mine.set_result(fresh)
            return fresh
        finally:
            with self._lock:
                if self._in_flight.get(key) is mine:
                    del self._in_flight[key]

    def _load(self, location: str, access: str, current: Optional[Entry], now: float) -> Entry:
        answer = self._client.fetch(location, access, now)
        creds = answer.credentials
        scope = answer.scope if answer.scope is not None else location
        entry = Entry(scope, answer.scope is None, creds, self._convert(creds), None,
                      refresh_at(now, creds.expiration, self._refresh_before), creds.expiration)
        log.debug("%s credentials %s for %s, scope %s%s", access, creds.describe(), location or "(no location)",
                  scope or "(none)", " (exactly)" if entry.exact else "")
        self._store(entry, access, current, now)
        return entry

    def _store(self, entry: Entry, access: str, replaces: Optional[Entry], now: float) -> None:
        """Adds ``entry`` to its (access, bucket) slot, dropping expired entries, the one it ``replaces`` and
        any other for the same scope; when the slot is full, the entry closest to expiry goes."""
        slot = (access, bucket_of(entry.scope))
        with self._lock:
            kept = [e for e in self._slots.get(slot, ())
                    if now < e.expires_at and e is not replaces and e.scope != entry.scope]
            while len(kept) >= self._max_scopes:
                kept.remove(min(kept, key=lambda e: e.expires_at))
            kept.append(entry)
            kept.sort(key=lambda e: len(e.scope), reverse=True)
            self._slots[slot] = tuple(kept)
