"""Shipping the audit log to S3 (SPEC §7.3, issue 21): closed segments gzip'd and uploaded under
cluster_id=/instance_id=/dt= partitions, each followed by its digest object, deleted locally only once S3 has
both; an outage keeps them on disk (alert beyond max_backlog, never a dropped record) and shipping resumes by
itself; a restart, a SIGKILL in the middle of an upload and a SIGTERM lose nothing and ship nothing twice;
`audit verify s3://…` checks what was shipped.

moto's S3 sits behind helpers/s3_fault_proxy.py (healthy, 503 SlowDown or connection resets, slow), the agent
ships through it with its own source credentials, which are allowed exactly the IAM statement docs/auditing.md
gives the instance profile. Segments are closed every second and at a few KiB, so that a test sees many.
Each test ends by reading every shipped object back: seq runs 1, 2, … with no gap and no record twice, every
chain and digest holds, and every request the test made is there (helpers/audit_ship.py)."""

import collections
import gzip
import hashlib
import json
import re
import time

import pytest

from helpers.audit_ship import (DIGEST_KEYS, NODE, Archive, check_everything_shipped, grant_shipping,
                                local_segments, metric, ship_config, verify)
from helpers.net import wait_until
from helpers.s3_fault_proxy import S3FaultProxy

BUCKET = "audit-archive"
PREFIX = "emrfs-role-agent/"
BUCKET_URI = f"s3://{BUCKET}/{PREFIX}"

BACKLOG = "emrfs_role_agent_audit_ship_backlog_bytes"
LAST_SUCCESS = "emrfs_role_agent_audit_ship_last_success_timestamp_seconds"
FAILURES = "emrfs_role_agent_audit_ship_failures_total"
SHIPPED = "emrfs_role_agent_audit_ship_segments_total"
EXCEEDED = "emrfs_role_agent_audit_ship_backlog_exceeded"

pytestmark = pytest.mark.moto(buckets=[BUCKET])


@pytest.fixture
def proxy(moto):
    p = S3FaultProxy(moto.endpoint)
    yield p
    p.stop()


@pytest.fixture
def archive(moto):
    return Archive(moto, BUCKET, PREFIX)


@pytest.fixture
def shipping_agent(moto, agent_factory, proxy):
    """start(**ship options): an agent mapping the analytics bucket to its role and shipping through the
    proxy; its source user may assume the role and, from the docs' statement, put the audit objects."""
    grant_shipping(moto, BUCKET_URI)
    analytics = moto.role("analytics")

    def start(**ship):
        return agent_factory(
            mappings=[{"name": "analytics", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]}],
            config=ship_config(proxy.endpoint, BUCKET_URI, **ship))

    return start


def ask(agent, moto, n, tag="req"):
    """n credentials requests for the analytics bucket, each answered 200; their request ids."""
    bucket = moto.role("analytics")["bucket"]
    ids = []
    for i in range(n):
        r = agent.credentials(location=f"s3://{bucket}/{tag}/part-{i:04d}")
        assert r.status_code == 200, r.text
        ids.append(r.headers["X-Request-Id"])
    return ids


def all_shipped(agent):
    """Nothing closed is left on disk and the backlog metric says so."""
    return not local_segments(agent) and metric(agent, BACKLOG) == 0


def uploaded_once(proxy):
    """Every key S3 confirmed so far was PUT once: while the agent runs, nothing is uploaded twice. (At
    SIGTERM an upload in flight may be given up and made again, to the same key with the same bytes: no
    second object, so the tests check that after a stop only through what S3 holds.)"""
    counts = collections.Counter(proxy.puts(status=200))
    return all(n == 1 for n in counts.values()), counts


