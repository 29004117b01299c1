"""How to reach the agent and how long to keep its answers, read once per process.

Each setting comes from the environment, else from the client properties file the bootstrap writes, else its
default (properties key, environment variable, [default]):

- ``endpoint`` (EMRFS_ROLE_AGENT_ENDPOINT) [http://127.0.0.1:9944]
- ``token-file`` (EMRFS_ROLE_AGENT_TOKEN_FILE) [/etc/emrfs-role-agent/token]: its content is sent as
  ``Authorization``, re-read on every agent request (a rotated token is picked up); empty sends none
- ``connect-timeout`` (EMRFS_ROLE_AGENT_CONNECT_TIMEOUT) [2s], ``read-timeout`` (EMRFS_ROLE_AGENT_READ_TIMEOUT) [15s]
- ``refresh-before-expiry`` (EMRFS_ROLE_AGENT_REFRESH_BEFORE) [15m]: ask again when credentials expire sooner
- ``deny-cache`` (EMRFS_ROLE_AGENT_DENY_CACHE) [30s]: how long a deny for a scope is remembered
- ``max-scopes`` (EMRFS_ROLE_AGENT_MAX_SCOPES) [1000]: scopes kept per bucket and access

Whose credentials: ``EMRFS_ROLE_AGENT_USER``, else ``SPARK_USER`` (Spark sets it to the application's user in
its driver and executors, whose Python workers inherit it), is sent as ``user=``; without either, none (the
process's OS user, from the kernel). In YARN containers on a cluster without Kerberos every process runs as
``yarn``, which the agent's ``identity.trusted_proxy_users`` must then list for the named user to count; a
process whose OS user may not act for that user is refused (403 ``ImpersonationDenied``), never served as
itself.

The properties file is /etc/emrfs-role-agent/client.properties, or the file EMRFS_ROLE_AGENT_CLIENT_PROPERTIES
names; a missing file is no error (the defaults hold). Durations are seconds, with an optional unit suffix
``ms``, ``s``, ``m`` or ``h`` (``15m``), as the Java clients read them. ``parse_properties`` and
``Settings.load`` take their inputs as arguments: only ``read_properties`` touches the disk.
"""

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional

DEFAULT_ENDPOINT = "http://127.0.0.1:9944"
DEFAULT_TOKEN_FILE = "/etc/emrfs-role-agent/token"
DEFAULT_PROPERTIES = "/etc/emrfs-role-agent/client.properties"
PROPERTIES_ENV = "EMRFS_ROLE_AGENT_CLIENT_PROPERTIES"

# (field, environment variable, properties key)
_KEYS = (
    ("endpoint", "EMRFS_ROLE_AGENT_ENDPOINT", "endpoint"),
    ("token_file", "EMRFS_ROLE_AGENT_TOKEN_FILE", "token-file"),
    ("connect_timeout", "EMRFS_ROLE_AGENT_CONNECT_TIMEOUT", "connect-timeout"),
    ("read_timeout", "EMRFS_ROLE_AGENT_READ_TIMEOUT", "read-timeout"),
    ("refresh_before_expiry", "EMRFS_ROLE_AGENT_REFRESH_BEFORE", "refresh-before-expiry"),
    ("deny_cache", "EMRFS_ROLE_AGENT_DENY_CACHE", "deny-cache"),
    ("max_scopes", "EMRFS_ROLE_AGENT_MAX_SCOPES", "max-scopes"),
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class SettingsError(ValueError):
    """A setting that cannot be used; the message names it and where it came from."""


@dataclass(frozen=True)
class Settings:
    endpoint: str = DEFAULT_ENDPOINT
    token_file: Optional[str] = DEFAULT_TOKEN_FILE
    connect_timeout: float = 2.0
    read_timeout: float = 15.0
    refresh_before_expiry: float = 900.0
    deny_cache: float = 30.0
    max_scopes: int = 1000
    user: Optional[str] = None
    source: str = "defaults"

    @classmethod
    def load(cls, environ: Mapping[str, str], properties: Mapping[str, str], properties_path: str = "") -> "Settings":
        """The settings from ``environ`` over ``properties`` (read from ``properties_path``) over the defaults."""
        values = {}
        origins = {}
        for field, env, key in _KEYS:
            if environ.get(env) is not None:
                values[field], origins[field] = environ[env], env
            elif properties.get(key) is not None:
                values[field], origins[field] = properties[key], f"{key} in {properties_path}"
        kw = {}
        for field, raw in values.items():
            where = origins[field]
            raw = raw.strip()
            if field == "endpoint":
                endpoint = raw.rstrip("/")
                if not endpoint.startswith(("http://", "https://")):
                    raise SettingsError(f"{where} must be an http:// URL, got {raw!r}")
                kw[field] = endpoint
            elif field == "token_file":
                kw[field] = raw or None
            elif field == "max_scopes":
                if not raw.isdigit() or int(raw) < 1:
                    raise SettingsError(f"{where} must be a whole number of at least 1, got {raw!r}")
                kw[field] = int(raw)
            else:
                kw[field] = _seconds(raw, where)
        for env in ("EMRFS_ROLE_AGENT_USER", "SPARK_USER"):
            if (environ.get(env) or "").strip():
                kw["user"], origins["user"] = environ[env].strip(), env
                break
        sources = sorted(set(origins.values()))
        return cls(**kw, source=", ".join(sources) if sources else "defaults")

    def __str__(self):
        user = f", user={self.user}" if self.user else ""
        return f"endpoint={self.endpoint}, token-file={self.token_file}{user} (from {self.source})"


def _seconds(raw: str, where: str) -> float:
    m = _DURATION.match(raw)
    if not m:
        raise SettingsError(f"{where} must be a duration such as 30, 30s, 15m or 1h, got {raw!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_properties(text: str) -> dict:
    """The ``key=value`` lines of a Java properties file (``key: value`` and ``key value`` too; ``#`` and ``!``
    start comments). Enough for what the bootstrap writes: no line continuations or escapes."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"^([^=:\s]+)\s*[=:\s]\s*(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
        else:
            out[line] = ""
    return out


def read_properties(path: str) -> dict:
    """The properties in ``path``; empty when there is no such file."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse_properties(f.read())
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise SettingsError(f"{path} cannot be read: {e}") from None


def from_environment(environ: Optional[Mapping[str, str]] = None) -> Settings:
    """The process's settings: its environment, then the client properties file, then the defaults."""
    environ = os.environ if environ is None else environ
    path = environ.get(PROPERTIES_ENV) or DEFAULT_PROPERTIES
    return Settings.load(environ, read_properties(path), path)
