"""A stand-in for emrfs-role-agent's HTTP API on a free loopback port, scripted by the test.

    agent = FakeAgent(token="t0k3n")
    agent.rule("s3://lake/teamA/", role="team-a")              # 200 with Scope s3://lake/teamA/
    agent.rule("s3://lake/secret/", deny=True)                  # 403 AccessDenied with Scope
    agent.answer = lambda location, access: (status, body)       # or script every answer yourself
    agent.requests   # [(raw query string, location as the agent decodes it, access, Authorization)]

Credentials are made up per (role, generation): ``agent.rotate()`` starts a new generation, as a new STS session
would. ``agent.secrets()`` lists every secret key and token it handed out, for leak checks. ``agent.gate`` (a
threading.Event, set by default) holds every answer until it is set.
"""

import json
import threading
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ISO = "%Y-%m-%dT%H:%M:%SZ"


def iso(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime(ISO)


class FakeAgent:
    def __init__(self, token="fake-agent-token", expires_at=None):
        self.token = token
        self.expires_at = expires_at  # epoch seconds; set per test from its clock
        self.rules = []  # (prefix, role or None for deny, scope or None)
        self.requests = []
        self.generation = 0
        self.gate = threading.Event()
        self.gate.set()
        self.gate_timeout = 30
        self.on_request = None  # called (in the server thread) before answering
        self._handed_out = []
        self._lock = threading.Lock()
        self.answer = self._by_rules
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
                location = q.get("location", [None])[0]
                access = q.get("access", [None])[0]
                with agent._lock:
                    agent.requests.append((url.query, location, access, self.headers.get("Authorization")))
                if agent.on_request is not None:
                    agent.on_request(location, access)
                agent.gate.wait(agent.gate_timeout)
                if url.path != "/v1/credentials":
                    status, body = 404, {"code": "NotFound", "message": "no such path"}
                elif self.headers.get("Authorization") != agent.token:
                    status, body = 401, {"code": "Unauthorized", "message": "token missing or wrong"}
                else:
                    status, body = agent.answer(location, access)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    # ---- scripting ----

    def rule(self, prefix, role=None, deny=False, scope=True):
        """First matching rule decides; ``scope=False`` answers without Scope (exact), a string sends that."""
        self.rules.append((prefix, None if deny else role, scope))

    def rotate(self):
        self.generation += 1

    def credentials(self, role):
        key = f"ASIA{role.upper().replace('-', '')}{self.generation:04d}"
        body = {
            "AccessKeyId": key,
            "SecretAccessKey": f"secret-{role}-{self.generation}-do-not-print",
            "Token": f"token-{role}-{self.generation}-do-not-print",
            "Expiration": iso(self.expires_at),
            "RoleArn": f"arn:aws:iam::111111111111:role/{role}",
        }
        with self._lock:
            self._handed_out += [body["SecretAccessKey"], body["Token"]]
        return body

    def _by_rules(self, location, access):
        for prefix, role, scope in self.rules:
            if location is not None and location.startswith(prefix):
                sc = prefix if scope is True else (scope or None)
                if role is None:
                    body = {"code": "AccessDenied", "message": f"deny rule for {prefix}"}
                    if sc:
                        body["Scope"] = sc
                    return 403, body
                body = self.credentials(role)
                if sc:
                    body["Scope"] = sc
                return 200, body
        return 403, {"code": "AccessDenied", "message": "fallback deny"}

    # ---- what happened ----

    def asked(self):
        """[(location, access)] in order."""
        with self._lock:
            return [(loc, acc) for _, loc, acc, _ in self.requests]

    def secrets(self):
        with self._lock:
            return [self.token] + list(self._handed_out)

    def stop(self):
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()
