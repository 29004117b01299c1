"""A botocore client plugin: every S3 request is signed with the credentials emrfs-role-agent hands out for the
exact key it accesses (SPEC §9), in boto3, the AWS CLI and s3fs/aiobotocore alike.

Turning it on
-------------
- For a whole process: ``BOTOCORE_EXPERIMENTAL__PLUGINS=emrfs-role-agent=emrfs_role_agent.botocore``. botocore
  1.39.9 and later (``botocore/plugin.py``) import the named module for every client a session creates and call
  its ``initialize_client_plugin(client)``; the AWS CLI v1 and aiobotocore's sessions do the same.
- For one client: ``emrfs_role_agent.botocore.register(client)`` (botocore 1.34.70 and later).

Clients of other services (STS, Glue, DynamoDB, ...) are left exactly as they were: ``register`` returns False
and adds nothing to them.

How a request gets its own credentials
--------------------------------------
Two handlers on the S3 client's own event emitter (each client has a copy of its session's, so nothing leaks
into other clients), registered with fixed unique ids so that the plugin and an explicit ``register`` never act
twice on one request:

1. ``provide-client-params.s3``: the first event of every call (``generate_presigned_url`` too), with the
   parameters exactly as the caller gave them, before botocore's own handlers rewrite any (CopySource gets
   percent-encoded at ``before-parameter-build.s3.CopyObject``). It reads the operation's target (bucket and
   key, prefix, copy source, bulk-delete keys: ``targets.py``) into the call's context under ``emrfs-role-agent``.
   No agent call here.
2. ``before-sign.s3``: emitted by ``RequestSigner.sign`` for every attempt (retries are signed anew), right before
   the signer chooses credentials. ``sign`` reads ``request.context["signing"]["request_credentials"]`` and, when
   set, ``get_auth_instance`` signs with those instead of the client's own ``self._credentials`` (botocore's
   per-request credential override, 1.34.70). The handler asks the scope cache for the target and puts the
   answer there. The request's context is a fresh dict per call, so one call's credentials never reach another,
   and the client's shared credentials are never touched. aiobotocore's signer reads the same key and awaits
   ``get_frozen_credentials()``; its clients get an object with an async one. Unsigned (anonymous) requests are
   left alone.

A refusal (the agent's 403, a copy whose source and destination belong to different sessions) raises
``botocore.exceptions.ClientError`` with code ``AccessDenied``, HTTP status 403 and the agent's words, before
anything is sent to S3: the AWS CLI prints it, s3fs turns it into ``PermissionError``, and no SDK retries it. An
agent that cannot be reached (or settings that cannot be used) raises ``CredentialRetrievalError``. The hooks
never fall back to the client's own credentials.

Handlers are synchronous and return at once on a cache hit. An aiobotocore client that has to ask the agent
does so in the event loop's default executor, so the loop keeps running meanwhile.

botocore swallows exceptions raised by ``initialize_client_plugin`` (logged at DEBUG): registration therefore
does nothing that can fail, and everything that can (settings, the agent) happens per request, where it fails
the request instead of letting it go out with other credentials.
"""

import asyncio
import logging
import re
import sys

import botocore
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, CredentialRetrievalError

from . import resolver as _resolver
from .agent import AgentError
from .targets import Target, access_of, location, target_of

log = logging.getLogger(__name__)

CONTEXT_KEY = "emrfs-role-agent"
_PARAMS_ID = "emrfs-role-agent-target"
_SIGN_ID = "emrfs-role-agent-sign"
_METHOD = "emrfs-role-agent"


class _AioCredentials:
    """What aiobotocore's signer wants: ``await credentials.get_frozen_credentials()``."""

    __slots__ = ("_frozen", "_description")

    def __init__(self, frozen, description):
        self._frozen = frozen
        self._description = description

    async def get_frozen_credentials(self):
        return self._frozen

    def __repr__(self):
        return f"<emrfs-role-agent credentials {self._description}>"


class _Signing:
    """One agent answer in both SDK forms, made once per answer (not per request)."""

    __slots__ = ("sync", "aio")

    def __init__(self, creds):
        self.sync = Credentials(creds.access_key_id, creds.secret_access_key, creds.token, method=_METHOD)
        self.aio = _AioCredentials(self.sync.get_frozen_credentials(), creds.describe())

    def __repr__(self):
        return f"<emrfs-role-agent credentials {self.sync.access_key}>"


def _default_resolver():
    return _resolver.default(_Signing)


