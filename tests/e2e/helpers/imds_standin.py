"""An instance-metadata service stand-in: the node's IMDS, in a test's network namespace.

Run as a script (`python imds_standin.py --listen 169.254.169.254:80 --moto URL --name NAME`), or through
ImdsStandIn, which starts it with a command prefix such as `ip netns exec NS` and waits until it listens.

It speaks IMDSv2 only, as a hardened node does: `PUT /latest/api/token` with
X-aws-ec2-metadata-token-ttl-seconds (1..21600) gives a token, with that header in the answer too; every GET
needs a live one (else 401).
  /latest/meta-data/iam/security-credentials/...   forwarded to moto's server, which answers these paths
                                                   itself (by path, whatever the Host): one instance
                                                   profile role, "default-role", with moto's static keys
  /latest/meta-data/placement/region, .../placement/availability-zone[/], /latest/meta-data/instance-id,
  /latest/dynamic/instance-identity/document, /latest/meta-data/iam/info      static, from the arguments
  anything else                                                               404
Every answer carries `X-Metadata-Server: NAME`: that header says a request reached this server and not
something in front of it. Each request is logged to stderr as "METHOD PATH STATUS".
"""

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CREDENTIALS_PREFIX = "/latest/meta-data/iam/security-credentials/"
ACCOUNT_ID = "123456789012"
INSTANCE_ID = "i-0e1f2a3b4c5d6e7f8"
INSTANCE_PROFILE = "node-instance-profile"
READY_LINE = "imds-standin listening"


def static_paths(region, instance_id=INSTANCE_ID):
    zone = f"{region}a"
    document = {
        "accountId": ACCOUNT_ID,
        "architecture": "x86_64",
        "availabilityZone": zone,
        "imageId": "ami-0123456789abcdef0",
        "instanceId": instance_id,
        "instanceType": "m5.xlarge",
        "pendingTime": "2026-01-01T00:00:00Z",
        "privateIp": "10.0.0.10",
        "region": region,
        "version": "2017-09-30",
    }
    info = {
        "Code": "Success",
        "LastUpdated": "2026-01-01T00:00:00Z",
        "InstanceProfileArn": f"arn:aws:iam::{ACCOUNT_ID}:instance-profile/{INSTANCE_PROFILE}",
        "InstanceProfileId": "AIPAEXAMPLEINSTANCEPROF",
    }
    return {
        "/latest/meta-data/placement/region": region,
        "/latest/meta-data/placement/availability-zone": zone,
        "/latest/meta-data/placement/availability-zone/": zone,
        "/latest/meta-data/instance-id": instance_id,
        "/latest/dynamic/instance-identity/document": json.dumps(document, indent=2),
        "/latest/meta-data/iam/info": json.dumps(info, indent=2),
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "imds-standin"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass  # one line per request from _send instead

    def _send(self, status, body, content_type="text/plain", headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("X-Metadata-Server", self.server.name)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        sys.stderr.write(f"{self.command} {self.path} {status}\n")
        sys.stderr.flush()

    def do_PUT(self):
        if self.path != "/latest/api/token":
            return self._send(404, "Not Found")
        try:
            ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= 21600:
            return self._send(400, "Bad Request")
        token = secrets.token_urlsafe(32)
        with self.server.lock:
            self.server.tokens[token] = time.monotonic() + ttl
        # As IMDS does; the Rust SDK refuses a token without it.
        self._send(200, token, headers=[("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))])

    def _token_ok(self):
        token = self.headers.get("X-aws-ec2-metadata-token", "")
        with self.server.lock:
            expiry = self.server.tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def do_GET(self):
        if not self._token_ok():
            return self._send(401, "Unauthorized")
        if self.path.startswith(CREDENTIALS_PREFIX):
            return self._forward_to_moto()
        body = self.server.static.get(self.path)
        if body is None:
            return self._send(404, "Not Found")
        self._send(200, body, "application/json" if body.startswith("{") else "text/plain")

    def _forward_to_moto(self):
        try:
            with urllib.request.urlopen(self.server.moto + self.path, timeout=10) as r:
                status, body = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read().decode()
        self._send(status, body)


class _ServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve(listen, name, region, moto):
    host, port = listen.rsplit(":", 1)
    if host.startswith("["):  # [fd00:ec2::254]:80
        server = _ServerV6((host.strip("[]"), int(port)), _Handler)
    else:
        server = ThreadingHTTPServer((host, int(port)), _Handler)
    server.daemon_threads = True
    server.name = name
    server.moto = moto.rstrip("/")
    server.static = static_paths(region)
    server.tokens = {}
    server.lock = threading.Lock()
    print(READY_LINE, flush=True)
    server.serve_forever()


class ImdsStandIn:
    """The stand-in as a process (run as root with `wrap` in front); stop() ends it."""

    def __init__(self, listen, name, moto, region, log_path, wrap=()):
        self.listen = listen
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [*wrap, sys.executable, os.path.abspath(__file__), "--listen", listen, "--name", name,
             "--region", region, "--moto", moto],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        line = self.process.stdout.readline()  # EOF if it died first
        if line.strip() != READY_LINE:
            self.stop()
            raise RuntimeError(f"IMDS stand-in {name} on {listen} did not start:\n{self.log()}")

    def log(self):
        """What it logged: one "METHOD PATH STATUS" line per request (and any traceback)."""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process.stdout.close()
        self._log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port, e.g. 169.254.169.254:80 or [fd00:ec2::254]:80")
    parser.add_argument("--name", required=True, help="sent back in X-Metadata-Server")
    parser.add_argument("--region", required=True)
    parser.add_argument("--moto", required=True, help="moto server URL for the credential paths")
    args = parser.parse_args()
    serve(args.listen, args.name, args.region, args.moto)


if __name__ == "__main__":
    main()
