#!/usr/bin/env python3
"""What the Python plugin (clients/python, emrfs_role_agent.botocore) costs per S3 request on a scope hit.

    ~/.cache/emrfs-role-agent/venv/bin/python bench/python_plugin.py            # ~2 min on 2 cores
    BENCH_N=5000 BENCH_ROUNDS=15 .../python bench/python_plugin.py

Two boto3 S3 clients built alike, one with the plugin registered, make the same requests side by side, one by
one in turn (the order flips every round); each request is timed alone in the thread's CPU time and the medians
are compared. Nothing leaves the process: a `before-send` handler answers each signed request with a canned
200 (botocore sends whatever that handler returns), so only client-side CPU is measured: parameter validation,
serialisation, endpoint resolution, SigV4 signing, parsing — and, on the plugin's client, its two hooks. The agent is
a stand-in on a loopback port answering with one Scope; the first request fills the cache, every later one is a
scope hit (the run counts the agent's requests to prove it).

Reported per operation: median microseconds per request without and with the plugin, their difference (the
plugin's cost), the difference of the means, and the control: the same comparison between two clients without
the plugin (what the measurement reads when there is nothing to find); then the two hooks alone, called directly
(no SDK around them). Target (issue 18): <= 20 us per request. The last line is the results as JSON.
"""

import gc
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python", "src"))

import boto3  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402
from botocore.config import Config  # noqa: E402

import emrfs_role_agent.botocore as plugin  # noqa: E402
from emrfs_role_agent.resolver import Resolver  # noqa: E402
from emrfs_role_agent.settings import Settings  # noqa: E402