def test_segments_and_digests_land_under_the_node_partition_and_leave_the_disk(shipping_agent, moto, proxy,
                                                                               archive):
    agent = shipping_agent()
    assert metric(agent, LAST_SUCCESS) == 0 and metric(agent, SHIPPED) == 0
    ids = ask(agent, moto, 30)
    wait_until(lambda: len(archive.segment_keys()) >= 3, 60, "three segments shipped")
    wait_until(lambda: all_shipped(agent), 60, "the segments directory to empty")
    assert metric(agent, SHIPPED) >= 3
    assert metric(agent, LAST_SUCCESS) >= time.time() - 120
    assert metric(agent, FAILURES) == 0 and metric(agent, EXCEEDED) == 0
    ok, counts = uploaded_once(proxy)
    assert ok, counts
    assert agent.stop() == 0
    assert not local_segments(agent)

    segments = archive.segments()
    assert len(segments) >= 4, segments  # three or more during the run, the last at SIGTERM
    for seg in segments:
        # The digest's full shape (its values are checked against the segment in Archive.segments).
        assert set(seg.digest) == DIGEST_KEYS, (seg.key, sorted(set(seg.digest) ^ DIGEST_KEYS))
        assert seg.node == NODE, seg.key
        assert seg.key.startswith(f"{PREFIX}{NODE}dt={seg.dt}/"), seg.key
        # Closed at max_segment (4 KiB): a segment ends with the record that reached it.
        assert len("\n".join(seg.lines[:-1])) < 4096, (seg.key, len(seg.data))
    records = archive.records(segments)
    check_everything_shipped(records, ids, agent=agent)
    # The records left the node: the live file holds none of them.
    assert not agent.audit_records(), agent.audit_records()[:2]
    # Its digest after each object: a digest never names an object S3 does not have yet.
    puts = proxy.puts(status=200)
    for seg in segments:
        digest_key = seg.key[: -len(".jsonl.gz")] + ".digest.json"
        assert puts.index(seg.key) < puts.index(digest_key), (seg.key, puts)


@pytest.mark.parametrize("how", ["503", "reset"])
def test_an_outage_keeps_segments_on_disk_and_shipping_resumes_by_itself(shipping_agent, moto, proxy, archive, how):
    proxy.unavailable(how)
    agent = shipping_agent()
    ids = ask(agent, moto, 20)
    wait_until(lambda: len(local_segments(agent)) >= 2, 30, "segments closed during the outage")
    wait_until(lambda: metric(agent, FAILURES) >= 2, 30, "failed uploads counted")
    assert metric(agent, BACKLOG) > 0
    assert metric(agent, LAST_SUCCESS) == 0 and metric(agent, SHIPPED) == 0
    assert not archive.keys()
    # Credentials keep flowing while S3 is down.
    ids += ask(agent, moto, 10, tag="during")
    waiting = set(local_segments(agent))

    proxy.ok()
    wait_until(lambda: all_shipped(agent), 60, "the backlog shipped after the outage")
    assert metric(agent, SHIPPED) >= len(waiting) and metric(agent, LAST_SUCCESS) > 0
    shipped_names = {key.rsplit("/", 1)[1] for key in archive.segment_keys()}
    assert {name + ".gz" for name in waiting} <= shipped_names, (waiting, shipped_names)
    ok, counts = uploaded_once(proxy)
    assert ok, counts
    assert agent.stop() == 0
    check_everything_shipped(archive.records(), ids, agent=agent)


def test_slow_s3_still_ships_and_credentials_do_not_wait_for_it(shipping_agent, moto, proxy, archive):
    proxy.slow(2)
    agent = shipping_agent()
    ids = ask(agent, moto, 10)
    wait_until(lambda: proxy.in_flight(), 30, "an upload waiting on slow S3")
    # While an upload hangs, a request is answered at once.
    started = time.monotonic()
    ids += ask(agent, moto, 5, tag="while-slow")
    assert time.monotonic() - started < 1.5
    wait_until(lambda: metric(agent, SHIPPED) >= 2, 60, "segments shipped through slow S3")
    assert agent.stop() == 0
    assert not local_segments(agent)
    check_everything_shipped(archive.records(), ids, agent=agent)


