"""An HTTP proxy in front of moto's STS that fails or delays AssumeRole for chosen roles.

    proxy = StsProxy(moto.endpoint, unavailable={role_arn}, delay={role_arn: 1.5})
    ... agent config {"sts": {"endpoint_url": proxy.endpoint}} ...
    proxy.stop()

Requests naming a role in `unavailable` get `503 ServiceUnavailable` (what STS answers during an outage);
requests naming a role in `delay` are forwarded after that many seconds; everything else is forwarded
unchanged (same Host header and body, so moto's signature checks still pass). `calls` counts the
AssumeRole requests seen per role ARN.
"""

import collections
import http.client
import http.server
import threading
import urllib.parse

from .net import free_port

_UNAVAILABLE = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Receiver</Type>'
    b"<Code>ServiceUnavailable</Code><Message>Service is unavailable</Message></Error>"
    b"<RequestId>00000000-0000-0000-0000-000000000503</RequestId></ErrorResponse>"
)


class StsProxy:
    def __init__(self, upstream, unavailable=(), delay=None):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.unavailable = set(unavailable)
        self.delay = dict(delay or {})
        self.calls = collections.Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                role = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("RoleArn", [None])[0]
                if role:
                    with proxy._lock:
                        proxy.calls[role] += 1
                if role in proxy.unavailable:
                    self._answer(503, {"Content-Type": "text/xml"}, _UNAVAILABLE)
                    return
                if role in proxy.delay:
                    proxy._stopping.wait(proxy.delay[role])
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    conn.request("POST", self.path, body=body, headers=dict(self.headers.items()))
                    upstream = conn.getresponse()
                    data = upstream.read()
                    headers = {k: v for k, v in upstream.getheaders()
                               if k.lower() not in ("transfer-encoding", "connection", "content-length")}
                    self._answer(upstream.status, headers, data)
                finally:
                    conn.close()

            def _answer(self, status, headers, data):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
