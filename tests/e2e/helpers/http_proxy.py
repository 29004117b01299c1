"""What the test proxies in front of moto share: a threaded HTTP server on a loopback port the kernel picks,
and a request handler that forwards a request upstream and relays the answer.

    class Handler(http_proxy.Handler):
        def do_GET(self):
            self.relay(self.forward(upstream, body=None, headers=dict(self.headers.items())))
    server = http_proxy.LoopbackServer(Handler)   # server.endpoint: http://127.0.0.1:<port>
    server.stop()
"""

import http.client
import http.server
import threading
from typing import List, NamedTuple, Optional, Tuple

# Not relayed from upstream: the proxy frames its own answer.
_FRAMING = ("transfer-encoding", "connection", "content-length")


class Upstream(NamedTuple):
    status: int
    headers: List[Tuple[str, str]]  # without the framing headers
    body: bytes
    content_length: Optional[str]  # as upstream sent it (what a HEAD answer must repeat)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        """This request's body, and whether it came chunked (Transfer-Encoding: chunked, decoded here)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data, True
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0)), False

    def forward(self, upstream, body, headers, timeout=60):
        """Sends this request's method and path, with `body` and `headers`, to `upstream` (a urlsplit result)."""
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=timeout)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            kept = [(k, v) for k, v in r.getheaders() if k.lower() not in _FRAMING]
            return Upstream(r.status, kept, data, r.getheader("Content-Length"))
        finally:
            conn.close()

    def answer(self, status, headers, body, content_length=None):
        """Answers with `body` (none for HEAD), its Content-Length, or `content_length` when given."""
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", content_length or str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def relay(self, upstream):
        """Answers as upstream did; a HEAD answer keeps upstream's Content-Length."""
        length = upstream.content_length if self.command == "HEAD" else None
        self.answer(upstream.status, upstream.headers, upstream.body, length)


class LoopbackServer:
    """Serves `handler_class` on 127.0.0.1:<a port the kernel picks>, a thread per connection, until stop()."""

    def __init__(self, handler_class):
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