def register(client, resolver=None) -> bool:
    """Makes ``client`` ask emrfs-role-agent per S3 request; True if it did, False for a client of another
    service (left untouched). ``resolver`` is for tests (default: the process's, from its environment)."""
    if client.meta.service_model.service_name != "s3":
        return False
    aio = _is_aio(client)
    _check_versions(aio)
    register_events(client.meta.events, resolver, aio)
    log.debug("emrfs-role-agent hooks registered on an S3 client%s", " (aiobotocore)" if aio else "")
    return True


def register_events(events, resolver=None, aio=False):
    """Adds the two hooks to an event emitter: a client's, or a session's (every client it creates copies it;
    only S3 clients emit the ``.s3`` events). Registering twice on one emitter, or on a session and then on its
    client, adds nothing (fixed unique ids)."""
    hooks = _Hooks(resolver, aio)
    events.register("provide-client-params.s3", hooks.on_params, unique_id=_PARAMS_ID)
    events.register("before-sign.s3", hooks.on_sign, unique_id=_SIGN_ID)


def initialize_client_plugin(client):
    """botocore's plugin entry point (``BOTOCORE_EXPERIMENTAL__PLUGINS``)."""
    try:
        register(client)
    except Exception:
        # botocore would log this at DEBUG and carry on: say it louder.
        log.warning("emrfs-role-agent could not hook an S3 client", exc_info=True)
        raise


def _version(text):
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _check_versions(aio):
    """Older signers ignore per-request credentials: the requests would go out with the client's own."""
    if _version(botocore.__version__) < (1, 34, 70):
        raise RuntimeError(f"emrfs-role-agent needs botocore 1.34.70 or later, not {botocore.__version__}")
    if aio:
        aiobotocore = sys.modules.get("aiobotocore")
        version = getattr(aiobotocore, "__version__", "0")
        if _version(version) < (2, 12, 4):
            raise RuntimeError(f"emrfs-role-agent needs aiobotocore 2.12.4 or later, not {version}")


def _is_aio(client) -> bool:
    aio = sys.modules.get("aiobotocore.client")
    return aio is not None and isinstance(client, aio.AioBaseClient)


class _Hooks:
    __slots__ = ("_resolver", "aio")

    def __init__(self, resolver, aio):
        self._resolver = resolver
        self.aio = aio

    @property
    def resolver(self):
        return self._resolver or _default_resolver()

    def on_params(self, params, model, context, **kwargs):
        context[CONTEXT_KEY] = target_of(model.name, params)

    def on_sign(self, request, operation_name, signature_version=None, **kwargs):
        if signature_version is botocore.UNSIGNED:
            return None
        context = request.context
        target = _post_target(context) or context.get(CONTEXT_KEY)
        if target is None:
            raise _refusal(operation_name, f"emrfs-role-agent did not see the parameters of this {operation_name}"
                           " request, so it cannot tell which S3 location it reaches; it is not sent with other"
                           " credentials")
        resolver = self.resolver
        if self.aio:
            try:
                entry = resolver.cached(target)
            except AgentError as e:
                raise _translate(e, operation_name) from None
            if entry is not None:
                context.setdefault("signing", {})["request_credentials"] = entry.value.aio
                return None
            return self._resolve_async(resolver, target, context, operation_name)
        try:
            entry = resolver.resolve(target)
        except AgentError as e:
            raise _translate(e, operation_name) from None
        context.setdefault("signing", {})["request_credentials"] = entry.value.sync
        return None

    async def _resolve_async(self, resolver, target, context, operation_name):
        loop = asyncio.get_running_loop()
        try:
            entry = await loop.run_in_executor(None, resolver.resolve, target)
        except AgentError as e:
            raise _translate(e, operation_name) from None
        context.setdefault("signing", {})["request_credentials"] = entry.value.aio


def _post_target(context):
    """A presigned POST is signed as PutObject of the form's key (``generate_presigned_post``)."""
    fields = context.get("s3-presign-post-fields")
    if not fields or "key" not in fields:
        return None
    target = context.get(CONTEXT_KEY)
    bucket = target.location[5:].split("/", 1)[0] if target is not None and target.location else ""
    key = fields["key"]
    if key.endswith("${filename}"):
        key = key[: -len("${filename}")]
    return Target("PutObject", access_of("PutObject"), location(bucket, key)) if bucket else None


def _refusal(operation_name, message):
    return ClientError({"Error": {"Code": "AccessDenied", "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": 403}}, operation_name)


def _translate(error: AgentError, operation_name):
    """The agent's refusal as S3's own AccessDenied; a failure to ask as a credential retrieval error."""
    if error.is_refusal:
        return _refusal(operation_name, error.message)
    return CredentialRetrievalError(provider="emrfs-role-agent", error_msg=error.message)