def test_restart_mid_backlog_ships_everything_exactly_once(shipping_agent, agent_factory, moto, proxy, archive):
    proxy.unavailable()
    agent = shipping_agent()
    ids = ask(agent, moto, 20)
    wait_until(lambda: len(local_segments(agent)) >= 2, 30, "a backlog")
    assert agent.stop() == 0  # SIGTERM: the open segment is closed too, and cannot be shipped
    left = local_segments(agent)
    assert len(left) >= 3, left
    assert not archive.keys()

    proxy.ok()
    again = agent_factory.restart(agent)
    ids += ask(again, moto, 10, tag="after-restart")
    wait_until(lambda: all_shipped(again), 60, "the backlog of the previous run shipped")
    ok, counts = uploaded_once(proxy)
    assert ok, counts
    assert again.stop() == 0
    shipped_names = {key.rsplit("/", 1)[1] for key in archive.segment_keys()}
    assert {name + ".gz" for name in left} <= shipped_names, (left, shipped_names)
    records = archive.records()  # seq 1, 2, … across both runs, each once
    check_everything_shipped(records, ids, agent=again)
    assert [r["event"] for r in records].count("start") == 2


@pytest.mark.parametrize("landed", [False, True], ids=["before-s3-has-it", "after-s3-has-it"])
def test_sigkill_during_an_upload_loses_nothing_and_duplicates_nothing(shipping_agent, agent_factory, moto, proxy,
                                                                       archive, landed):
    """landed=False: killed while the upload has not reached S3; landed=True: S3 has the object, the agent
    never heard so. Either way the restarted agent ships the segment again, to the same key, the same bytes."""
    agent = shipping_agent()
    ids = ask(agent, moto, 10)
    wait_until(lambda: metric(agent, SHIPPED) >= 1, 30, "a first segment shipped")
    proxy.slow(600, after=landed)
    ids += ask(agent, moto, 10, tag="before-kill")
    wait_until(lambda: proxy.in_flight(), 30, "an upload in flight")
    held = [r.key for r in proxy.snapshot() if r.method == "PUT" and r.status == 0]
    assert held, proxy.snapshot()
    agent.kill()
    key = held[-1]
    name = key.rsplit("/", 1)[1].replace(".digest.json", ".jsonl").replace(".jsonl.gz", ".jsonl")
    assert name in local_segments(agent), (name, local_segments(agent))  # not deleted: never confirmed
    landed_bytes = archive.get(key) if landed else None
    if not landed:
        assert key not in archive.keys()

    proxy.ok()
    again = agent_factory.restart(agent)
    ids += ask(again, moto, 5, tag="after-restart")
    wait_until(lambda: all_shipped(again), 60, "the interrupted segment shipped")
    # Each key S3 confirmed once, the interrupted one included (the killed agent never got its answer).
    ok, counts = uploaded_once(proxy)
    assert ok, counts
    assert again.stop() == 0
    records = archive.records()
    check_everything_shipped(records, ids, agent=again)
    if landed:
        assert archive.get(key) == landed_bytes  # deterministic: the same object, not a second one


def test_sigterm_ships_the_open_segment_before_exit(shipping_agent, moto, proxy, archive):
    # Neither the interval nor the size closes a segment during this test: only SIGTERM does.
    agent = shipping_agent(interval="1h", max_segment="64MiB")
    ids = ask(agent, moto, 15)
    assert metric(agent, SHIPPED) == 0 and not local_segments(agent)
    assert not archive.keys()
    started = time.monotonic()
    assert agent.stop(timeout=30) == 0
    assert time.monotonic() - started < 15  # the drain, then at most 10 s of shipping
    assert not local_segments(agent)
    segments = archive.segments()
    assert len(segments) == 1, segments
    check_everything_shipped(archive.records(segments), ids, agent=agent)


