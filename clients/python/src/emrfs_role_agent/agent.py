"""One request to the agent (SPEC §5) and its answer; no caching here (see ``cache``).

``GET <endpoint>/v1/credentials?location=<s3 uri>&access=read|write`` with the token file's content as
``Authorization``. The location is the literal ``s3://bucket/<key as S3 has it>``, percent-encoded exactly once
(``quote(location, safe="")``: ``+``, ``%``, ``/``, spaces and non-ASCII bytes all encoded), which the agent
decodes once; ``Scope`` comes back in the same literal form, so a cache compares plain strings.

Nothing here ever puts a secret into a message, a log record or a repr: an answer's body is parsed and dropped,
never quoted, and ``AgentCredentials`` shows its key id and role only.
"""

import http.client
import json
import logging
import socket
import urllib.parse
from datetime import datetime, timezone
from typing import Optional

from .settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


class AgentCredentials:
    """Credentials the agent handed out. ``repr`` and ``str`` name the key id and role, never the secret key
    or the session token."""

    __slots__ = ("access_key_id", "secret_access_key", "token", "expiration", "role_arn")

    def __init__(self, access_key_id, secret_access_key, token, expiration, role_arn=None):
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.token = token
        self.expiration = expiration  # seconds since the epoch
        self.role_arn = role_arn

    def same_session_as(self, other: "AgentCredentials") -> bool:
        """A session's keys never change while it lives: the same key id is the same session."""
        return self.access_key_id == other.access_key_id

    def describe(self) -> str:
        """What a log line or a message may show (the key id names the session in CloudTrail)."""
        return f"{self.access_key_id} ({self.role_arn or 'no role: the agent fallback'})"

    def __repr__(self):
        expires = datetime.fromtimestamp(self.expiration, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"AgentCredentials(access_key_id={self.access_key_id!r}, role_arn={self.role_arn!r}, expires={expires})"

    __str__ = describe


class AgentError(Exception):
    """The agent could not be asked, or refused. The message names the endpoint, the location and access and,
    for a refusal, the HTTP status and the agent's code and message; never a secret. ``status`` is 0 when no
    answer came; ``scope`` is the ``Scope`` of a refusal that holds for a whole prefix (a deny rule)."""

    def __init__(self, message, status=0, code=None, scope=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.scope = scope

    @property
    def is_denial(self) -> bool:
        """A decision (403 AccessDenied from a rule, with its scope): may be remembered for that scope."""
        return self.status == 403 and self.code == "AccessDenied" and self.scope is not None

    @property
    def is_refusal(self) -> bool:
        """The agent answered no (403): the job must fail, not retry."""
        return self.status == 403

    def copy(self) -> "AgentError":
        """A new exception per caller, so that each gets its own traceback."""
        return AgentError(self.message, self.status, self.code, self.scope)


class Answer:
    """A 200 answer: the credentials and how far they hold (``scope``; None: exactly the location asked)."""

    __slots__ = ("credentials", "scope")

    def __init__(self, credentials: AgentCredentials, scope: Optional[str]):
        self.credentials = credentials
        self.scope = scope


def normalise(uri) -> Optional[str]:
    """A location or scope in the agent's form ``s3://bucket/...`` (``s3a``/``s3n`` are ``s3``); None when
    ``uri`` is not an S3 URI with a bucket."""
    if not isinstance(uri, str):
        return None
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in ("s3", "s3a", "s3n"):
        return None
    bucket, slash, _ = rest.partition("/")
    if not bucket:
        return None
    return "s3://" + (rest if slash else bucket + "/")


def parse_expiration(text: str) -> float:
    """``2026-11-22T10:00:00Z`` (SPEC §5; fractions and offsets tolerated) as seconds since the epoch."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


class AgentClient:
    """Asks the agent at ``settings.endpoint``; one connection per request (the agent is on loopback)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        url = urllib.parse.urlsplit(settings.endpoint)
        self._https = url.scheme == "https"
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or (443 if self._https else 80)
        self._base = url.path.rstrip("/")

    def fetch(self, location: Optional[str], access: str, now: float) -> Answer:
        """Credentials for ``location`` (literal ``s3://bucket/key``; None or "" asks without a location) and
        ``access`` (``read`` or ``write``). ``now`` only checks that the answer has not expired already."""
        who = f"{access} credentials" + (f" for {location}" if location else "")
        where = f"emrfs-role-agent at {self.settings.endpoint}"
        query = []
        if location:
            query.append("location=" + urllib.parse.quote(location, safe=""))
        query.append("access=" + access)
        if self.settings.user:
            query.append("user=" + urllib.parse.quote(self.settings.user, safe=""))
            who += f" (user {self.settings.user})"
        path = f"{self._base}/v1/credentials?" + "&".join(query)
        headers = {"Accept": "application/json"}
        token = self._token(where)
        if token:
            headers["Authorization"] = token
        try:
            status, body = self._get(path, headers)
        except (OSError, http.client.HTTPException) as e:
            raise AgentError(f"{where} could not be reached for {who} (set EMRFS_ROLE_AGENT_ENDPOINT or endpoint"
                             f" in the client properties if it listens elsewhere): {e}") from None
        if status != 200:
            code = message = scope = None
            try:
                error = json.loads(body)
                code, message = error.get("code"), error.get("message")
                scope = normalise(error.get("Scope"))
            except (ValueError, AttributeError):
                pass  # not the agent's JSON: the status alone
            if scope is not None and location and not location.startswith(scope):
                scope = location  # a deny that does not contain the request holds for the request only
            text = f"{where} refused {who}: HTTP {status}"
            text += f" {code}" if isinstance(code, str) else ""
            text += f": {message}" if isinstance(message, str) else ""
            raise AgentError(text, status, code if isinstance(code, str) else None, scope)
        try:
            answer = json.loads(body)
            if not isinstance(answer, dict):
                raise ValueError
        except ValueError:
            raise AgentError(f"{where} answered {who} with a body that is not a JSON object", status) from None
        fields = {}
        for name in ("AccessKeyId", "SecretAccessKey", "Expiration"):
            value = answer.get(name)
            if not isinstance(value, str) or not value:
                raise AgentError(f"{where} answered {who} without {name}", status)
            fields[name] = value
        try:
            expiration = parse_expiration(fields["Expiration"])
        except ValueError:
            raise AgentError(f"{where} answered {who} with an invalid Expiration: {fields['Expiration']}",
                             status) from None
        if expiration <= now:
            raise AgentError(f"{where} answered {who} with credentials that expired at {fields['Expiration']}",
                             status)
        token_value = answer.get("Token")
        role = answer.get("RoleArn")
        credentials = AgentCredentials(fields["AccessKeyId"], fields["SecretAccessKey"],
                                       token_value if isinstance(token_value, str) and token_value else None,
                                       expiration, role if isinstance(role, str) else None)
        scope = normalise(answer.get("Scope")) if location else None
        if scope is not None and not location.startswith(scope):
            scope = None  # a scope that does not contain the request holds for nothing but the request
        return Answer(credentials, scope)

    def _token(self, where: str) -> Optional[str]:
        path = self.settings.token_file
        if not path:
            return None
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise AgentError(f"{where}: the token file {path} does not exist (set EMRFS_ROLE_AGENT_TOKEN_FILE or"
                             " token-file in the client properties, or empty it if the agent needs no token)") from None
        except OSError as e:
            # The error names the file and the reason, never the content.
            raise AgentError(f"{where}: the token file {path} cannot be read: {e.strerror or e}") from None
        return data.decode("utf-8", "replace").rstrip("\r\n")

    def _get(self, path: str, headers: dict):
        s = self.settings
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=s.connect_timeout)
        try:
            conn.connect()
            conn.sock.settimeout(s.read_timeout)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise http.client.HTTPException(f"answer larger than {MAX_BODY_BYTES} bytes")
            return response.status, body.decode("utf-8", "replace")
        except socket.timeout:
            raise OSError("timed out") from None
        finally:
            conn.close()
