"""Filling the audit disk from a tenant's shell (SPEC §7): a flood of refusals that reach no decision is
counted per caller and written once a second, so it cannot fill the device that sync mode needs — and
every refused request is still accounted for, exactly, under the uid that sent it.

Before: 8 connections pipelining `GET /v1/credentials` without a token wrote about 10,000 audited 401s a
second; on a full device sync mode then answers 503 AuditUnavailable to everyone.

The flood is a number of requests, not a number of seconds: enough that one audit line per refusal
would not fit on the device, however fast or slow this machine answers them. The agent runs as nobody
and the flood comes from root, so that a tally naming the agent's own uid fails."""

import os
import pathlib
import socket
import subprocess
import tempfile
import threading
import time

from helpers.osusers import NOBODY, require_root

PIPELINE = 50  # requests written at once on each connection
ROUNDS = 40  # pipelines sent on each connection
CONNECTIONS = 8
FLOOD = CONNECTIONS * ROUNDS * PIPELINE  # 16,000 requests
DEVICE = 4 * 1024 * 1024  # the audit log's tmpfs


def flood(port, counts, errors):
    """Pipelines ROUNDS x PIPELINE token-less requests on one connection; counts the answers (or keeps
    the error that stopped it)."""
    try:
        _flood(port, counts)
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(repr(e))


def _flood(port, counts):
    request = b"GET /v1/credentials?location=s3://b/k HTTP/1.1\r\nHost: localhost\r\n\r\n" * PIPELINE
    answered = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        buffered = b""
        for _ in range(ROUNDS):
            s.sendall(request)
            seen = 0
            while seen < PIPELINE:
                chunk = s.recv(65536)
                assert chunk, f"the agent closed the connection after {answered + seen} answers"
                buffered += chunk
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
            answered += seen
    counts.append(answered)


def test_a_refusal_flood_cannot_fill_a_small_audit_disk(moto, agent_factory):
    require_root("mounting a tmpfs for the audit log and running the agent as another user")
    analytics = moto.role("analytics")
    # Under /tmp itself: pytest's own directories are root's alone, and the agent (nobody) writes here.
    mount = pathlib.Path(tempfile.mkdtemp(prefix="emrfs-audit-flood-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DEVICE},mode=0755,uid={NOBODY},gid={NOBODY}", "tmpfs",
                    str(mount)], check=True)
    try:
        agent = agent_factory(
            mappings=[{"name": "analytics", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]}],
            config={"audit": {"path": str(mount / "audit.log"), "durability": "sync"}},
            user=(NOBODY, NOBODY),
        )
        assert agent.uid != os.geteuid()
        started = time.monotonic()
        counts, errors = [], []
        threads = [threading.Thread(target=flood, args=(agent.port, counts, errors)) for _ in range(CONNECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert not errors, errors[0]
        assert counts == [ROUNDS * PIPELINE] * CONNECTIONS, "every request of the flood was answered"

        # The owner of the device is still served: sync mode has room for its record.
        r = agent.credentials(location=f"s3://{analytics['bucket']}/x")
        assert r.status_code == 200, r.text
        assert agent.stop() == 0
        elapsed = time.monotonic() - started
        records = agent.audit_records()
        # One record per refusal would not have fit: the device holds fewer lines than the flood's requests.
        allowed = next(rec for rec in records if rec["event"] == "credentials")
        with open(mount / "audit.log") as f:
            line = next(l for l in f if allowed["request_id"] in l)
        assert FLOOD * len(line) > DEVICE, "the flood is too small to show anything"

        tallies = [rec for rec in records if rec["event"] == "refused"]
        assert sum(t["count"] for t in tallies) == FLOOD
        for t in tallies:
            assert set(t["codes"]) <= {"Unauthorized", "Throttled"} and sum(t["codes"].values()) == t["count"], t
            # Tallied under the uid that sent the flood, not the agent's own.
            assert (t["caller_uid"], t["caller_user"]) == (os.geteuid(), "root"), t
        # Written once a second, however long the flood took: one line per caller per second, not one per request.
        assert len(tallies) <= elapsed + 2, f"{len(tallies)} tally lines in {elapsed:.1f}s"
        size = os.path.getsize(mount / "audit.log")
        assert size <= (len(tallies) + 8) * 1024, f"{FLOOD} refusals took {size} bytes of audit log"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        os.rmdir(mount)
