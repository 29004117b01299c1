"""An HTTP proxy in front of moto's S3 that is healthy, down or slow, as the test says.

    proxy = S3FaultProxy(moto.endpoint)       # mode "ok": every request forwarded unchanged
    ... agent config [audit.ship] endpoint_url = proxy.endpoint (path-style) ...
    proxy.unavailable()                        # 503 SlowDown to every request (nothing reaches moto)
    proxy.unavailable("reset")                 # the connection reset (RST) without an answer
    proxy.slow(30)                             # each request waits 30 s before it is forwarded
    proxy.slow(30, after=True)                 # forwarded at once (S3 has it), answered 30 s later
    proxy.ok()                                 # healed: requests waiting in slow mode go on at once
    proxy.in_flight()                          # requests being held in slow mode right now
    proxy.puts(status=200)                     # keys of the PUT requests answered with that status
    proxy.stop()

Requests are forwarded with the same Host header and body, so moto's signature checks see what the client
signed. A request held in slow mode whose client has gone meanwhile (killed) is dropped, not forwarded:
nothing reaches S3 from a process that no longer exists. Every request is recorded (method, key, status;
status 0 for a reset or a dropped request) in `requests`.
"""

import select
import socket
import struct
import threading
import urllib.parse
from dataclasses import dataclass

from . import http_proxy

_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message>"
    b"<RequestId>0000000000000503</RequestId><HostId>s3-fault-proxy</HostId></Error>"
)


@dataclass
class Request:
    method: str
    bucket: str
    key: str
    status: int = 0

    def __str__(self):
        return f"{self.method} {self.bucket}/{self.key} -> {self.status}"


def _client_gone(sock):
    """True when the client has closed its end (a killed process's socket is closed by the kernel)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class S3FaultProxy:
    MODES = ("ok", "unavailable", "slow")

    def __init__(self, upstream):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.requests = []
        self._lock = threading.Lock()
        self._mode = "ok"
        self._how = "503"
        self._delay = 0.0
        self._after = False
        self._healed = threading.Event()  # set while not slow: wakes the requests being held
        self._healed.set()
        self._held = 0
        proxy = self

        class Handler(http_proxy.Handler):
            def _reset(self):
                # SO_LINGER 0: close() sends RST instead of FIN.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True

            def _hold(self, record):
                """Waits out slow mode (or until healed); False when the client went away meanwhile."""
                with proxy._lock:
                    delay = proxy._delay
                    proxy._held += 1
                try:
                    proxy._healed.wait(delay)
                finally:
                    with proxy._lock:
                        proxy._held -= 1
                if _client_gone(self.connection):
                    record.status = 0
                    self.close_connection = True
                    return False
                return True

            def _handle(self):
                body, dechunked = self.read_body()
                parts = urllib.parse.urlsplit(self.path).path.lstrip("/").split("/", 1)
                record = Request(self.command, parts[0], urllib.parse.unquote(parts[1]) if len(parts) > 1 else "")
                with proxy._lock:
                    proxy.requests.append(record)
                    mode, how, after = proxy._mode, proxy._how, proxy._after
                if mode == "unavailable":
                    if how == "reset":
                        self._reset()
                        return
                    record.status = 503
                    self.answer(503, [("Content-Type", "application/xml"), ("Retry-After", "1")], _SLOW_DOWN)
                    return
                if mode == "slow" and not after and not self._hold(record):
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                if dechunked:
                    headers["Content-Length"] = str(len(body))
                upstream = self.forward(proxy.upstream, body if body or self.command in ("PUT", "POST") else None,
                                        headers, timeout=120)
                if mode == "slow" and after and not self._hold(record):
                    # S3 has it; the client never hears so.
                    record.status = -upstream.status
                    return
                record.status = upstream.status
                self.relay(upstream)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = http_proxy.LoopbackServer(Handler)
        self.port = self._server.port
        self.endpoint = self._server.endpoint

    # ---- modes ----

    def ok(self):
        with self._lock:
            self._mode = "ok"
            self._healed.set()

    def unavailable(self, how="503"):
        """`how`: "503" (503 SlowDown) or "reset" (the connection reset without an answer)."""
        assert how in ("503", "reset"), how
        with self._lock:
            self._mode, self._how = "unavailable", how
            self._healed.set()

    def slow(self, seconds, after=False):
        """Each request waits `seconds` before it is forwarded, or (after=True) is forwarded at once and
        answered `seconds` later; ok() ends the wait of every request held."""
        with self._lock:
            self._mode, self._delay, self._after = "slow", float(seconds), after
            self._healed.clear()

    @property
    def mode(self):
        return self._mode

    # ---- what it saw ----

    def in_flight(self):
        """Requests held in slow mode right now."""
        with self._lock:
            return self._held

    def snapshot(self):
        with self._lock:
            return list(self.requests)

    def puts(self, status=None):
        """Keys of the PUT requests seen (with `status`: only those answered so; a negative status is an
        answer S3 gave that the client never received)."""
        return [r.key for r in self.snapshot() if r.method == "PUT" and (status is None or r.status == status)]

    def stop(self):
        self._healed.set()
        self._server.stop()
