#!/usr/bin/env python3
"""What an access-grants rule costs, side by side with an AssumeRole rule, in one run (see BENCHMARKS.md).

    ~/.cache/emrfs-role-agent/venv/bin/python bench/grants.py      # release build; ~1 min on 2 cores
    BENCH_N=2000 BENCH_MISSES=200 BENCH_PROFILE=debug .../python bench/grants.py

One agent (release build), moto with the S3 Access Grants stand-in in its process
(tests/e2e/helpers/access_grants_standin.py), two rules: `allow` for `s3://lake/role/` and `access-grants` for
`s3://lake/grants/`, with one grant per folder `s3://lake/grants/p<i>/*`. Timed from a keep-alive client, one
request after another, alternating between the two kinds:

- hit: a key under a session (AssumeRole rule) or grant (access-grants rule) already held — no call out;
- miss: the first request under a new session (a new user, through a trusted proxy) or a new grant (a new
  folder) — one AssumeRole, or one GetDataAccess (the grantee's own session already held).

Reported: the median and p90 microseconds of each, and the counts of calls moto and the stand-in saw (one
per miss, none per hit). The last line is the results as JSON.
"""

import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import requests  # noqa: E402

from helpers.access_grants_standin import MotoWithAccessGrants  # noqa: E402

N = int(os.environ.get("BENCH_N", "2000"))
MISSES = int(os.environ.get("BENCH_MISSES", "200"))
PROFILE = os.environ.get("BENCH_PROFILE", "release")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/emrfs-role-agent/target"))
BIN = os.environ.get("EMRFS_ROLE_AGENT_BIN", os.path.join(TARGET, PROFILE, "emrfs-role-agent"))
ACCOUNT = "123456789012"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(session, url, params, headers):
    started = time.perf_counter_ns()
    answer = session.get(url, params=params, headers=headers)
    elapsed = (time.perf_counter_ns() - started) / 1000
    assert answer.status_code == 200, answer.text
    return elapsed


def summary(samples):
    samples = sorted(samples)
    return {"n": len(samples), "p50_us": round(statistics.median(samples), 1),
            "p90_us": round(samples[int(len(samples) * 0.9)], 1)}


def main():
    work = tempfile.mkdtemp(prefix="bench-grants-")
    server = MotoWithAccessGrants(work)
    agent = None
    try:
        world = server.setup(roles=[{"name": "grants-location", "bucket": "lake"}, {"name": "analyst"},
                                    {"name": "engineer"}], enforce_iam=False)
        analyst = world.role("analyst")["arn"]
        server.set_grants(world.role("grants-location")["arn"], [
            {"grantee": analyst, "scope": f"s3://lake/grants/p{i}/*", "permission": "READ"}
            for i in range(MISSES + 1)])
        me = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        port, token = free_port(), secrets.token_hex(24)
        with open(os.path.join(work, "token"), "w") as f:
            f.write(token)
        config = f"""
[server]
listen = ["127.0.0.1:{port}"]
token_file = "{work}/token"
max_requests_per_caller = 1000000
[identity]
trusted_proxy_users = ["{me}"]
[sts]
region = "us-east-1"
endpoint_url = "{world.endpoint}"
max_calls_per_second = 1000
max_calls_per_caller = 1000
[audit]
path = "{work}/audit.log"
durability = "buffered"
[access_grants]
endpoint_url = "http://localhost:{server.grants_port}"
[[mapping]]
name = "role"
role = "{world.role("engineer")["arn"]}"
prefixes = ["s3://lake/role/"]
[[mapping]]
name = "grants"
effect = "access-grants"
role = "{analyst}"
prefixes = ["s3://lake/grants/"]
"""
        with open(os.path.join(work, "config.toml"), "w") as f:
            f.write(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(world.source_env())
        env.update({"AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
                    "AWS_CONFIG_FILE": os.path.join(work, "none"), "AWS_SHARED_CREDENTIALS_FILE": os.path.join(work, "none"),
                    "HTTP_PROXY": server.grants_endpoint, "NO_PROXY": "127.0.0.1", "RUST_LOG": "warn"})
        agent = subprocess.Popen([BIN, "serve", "--config", os.path.join(work, "config.toml")], env=env,
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "agent.log"), "w"))
        url = f"http://127.0.0.1:{port}/v1/credentials"
        headers = {"Authorization": token}
        session = requests.Session()
        for _ in range(100):
            try:
                if session.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        # Warm: the AssumeRole session of the role rule, the grantee's session and grant p0.
        timed(session, url, {"location": "s3://lake/role/k"}, headers)
        timed(session, url, {"location": "s3://lake/grants/p0/k", "access": "read"}, headers)
        sts_before, grants_before = None, server.call_count()
        hits = {"role": [], "grants": []}
        for i in range(N):
            hits["role"].append(timed(session, url, {"location": f"s3://lake/role/k{i}"}, headers))
            hits["grants"].append(
                timed(session, url, {"location": f"s3://lake/grants/p0/k{i}", "access": "read"}, headers))
        assert server.call_count() == grants_before, "hits made GetDataAccess calls"
        misses = {"role": [], "grants": []}
        for i in range(1, MISSES + 1):
            misses["role"].append(timed(session, url, {"location": "s3://lake/role/k", "user": f"user-{i}"}, headers))
            misses["grants"].append(
                timed(session, url, {"location": f"s3://lake/grants/p{i}/k", "access": "read"}, headers))
        grant_calls = server.call_count() - grants_before
        assert grant_calls == MISSES, f"{grant_calls} GetDataAccess calls for {MISSES} misses"
        del sts_before
        result = {
            "hit": {kind: summary(s) for kind, s in hits.items()},
            "miss": {kind: summary(s) for kind, s in misses.items()},
            "get_data_access_calls_for_misses": grant_calls,
            "profile": PROFILE,
        }
        for what in ("hit", "miss"):
            role, grants = result[what]["role"], result[what]["grants"]
            print(f"{what:5} assume-role p50 {role['p50_us']:>8} us p90 {role['p90_us']:>8} us | "
                  f"access-grants p50 {grants['p50_us']:>8} us p90 {grants['p90_us']:>8} us | "
                  f"ratio p50 {grants['p50_us'] / role['p50_us']:.2f}")
        print(json.dumps(result))
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(10)
        server.stop()


if __name__ == "__main__":
    main()
