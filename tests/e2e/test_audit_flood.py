"""Filling the audit disk from a tenant's shell (SPEC §7): a flood of refusals that reach no decision is
counted per caller and written once a second, so it cannot fill the device that sync mode needs — and
every refused request is still accounted for, exactly.

Before: 8 connections pipelining `GET /v1/credentials` without a token wrote about 10,000 audited 401s a
second; on a full device sync mode then answers 503 AuditUnavailable to everyone."""

import os
import socket
import subprocess
import threading
import time

from helpers.osusers import require_root

PIPELINE = 50  # requests written at once on each connection


def flood(port, seconds, counts):
    """Pipelines token-less requests on one connection for `seconds`; counts the 401 answers."""
    request = b"GET /v1/credentials?location=s3://b/k HTTP/1.1\r\nHost: localhost\r\n\r\n" * PIPELINE
    deadline = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        buffered = b""
        while time.monotonic() < deadline:
            s.sendall(request)
            seen = 0
            while seen < PIPELINE:
                buffered += s.recv(65536)
                while b"\r\n\r\n" in buffered:
                    head, _, rest = buffered.partition(b"\r\n\r\n")
                    length = int(next(l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
                                 .split(b":")[1])
                    if len(rest) < length:
                        break
                    # Refused for the token, or (past the caller's share of requests) throttled.
                    assert head.startswith((b"HTTP/1.1 401", b"HTTP/1.1 429")), head
                    buffered = rest[length:]
                    seen += 1
            counts.append(seen)


def test_a_refusal_flood_cannot_fill_a_small_audit_disk(moto, agent_factory, tmp_path):
    require_root("mounting a tmpfs for the audit log")
    analytics = moto.role("analytics")
    mount = tmp_path / "audit"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        agent = agent_factory(
            mappings=[{"name": "analytics", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]}],
            config={"audit": {"path": str(mount / "audit.log"), "durability": "sync"}},
        )
        counts = []
        threads = [threading.Thread(target=flood, args=(agent.port, 4, counts)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        refused = sum(counts)
        assert refused > 2000, f"the flood sent only {refused} requests"

        # The owner of the device is still served: sync mode has room for its record.
        r = agent.credentials(location=f"s3://{analytics['bucket']}/x")
        assert r.status_code == 200, r.text
        assert agent.stop() == 0
        records = agent.audit_records()
        tallies = [r for r in records if r["event"] == "refused"]
        assert sum(t["count"] for t in tallies) == refused
        assert all(set(t["codes"]) <= {"Unauthorized", "Throttled"} and sum(t["codes"].values()) == t["count"]
                   and t["caller_uid"] == os.geteuid() for t in tallies)
        # About one line per second of flood, not one per request.
        assert len(tallies) <= 4 + 3, len(tallies)
        size = os.path.getsize(mount / "audit.log")
        assert size < 64 * 1024, f"{refused} refusals took {size} bytes of audit log"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