def test_backlog_beyond_max_backlog_alerts_and_drops_nothing(shipping_agent, moto, proxy, archive):
    proxy.unavailable()
    agent = shipping_agent(max_segment="1KiB", max_backlog="4KiB")
    ids = []
    for round_ in range(20):
        ids += ask(agent, moto, 5, tag=f"round-{round_}")
        if metric(agent, BACKLOG) > 4096:
            break
    wait_until(lambda: metric(agent, EXCEEDED) == 1, 30, "backlog_exceeded = 1")
    assert metric(agent, BACKLOG) > 4096
    wait_until(lambda: re.search(r"audit backlog .* exceeds max_backlog", agent.stderr_text()), 30,
               "the max_backlog log line")
    # Beyond the bound the agent keeps writing and serving: nothing is dropped.
    ids += ask(agent, moto, 10, tag="beyond")
    records_dropped = metric(agent, "emrfs_role_agent_audit_records_dropped_total")
    assert records_dropped in (0, None)

    proxy.ok()
    wait_until(lambda: all_shipped(agent), 60, "the backlog shipped")
    wait_until(lambda: metric(agent, EXCEEDED) == 0, 30, "backlog_exceeded back to 0")
    assert agent.stop() == 0
    check_everything_shipped(archive.records(), ids, agent=agent)


def test_audit_verify_checks_what_was_shipped_and_names_a_tampered_or_missing_object(shipping_agent, moto, proxy,
                                                                                     archive):
    agent = shipping_agent()
    ids = ask(agent, moto, 25)
    wait_until(lambda: len(archive.segment_keys()) >= 3, 60, "segments shipped")
    assert agent.stop() == 0
    segments = archive.segments()
    records = archive.records(segments)
    check_everything_shipped(records, ids, agent=agent)

    r = verify(moto, archive.uri)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"intact: {len(records)} records, seq 1..{len(records)} in {len(segments)} files" in r.stdout, r.stdout

    # One record altered in a middle segment, the object re-gzip'd: its digest no longer matches.
    victim = segments[len(segments) // 2]
    line_no = 2
    lines = list(victim.lines)
    record = json.loads(lines[line_no - 1])
    assert record["event"] == "credentials", record
    lines[line_no - 1] = lines[line_no - 1].replace(f'"user":"{record["user"]}"', '"user":"someone-else"')
    assert lines[line_no - 1] != victim.lines[line_no - 1]
    archive.put(victim.key, gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    r = verify(moto, archive.uri)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(rf"BROKEN s3://{BUCKET}/{re.escape(victim.key)}(:\d+)?: ", r.stdout, re.M), r.stdout

    # The digest rewritten to match: the chain still names the line.
    digest_key = victim.key[: -len(".jsonl.gz")] + ".digest.json"
    digest = json.loads(archive.get(digest_key))
    digest["sha256"] = hashlib.sha256(archive.get(victim.key)).hexdigest()
    archive.put(digest_key, json.dumps(digest).encode())
    r = verify(moto, archive.uri)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"BROKEN s3://{BUCKET}/{victim.key}:{line_no}: altered" in r.stdout, r.stdout

    # Put back: intact again. Then one segment deleted (its digest left): named as missing.
    archive.put(victim.key, victim.data)
    archive.put(digest_key, json.dumps(victim.digest).encode())
    assert verify(moto, archive.uri).returncode == 0
    archive.delete(victim.key)
    r = verify(moto, archive.uri)
    assert r.returncode == 1, r.stdout + r.stderr
    stem = re.escape(victim.key[: -len(".jsonl.gz")])
    assert re.search(rf"BROKEN s3://{BUCKET}/{stem}\.(jsonl\.gz|digest\.json)(:\d+)?: missing segment", r.stdout, re.M), \
        r.stdout

    # And with its digest gone too: the gap shows at the segment after it.
    archive.delete(digest_key)
    after = segments[len(segments) // 2 + 1]
    r = verify(moto, archive.uri)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(rf"BROKEN s3://{BUCKET}/{re.escape(after.key)}:1: (missing segment|missing file|removed): ",
                     r.stdout, re.M), r.stdout
    assert victim.name in r.stdout, r.stdout  # and says which segment is gone
