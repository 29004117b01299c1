"""The credentials for one S3 request: its target's locations through the scope cache, and the check that one
session serves them all (S3 signs a request with one set of credentials).

A ``Resolver`` is what the botocore hooks hold: the process's settings, read on first use, and its one
``ScopeCache``. ``default()`` is the process-wide one the plugin uses; tests build their own with a fake agent
and a clock.
"""

import threading
import time
from typing import Callable, Optional

from .agent import AgentClient, AgentError
from .cache import Entry, ScopeCache
from .settings import Settings, SettingsError, from_environment
from .targets import Target


class Resolver:
    def __init__(self, settings: Optional[Settings] = None, clock: Callable[[], float] = time.time,
                 convert=lambda c: c, load_settings: Callable[[], Settings] = from_environment):
        self._settings = settings
        self._load_settings = load_settings
        self._clock = clock
        self._convert = convert
        self._cache: Optional[ScopeCache] = None
        self._lock = threading.Lock()
        if settings is not None:
            self._cache = ScopeCache(AgentClient(settings), clock, convert)

    @property
    def cache(self) -> ScopeCache:
        """The scope cache, made on first use from the settings (a settings error is raised as an
        ``AgentError`` on every request until it is fixed: the hooks never sign with other credentials)."""
        cache = self._cache
        if cache is None:
            with self._lock:
                if self._cache is None:
                    try:
                        self._settings = self._load_settings()
                    except SettingsError as e:
                        raise AgentError(f"emrfs-role-agent client settings: {e}") from None
                    self._cache = ScopeCache(AgentClient(self._settings), self._clock, self._convert)
                cache = self._cache
        return cache

    def resolve(self, target: Target) -> Entry:
        """The entry whose credentials sign the whole request; raises ``AgentError``."""
        cache = self.cache
        entry = cache.get(target.location, target.access)
        if target.source is not None:
            source = cache.get(target.source, "read")
            if not source.credentials.same_session_as(entry.credentials):
                raise AgentError(
                    f"{target.operation} from {target.source} to {target.location} needs one set of credentials"
                    f" for both, but emrfs-role-agent maps them to different sessions"
                    f" ({source.credentials.describe()} to read the source, {entry.credentials.describe()} to"
                    f" write the destination); S3 signs a request with one set, so this copy cannot run. Copy by"
                    f" reading and writing instead, or map both prefixes to the same role.",
                    403, "CrossScopeCopy")
        for member in target.members:
            if entry.covers(member):
                continue  # under the scope that served the common prefix: decided the same way
            other = cache.get(member, target.access)
            if not other.credentials.same_session_as(entry.credentials):
                raise AgentError(
                    f"{target.operation} of {len(target.members)} objects under {target.location} needs one set of"
                    f" credentials for all, but emrfs-role-agent maps {member} to {other.credentials.describe()}"
                    f" and {target.location} to {entry.credentials.describe()}; delete them separately per"
                    f" prefix.", 403, "CrossScopeRequest")
        return entry

    def cached(self, target: Target) -> Optional[Entry]:
        """The entry for a plain request (no copy source, no bulk keys) when the cache answers it without the
        agent: fresh credentials, or a remembered deny (raised). None: ``resolve`` must ask."""
        if target.source is not None or target.members or self._cache is None:
            return None
        now = self._clock()
        entry = self._cache.lookup(target.location, target.access, now)
        if entry is None:
            return None
        if entry.denial is not None:
            raise entry.denial.copy()
        return entry if now < entry.refresh_at else None


_default: Optional[Resolver] = None
_default_lock = threading.Lock()


def default(convert) -> Resolver:
    """The process's resolver (settings from its environment and the client properties, the system clock)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Resolver(convert=convert)
    return _default
