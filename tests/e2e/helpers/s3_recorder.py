"""An HTTP proxy in front of moto's S3 that records which access key signed each S3 request.

    recorder = S3Recorder(moto.endpoint)
    ... S3 client endpoint = recorder.endpoint (path-style) ...
    for r in recorder.requests: r.method, r.bucket, r.key, r.location, r.access_key_id, r.status
    recorder.stop()

Requests and answers are forwarded unchanged (same Host header and body, so moto's signature checks see
what the client signed). `access_key_id` is read from the SigV4 Authorization header
(`AWS4-HMAC-SHA256 Credential=<key id>/<date>/<region>/s3/aws4_request, ...`) or from a presigned URL's
X-Amz-Credential. `signed_headers` lists the SigV4 SignedHeaders. `location` is where the request reaches, as
the agent would be asked: s3://bucket/key for object requests, the prefix for listings, the keys' common prefix
for DeleteObjects; None for bucket requests.
"""

import os
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import List, Optional

from . import http_proxy

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_DELETE_KEY = re.compile(rb"<Key>(.*?)</Key>", re.S)


@dataclass
class S3Request:
    method: str
    bucket: Optional[str]
    key: str
    query: dict
    access_key_id: Optional[str]
    signed_headers: List[str] = field(default_factory=list)
    copy_source: Optional[str] = None
    delete_keys: List[str] = field(default_factory=list)
    status: int = 0

    @property
    def location(self):
        """s3://bucket/<key or prefix>, or None for requests without one."""
        if not self.bucket:
            return None
        if self.key:
            return f"s3://{self.bucket}/{self.key}"
        if "delete" in self.query and self.delete_keys:
            prefix = os.path.commonprefix(self.delete_keys)
            return f"s3://{self.bucket}/{prefix}" if prefix else None
        prefix = self.query.get("prefix", "")
        return f"s3://{self.bucket}/{prefix}" if prefix else None

    def __str__(self):
        return f"{self.method} {self.location or self.bucket} ({self.access_key_id}) -> {self.status}"


class S3Recorder:
    def __init__(self, upstream):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.requests = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(http_proxy.Handler):
            def _forward(self):
                body, dechunked = self.read_body()
                url = urllib.parse.urlsplit(self.path)
                parts = url.path.lstrip("/").split("/", 1)
                query = {k: v[0] if v else "" for k, v in
                         urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
                auth = self.headers.get("Authorization") or ""
                m = _CREDENTIAL.search(auth) or _CREDENTIAL.search(urllib.parse.unquote(url.query))
                record = S3Request(
                    method=self.command,
                    bucket=parts[0] or None,
                    key=urllib.parse.unquote(parts[1]) if len(parts) > 1 else "",
                    query=query,
                    access_key_id=m.group(1) if m else None,
                    signed_headers=auth.partition("SignedHeaders=")[2].partition(",")[0].split(";") if auth else [],
                    copy_source=self.headers.get("x-amz-copy-source"),
                    delete_keys=[k.decode() for k in _DELETE_KEY.findall(body)] if "delete" in query else [],
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                if dechunked:
                    headers["Content-Length"] = str(len(body))
                upstream = self.forward(recorder.upstream, body if body or self.command in ("PUT", "POST") else None,
                                        headers, timeout=120)
                record.status = upstream.status
                with recorder._lock:
                    recorder.requests.append(record)
                self.relay(upstream)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._server = http_proxy.LoopbackServer(Handler)
        self.port = self._server.port
        self.endpoint = self._server.endpoint

    def snapshot(self):
        with self._lock:
            return list(self.requests)

    def clear(self):
        with self._lock:
            self.requests.clear()

    def stop(self):
        self._server.stop()