N = int(os.environ.get("BENCH_N", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
BUCKET = "lake"
TOKEN = "bench-token"


class StandIn:
    """The agent's API, answering every location with credentials for s3://lake/teamA/ (counted)."""

    def __init__(self):
        self.requests = 0
        expires = (datetime.now(timezone.utc) + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps({"AccessKeyId": "ASIABENCHTEAMA", "SecretAccessKey": "bench-secret", "Token": "bench-token",
                           "Expiration": expires, "RoleArn": "arn:aws:iam::111111111111:role/team-a",
                           "Scope": f"s3://{BUCKET}/teamA/"}).encode()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                stand_in.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


class _Raw(io.BytesIO):
    def stream(self, amt=1024, decode_content=None):
        while True:
            chunk = self.read(amt)
            if not chunk:
                return
            yield chunk


def _answer(request, **kwargs):
    headers = {"ETag": '"0123456789abcdef0123456789abcdef"', "Content-Length": "0"}
    return AWSResponse(request.url, 200, headers, _Raw(b""))


def make_client():
    client = boto3.session.Session().client(
        "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:1", aws_access_key_id="AKIACLIENTOWN",
        aws_secret_access_key="client-own-secret",
        # Temporary credentials, like the plugin's (a session token is one more header to sign).
        aws_session_token="client-own-session-token", config=Config(s3={"addressing_style": "path"}))
    client.meta.events.register("before-send", _answer)
    return client


OPERATIONS = {
    "HeadObject": lambda c, i: c.head_object(Bucket=BUCKET, Key=f"teamA/data/part-{i % 1000:05d}.parquet"),
    "PutObject": lambda c, i: c.put_object(Bucket=BUCKET, Key=f"teamA/out/part-{i % 1000:05d}", Body=b"x" * 64),
}


def per_request_us(client, op, n):
    call = OPERATIONS[op]
    start = time.thread_time()
    for i in range(n):
        call(client, i)
    return (time.thread_time() - start) / n * 1e6


def paired_us(plain, hooked, op, n, flip):
    """n requests on each client, alternating one by one (the order flips each round): each request timed
    alone in the thread's CPU time, so drift and other processes' load fall on both alike."""
    call, clock = OPERATIONS[op], time.thread_time_ns
    without, with_ = [], []
    first, second = ((plain, without), (hooked, with_)) if flip else ((hooked, with_), (plain, without))
    for i in range(n):
        for client, times in (first, second):
            t = clock()
            call(client, i)
            times.append(clock() - t)
    return without, with_


def hooks_alone_us(resolver, n):
    """provide-client-params + before-sign, called as botocore calls them, on a scope hit."""

    class Model:
        name = "HeadObject"

    class Request:
        __slots__ = ("context",)

    hooks = plugin._Hooks(resolver, False)
    params = {"Bucket": BUCKET, "Key": "teamA/data/part-00001.parquet"}
    start = time.thread_time()
    for _ in range(n):
        context = {"signing": {"region": "us-east-1"}}
        hooks.on_params(params=params, model=Model, context=context)
        request = Request()
        request.context = context
        hooks.on_sign(request=request, operation_name="HeadObject", signature_version="s3v4")
    return (time.thread_time() - start) / n * 1e6


def main():
    stand_in = StandIn()
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write(TOKEN)
        token_file = f.name
    resolver = Resolver(Settings(endpoint=stand_in.endpoint, token_file=token_file), convert=plugin._Signing)
    plain, hooked, control = make_client(), make_client(), make_client()
    assert plugin.register(hooked, resolver)

    for client in (plain, hooked, control):  # warm up: imports, endpoint rules, the plugin's one agent request
        for op in OPERATIONS:
            per_request_us(client, op, 200)
    agent_after_warmup = stand_in.requests

    results = {}
    gc.disable()  # collections would land on whichever client happens to allocate at the time
    for op in OPERATIONS:
        without, with_ = [], []
        for r in range(ROUNDS):
            a, b = paired_us(plain, hooked, op, N, r % 2 == 0)
            without += a
            with_ += b
            gc.collect()
        m_without, m_with = statistics.median(without) / 1000, statistics.median(with_) / 1000
        # The same pairing between two clients without the plugin: the noise floor of this measurement.
        c_without, c_with = [], []
        for r in range(ROUNDS):
            a, b = paired_us(plain, control, op, N, r % 2 == 0)
            c_without += a
            c_with += b
            gc.collect()
        results[op] = {"without_us": round(m_without, 2), "with_us": round(m_with, 2),
                       "cost_us": round(m_with - m_without, 2),
                       "mean_cost_us": round((statistics.fmean(with_) - statistics.fmean(without)) / 1000, 2),
                       "control_us": round((statistics.median(c_with) - statistics.median(c_without)) / 1000, 2)}
    gc.enable()
    hooks = [hooks_alone_us(resolver, N) for _ in range(ROUNDS)]
    results["hooks_alone_us"] = round(statistics.median(hooks), 2)
    results["agent_requests"] = {"warm_up": agent_after_warmup, "measured": stand_in.requests - agent_after_warmup,
                                 "s3_requests_measured": 2 * len(OPERATIONS) * N * ROUNDS // 2}
    results["n"], results["rounds"] = N, ROUNDS
    import botocore

    results["python"], results["botocore"] = sys.version.split()[0], botocore.__version__

    print(f"Python plugin, scope hit: {N} requests x {ROUNDS} rounds per client, median per request "
          f"(python {results['python']}, botocore {results['botocore']})")
    print(f"{'operation':<12} {'without':>10} {'with':>10} {'cost':>10} {'(means)':>10} {'control':>10}")
    for op in OPERATIONS:
        r = results[op]
        print(f"{op:<12} {r['without_us']:>8.1f}us {r['with_us']:>8.1f}us {r['cost_us']:>8.1f}us"
              f" {r['mean_cost_us']:>8.1f}us {r['control_us']:>8.1f}us")
    print(f"the two hooks alone: {results['hooks_alone_us']:.2f} us per request")
    print(f"agent requests: {agent_after_warmup} during warm-up, {results['agent_requests']['measured']} for the "
          f"{results['agent_requests']['s3_requests_measured']} measured S3 requests")
    print(json.dumps(results))
    os.unlink(token_file)
    stand_in.server.shutdown()


if __name__ == "__main__":
    main()
