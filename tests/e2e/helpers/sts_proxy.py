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
import threading
import urllib.parse

from . import http_proxy

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
        proxy = self

        class Handler(http_proxy.Handler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                role = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("RoleArn", [None])[0]
                if role:
                    with proxy._lock:
                        proxy.calls[role] += 1
                if role in proxy.unavailable:
                    self.answer(503, [("Content-Type", "text/xml")], _UNAVAILABLE)
                    return
                if role in proxy.delay:
                    proxy._stopping.wait(proxy.delay[role])
                self.relay(self.forward(proxy.upstream, body, dict(self.headers.items())))

        self._server = http_proxy.LoopbackServer(Handler)
        self.port = self._server.port
        self.endpoint = self._server.endpoint

    def stop(self):
        self._stopping.set()
        self._server.stop()
