"""Where one S3 request reaches, read from the operation's parameters exactly as the caller gave them (pure).

- An object request: ``s3://bucket/<Key>``, the key as S3 has it (no decoding: ``a%2Fb`` is three characters).
- A listing: ``s3://bucket/<Prefix>``; a request without key or prefix: ``s3://bucket/``.
- A request without a bucket (ListBuckets): no location.
- CopyObject, UploadPartCopy: the destination, plus the source (``CopySource``, a string
  ``bucket/key[?versionId=...]`` with the key unencoded, as botocore takes it, or a dict) to be read.
- DeleteObjects: the keys' longest common prefix, plus every key.

Operations named Get*, Head* and List* read; everything else writes (SPEC §9).
"""

import re
from typing import Mapping, Optional, Tuple

READ_PREFIXES = ("Get", "Head", "List")
# botocore.handlers.VERSION_ID_SUFFIX
VERSION_ID_SUFFIX = re.compile(r"\?versionId=[^\s]+$")


def access_of(operation: str) -> str:
    return "read" if operation.startswith(READ_PREFIXES) else "write"


def location(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key}"


class Target:
    """One request's locations. ``location`` is decided with ``access``; ``source`` (a copy's) with read;
    ``members`` (a bulk delete's keys) with ``access`` too. All of them must be served by one session."""

    __slots__ = ("operation", "access", "location", "source", "members")

    def __init__(self, operation: str, access: str, location: str, source: Optional[str] = None,
                 members: Tuple[str, ...] = ()):
        self.operation = operation
        self.access = access
        self.location = location
        self.source = source
        self.members = members

    def __eq__(self, other):
        return isinstance(other, Target) and all(getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __repr__(self):
        src = f"{self.source} -> " if self.source else ""
        more = f" (+{len(self.members)} keys)" if self.members else ""
        return f"Target({self.operation} {self.access} {src}{self.location or '(no location)'}{more})"


def target_of(operation: str, params: Mapping) -> Target:
    """The locations of ``operation`` called with ``params`` (the caller's own parameters)."""
    access = access_of(operation)
    bucket = params.get("Bucket")
    if not isinstance(bucket, str) or not bucket:
        return Target(operation, access, "")
    key = params.get("Key")
    if operation in ("CopyObject", "UploadPartCopy"):
        source = copy_source(params.get("CopySource"))
        return Target(operation, access, location(bucket, key if isinstance(key, str) else ""), source)
    if operation == "DeleteObjects":
        keys = [o.get("Key") for o in (params.get("Delete") or {}).get("Objects") or () if isinstance(o, Mapping)]
        keys = [k for k in keys if isinstance(k, str)]
        if keys:
            members = tuple(location(bucket, k) for k in keys)
            return Target(operation, access, location(bucket, common_prefix(keys)), None, members)
        return Target(operation, access, location(bucket))
    if isinstance(key, str):
        return Target(operation, access, location(bucket, key))
    prefix = params.get("Prefix")
    return Target(operation, access, location(bucket, prefix if isinstance(prefix, str) else ""))


def copy_source(source) -> Optional[str]:
    """The literal location of a ``CopySource``; None when it cannot be read (botocore's own validation then
    reports the parameter)."""
    if isinstance(source, Mapping):
        bucket, key = source.get("Bucket"), source.get("Key")
        if isinstance(bucket, str) and isinstance(key, str) and bucket:
            return location(bucket, key)
        return None
    if not isinstance(source, str):
        return None
    # botocore's own reading (handlers._quote_source_header): an optional ?versionId= suffix, the rest literal.
    suffix = VERSION_ID_SUFFIX.search(source)
    if suffix is not None:
        source = source[: suffix.start()]
    source = source[1:] if source.startswith("/") else source
    if source.startswith("arn:") and "/object/" in source:
        bucket, _, key = source.partition("/object/")
    else:
        bucket, _, key = source.partition("/")
    return location(bucket, key) if bucket else None


def common_prefix(keys) -> str:
    first, last = min(keys), max(keys)
    n = 0
    while n < len(first) and n < len(last) and first[n] == last[n]:
        n += 1
    return first[:n]
