"""The audit log (SPEC §7, issue 4): one record per credentials request whatever its outcome, written
before the response leaves; fail closed on a full or vanished log; SIGHUP reopens, SIGTERM flushes and
ends with `stop`; lifecycle records; no secret anywhere.

Responses carry `X-Request-Id`, the `request_id` of their record: that is how these tests join what
clients received with what the log says."""

import concurrent.futures
import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading

import pytest
import requests

from helpers import logrotate_rule
from helpers.net import wait_http_ok, wait_until
from helpers.osusers import require_root

# SPEC §7: every credentials record has exactly these keys, null where absent (`via`, SPEC §5.1: which
# listener it came through; `grant_target`, SPEC §4.1: the grant an access-grants rule matched).
CREDENTIAL_FIELDS = {
    "v", "time", "event", "request_id", "via", "outcome", "status", "caller_uid", "caller_user", "user", "asserted",
    "groups", "location", "access", "rule_index", "rule_name", "effect", "role_arn", "session_name", "source_identity",
    "access_key_id", "expiration", "source", "sts_request_id", "grant_target", "error_code", "latency_us",
}
# The hash chain's fields (SPEC §7.2, test_audit_chain.py) around every record; the fields below are the rest.
CHAIN_FIELDS = {"seq", "prev_file", "chain"}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
EXPIRATION = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def credential_records(records):
    return [r for r in records if r["event"] == "credentials"]


def by_request_id(records):
    out = {}
    for r in credential_records(records):
        assert r["request_id"] not in out, f"two records for request {r['request_id']}"
        out[r["request_id"]] = r
    return out


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fields_of(r):
    return set(r) - CHAIN_FIELDS


def check_credentials_record(r):
    assert fields_of(r) == CREDENTIAL_FIELDS, sorted(fields_of(r) ^ CREDENTIAL_FIELDS)
    assert r["v"] == 1 and TIME.match(r["time"]), r
    assert r["outcome"] in ("allow", "deny", "error"), r
    assert r["via"] == "api", r  # this suite asks the HTTP API; test_imds covers the metadata door
    assert isinstance(r["status"], int) and isinstance(r["latency_us"], int) and isinstance(r["asserted"], bool)
    if r["status"] == 200:
        assert r["outcome"] == "allow" and r["error_code"] is None, r
        assert r["access_key_id"] and EXPIRATION.match(r["expiration"]), r
        assert r["source"] in ("cache", "sts", "stale", "instance-profile"), r
    else:
        assert r["outcome"] in ("deny", "error") and r["error_code"], r
        assert r["access_key_id"] is None and r["expiration"] is None and r["source"] is None, r


def response_facts(r):
    """(request id, status, error code or access key id) of one response."""
    body = r.json()
    return r.headers.get("X-Request-Id"), r.status_code, body.get("code") or body.get("AccessKeyId")


def secrets_of(bodies):
    out = set()
    for b in bodies:
        out.add(b.get("SecretAccessKey"))
        out.add(b.get("Token"))
    out.discard(None)
    return out


def test_2000_mixed_requests_from_50_clients_are_each_accounted_for(moto, four_rule_world):
    require_root("running the agent as another user than its callers")
    world, agent = four_rule_world, four_rule_world.agent
    # The agent runs as nobody, its callers (these threads) as root: a record naming the agent's own uid
    # instead of its caller's fails below.
    assert agent.uid != os.geteuid()
    analytics, engineering, untrusted = world.analytics, world.engineering, world.untrusted
    plan = (["allow"] * 1100 + ["deny-rule"] * 200 + ["no-rule"] * 100 + ["sts-denied"] * 150
            + ["bad-token"] * 150 + ["bad-param"] * 150 + ["impersonation"] * 110 + ["sts-down"] * 40)
    assert len(plan) == 2000
    random.Random(4).shuffle(plan)
    local = threading.local()

    def send(item):
        i, kind = item
        if not hasattr(local, "session"):
            local.session = requests.Session()
        params, headers = world.request(kind, i)
        r = local.session.get(agent.credentials_url, params=params, headers=headers, timeout=60)
        return kind, r.status_code, r.headers.get("X-Request-Id"), r.json()

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(send, enumerate(plan)))
    metrics = agent.get("/metrics", token=False).text
    assert agent.stop() == 0

    # Each kind got its expected answer.
    for kind, status, _, body in answers:
        assert (status, body.get("code")) == world.expected(kind), (kind, body)

    records = agent.audit_records()
    recorded = by_request_id(records)
    # Refusals before any decision (a wrong token, a bad parameter) are counted per caller in `refused`
    # records, once a second; every other request has a record of its own.
    tallied = [a for a in answers if a[0] in ("bad-token", "bad-param")]
    refused = [r for r in records if r["event"] == "refused"]
    assert sum(r["count"] for r in refused) == len(tallied) == 300
    codes = {}
    for r in refused:
        assert r["caller_uid"] == os.geteuid() and r["caller_user"] == "root", r
        for code, n in r["codes"].items():
            codes[code] = codes.get(code, 0) + n
    assert codes == {"Unauthorized": 150, "InvalidRequest": 150}
    assert len(recorded) == len(answers) - len(tallied) == 1700
    for kind, status, request_id, body in answers:
        assert request_id, "a response without X-Request-Id"
        if kind in ("bad-token", "bad-param"):
            assert request_id not in recorded
            continue
        r = recorded.pop(request_id)
        check_credentials_record(r)
        assert r["status"] == status, (kind, r)
        assert r["error_code"] == body.get("code"), (kind, r)
        assert r["access_key_id"] == body.get("AccessKeyId"), (kind, r)
    assert not recorded

    # The record says why.
    sample = {kind: rec for kind, _, rid, _ in answers if rid in by_request_id(records)
              for rec in [by_request_id(records)[rid]]}
    assert sample["deny-rule"]["rule_name"] == "no-secrets" and sample["deny-rule"]["effect"] == "deny"
    assert sample["deny-rule"]["outcome"] == "deny" and sample["deny-rule"]["role_arn"] is None
    assert sample["no-rule"]["rule_index"] is None and sample["no-rule"]["outcome"] == "deny"
    assert sample["sts-denied"]["sts_request_id"] and sample["sts-denied"]["role_arn"] == untrusted["arn"]
    assert sample["sts-down"]["outcome"] == "error" and sample["sts-down"]["role_arn"] == engineering["arn"]
    assert sample["impersonation"]["asserted"] is True and sample["impersonation"]["user"] == "someone-else"
    # A guessed token still names its caller (in its `refused` record, checked above).
    # Each decision names its rule, by position (from 0) and by name.
    decided_by = {"deny-rule": (0, "no-secrets"), "allow": (1, "analytics"), "sts-denied": (2, "untrusted"),
                  "sts-down": (3, "sts-down")}
    assert {kind: (sample[kind]["rule_index"], sample[kind]["rule_name"]) for kind in decided_by} == decided_by
    allow = sample["allow"]
    assert allow["caller_uid"] == os.geteuid() and allow["caller_user"] == "root"
    assert allow["role_arn"] == analytics["arn"]
    assert allow["session_name"] and allow["location"].startswith(f"s3://{analytics['bucket']}/part-")
    assert allow["groups"] and allow["user"] == allow["caller_user"] and allow["asserted"] is False

    # One STS call per session: the analytics session was fetched once, the rest came from the cache.
    sources = [by_request_id(records)[rid]["source"] for k, _, rid, _ in answers if k == "allow"]
    assert sources.count("sts") == 1 and sources.count("cache") == 1099
    # As STS saw it: one AssumeRole for the allowed role, one for the refused role (its 150
    # requests shared that call or its cached refusal).
    assert world.proxy.calls[analytics["arn"]] == 1 and world.proxy.calls[untrusted["arn"]] == 1

    # No secret in the log, stderr or /metrics.
    handed = secrets_of(body for _, status, _, body in answers if status == 200)
    handed.add(moto.user["secret_access_key"])
    assert len(handed) == 3  # one session (secret key + token) and the agent's own secret key
    agent.assert_no_secrets(handed)
    assert not [s for s in handed if s in metrics]


def test_full_device_fails_closed_and_recovers_without_restart(moto, agent_factory, tmp_path):
    """Sync mode, the audit log on a 1 MiB tmpfs: while it is full no credentials leave (503
    AuditUnavailable, /readyz 503); with room again it serves, same process."""
    require_root("mounting a tmpfs for the audit log")
    analytics = moto.role("analytics")
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount)], check=True)
    agent = None
    try:
        filler = mount / "filler"
        fill(filler)
        agent = agent_factory(
            mappings=[{"name": "analytics", "role": analytics["arn"]}],
            config={"audit": {"path": str(mount / "audit.log"), "durability": "sync"}},
            wait_ready=False,
        )
        wait_http_ok(f"{agent.url}/healthz", 30, agent.process)
        assert agent.get("/readyz", token=False).status_code == 503

        refused = []
        for i in range(20):
            r = agent.credentials(location=f"s3://{analytics['bucket']}/{i}")
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "AuditUnavailable"
            assert "SecretAccessKey" not in r.text
            refused.append(r.headers["X-Request-Id"])
        # Every outcome fails closed, not only the credentials that would leave.
        # A refusal before any decision hands out nothing: it is answered, and counted for a `refused`
        # record that is kept until the log takes it.
        r = agent.credentials(headers={"Authorization": "wrong"})
        assert (r.status_code, r.json()["code"]) == (401, "Unauthorized")
        assert agent.get("/readyz", token=False).status_code == 503
        assert agent.process.poll() is None

        # Room again: ready, serving, and the lifecycle records held back meanwhile are there.
        filler.unlink()
        wait_http_ok(f"{agent.url}/readyz", 10, agent.process)
        served = []
        for i in range(5):
            r = agent.credentials(location=f"s3://{analytics['bucket']}/{i}")
            assert r.status_code == 200, r.text
            served.append(r.headers["X-Request-Id"])
        records = agent.audit_records()
        assert [r["event"] for r in records[:2]] == ["start", "config_loaded"]
        ids = by_request_id(records)
        assert all(rid in ids for rid in served)
        assert not [rid for rid in refused if rid in ids]

        # Full again while serving (the file's last page may still take a record or two): no
        # response is 200 without its record, and it fails closed before long.
        fill(mount / "filler2")
        statuses = []
        for i in range(40):
            r = agent.credentials(location=f"s3://{analytics['bucket']}/again-{i}")
            assert r.status_code in (200, 503), r.text
            statuses.append((r.status_code, r.headers["X-Request-Id"]))
        assert statuses[-1][0] == 503 and sum(1 for s, _ in statuses if s == 503) >= 30
        assert agent.get("/readyz", token=False).status_code == 503
        (mount / "filler2").unlink()
        wait_http_ok(f"{agent.url}/readyz", 10, agent.process)
        assert agent.credentials(location=f"s3://{analytics['bucket']}/x").status_code == 200
        # Counted: every refusal, and the failed writes.
        metrics = agent.get("/metrics", token=False).text
        refusals = 20 + sum(1 for s, _ in statuses if s == 503)
        assert f'emrfs_role_agent_requests_total{{outcome="error",code="AuditUnavailable"}} {refusals}\n' in metrics
        assert 'emrfs_role_agent_requests_total{outcome="deny",code="Unauthorized"} 1\n' in metrics
        errors = re.search(r"^emrfs_role_agent_audit_write_errors_total (\d+)$", metrics, re.M)
        assert errors and int(errors.group(1)) >= refusals, metrics
        assert "emrfs_role_agent_audit_records_dropped_total 0\n" in metrics
        assert agent.stop() == 0
        ids = by_request_id(agent.audit_records())
        for status, rid in statuses:
            assert (rid in ids) == (status == 200), (status, rid)
            if status == 200:
                assert ids[rid]["status"] == 200
        assert agent.audit_records()[-1]["event"] == "stop"
        assert "audit write failed" in agent.stderr_text()
    finally:
        if agent is not None:
            agent.stop()
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path):
    """Writes zeros to `path` until its file system is full."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    # Leftovers smaller than a chunk.
    with open(path, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


def test_deleted_file_is_recreated_and_a_vanished_directory_fails_closed(moto, agent_factory, tmp_path):
    analytics = moto.role("analytics")
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    path = log_dir / "audit.log"
    agent = agent_factory(mappings=[{"name": "a", "role": analytics["arn"]}], config={"audit": {"path": str(path)}})
    assert agent.credentials().status_code == 200

    # Deleted: the next record goes to a new file at the same path, nothing is swallowed.
    path.unlink()
    r = agent.credentials()
    assert r.status_code == 200
    assert [x["request_id"] for x in credential_records(read_lines(path))] == [r.headers["X-Request-Id"]]

    # Nowhere to write: 503 and not ready, until the directory is back.
    shutil.rmtree(log_dir)
    r = agent.credentials()
    assert (r.status_code, r.json()["code"]) == (503, "AuditUnavailable")
    assert agent.get("/readyz", token=False).status_code == 503
    log_dir.mkdir()
    wait_http_ok(f"{agent.url}/readyz", 10, agent.process)
    r = agent.credentials()
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] in by_request_id(read_lines(path))


@pytest.mark.parametrize("durability", ["sync", "buffered"])
def test_sigterm_under_200_concurrent_clients_loses_no_record(moto, agent_factory, durability):
    analytics = moto.role("analytics")
    agent = agent_factory(
        mappings=[{"name": "a", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]}],
        config={"audit": {"durability": durability}},
    )
    received = []
    lock = threading.Lock()
    go = threading.Event()

    def client(n):
        session = requests.Session()
        go.wait()
        while True:
            try:
                r = session.get(agent.credentials_url, headers={"Authorization": agent.token},
                                params={"location": f"s3://{analytics['bucket']}/{n}"}, timeout=30)
            except requests.RequestException:
                return
            with lock:
                received.append((r.headers.get("X-Request-Id"), r.status_code))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(200)]
    for t in threads:
        t.start()
    go.set()
    wait_until(lambda: len(received) >= 400, 60, "400 answers before the signal")
    with lock:
        at_signal = len(received)
    agent.send_signal(signal.SIGTERM)
    assert agent.process.wait(30) == 0
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    # Requests in flight at the signal were finished and answered.
    assert len(received) > at_signal

    records = agent.audit_records()
    assert records[-1]["event"] == "stop" and records[-1]["reason"]
    assert records[0]["event"] == "start"
    ids = by_request_id(records)
    assert len(received) >= 400
    for rid, status in received:
        assert rid in ids, f"response {rid} ({status}) has no record"
        assert ids[rid]["status"] == status
    assert [r["event"] for r in records].count("stop") == 1


class Load:
    """Clients asking the agent for credentials in a loop, on keep-alive connections, until `stop()`.

    `received` holds (X-Request-Id, status) of every answer; `answers_after(n)` waits until the clients got
    `n` more answers, so load keeps arriving through each step of a test."""

    def __init__(self, agent, clients=8):
        self.agent = agent
        self.received = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _client(self):
        session = requests.Session()
        while not self._stop.is_set():
            r = session.get(self.agent.credentials_url, headers={"Authorization": self.agent.token}, timeout=30)
            with self._lock:
                self.received.append((r.headers["X-Request-Id"], r.status_code))

    def answers_after(self, n):
        with self._lock:
            want = len(self.received) + n
        wait_until(lambda: len(self.received) >= want, 30, f"{n} more answers")

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)


def test_rename_and_sighup_moves_new_records_to_a_new_file_and_loses_none(moto, agent_factory):
    analytics = moto.role("analytics")
    agent = agent_factory(mappings=[{"name": "a", "role": analytics["arn"]}])
    rotated = agent.audit_path + ".1"
    load = Load(agent)
    load.answers_after(20)
    os.rename(agent.audit_path, rotated)  # what logrotate does first
    # Until SIGHUP the renamed file keeps receiving records.
    before_hup = agent.credentials().headers["X-Request-Id"]
    load.answers_after(20)
    agent.send_signal(signal.SIGHUP)
    wait_until(lambda: os.path.exists(agent.audit_path) and any(
        r["event"] == "config_loaded" for r in read_lines(agent.audit_path)), 30, "config_loaded in the new file")
    after_hup = agent.credentials().headers["X-Request-Id"]
    load.answers_after(20)
    load.stop()
    assert agent.stop() == 0
    received = load.received

    old, new = read_lines(rotated), read_lines(agent.audit_path)
    assert before_hup in by_request_id(old)
    assert after_hup in by_request_id(new)
    assert new[-1]["event"] == "stop"
    old_ids, new_ids = by_request_id(old), by_request_id(new)
    assert old_ids and new_ids and not set(old_ids) & set(new_ids)
    everything = {**old_ids, **new_ids}
    assert len(received) > 50
    for rid, status in received:
        assert everything[rid]["status"] == status == 200
    assert len(everything) == len(received) + 2
    # The rotated file ends where the new one starts.
    assert max(r["time"] for r in old) <= min(r["time"] for r in new if r["event"] != "credentials")


def test_logrotate_with_the_shipped_rule_under_load_loses_no_record(moto, agent_factory, tmp_path):
    """config/logrotate, run by the real logrotate while clients keep asking; its postrotate signals the agent."""
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    assert os.access(logrotate, os.X_OK), "logrotate is missing (scripts/setup-test-env.sh installs it)"
    logs = tmp_path / "log"
    logs.mkdir()
    agent = agent_factory(mappings=[{"name": "a", "role": moto.role("analytics")["arn"]}],
                          config={"audit": {"path": str(logs / "audit.log")}})
    # The rule as shipped, with its paths in tmp_path and `systemctl kill` replaced by a kill of this agent.
    conf = logrotate_rule.for_agent(agent.pid, logs / "audit.log", str(tmp_path))

    load = Load(agent)
    load.answers_after(30)
    r = subprocess.run([logrotate, "--force", "-s", str(tmp_path / "state"), str(conf)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    wait_until(lambda: any(x["event"] == "config_loaded" for x in read_lines(logs / "audit.log")), 30,
               "config_loaded in the new file")
    load.answers_after(30)
    load.stop()
    assert agent.stop() == 0
    received = load.received

    (rotated,) = [p for p in os.listdir(logs) if p not in ("audit.log", "audit.log.chain")]
    old, new = read_lines(logs / rotated), read_lines(logs / "audit.log")
    assert old[0]["event"] == "start" and new[-1]["event"] == "stop"
    assert oct((logs / "audit.log").stat().st_mode & 0o777) == "0o600"  # logrotate's file, kept by the agent
    old_ids, new_ids = by_request_id(old), by_request_id(new)
    assert old_ids and new_ids and not set(old_ids) & set(new_ids)
    everything = {**old_ids, **new_ids}
    assert len(everything) == len(received) > 50
    for rid, status in received:
        assert everything[rid]["status"] == status == 200


def test_a_client_that_hangs_up_still_gets_its_request_recorded(moto, agent_factory, sts_proxy_factory):
    analytics = moto.role("analytics")
    proxy = sts_proxy_factory(delay={analytics["arn"]: 1.5})
    agent = agent_factory(
        mappings=[{"name": "slow", "role": analytics["arn"]}],
        config={"sts": {"endpoint_url": proxy.endpoint}},
    )
    with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as s:
        s.sendall(
            f"GET /v1/credentials?location=s3://hangup/x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {agent.token}\r\n\r\n".encode()
        )
        # Hang up while the agent is working on it: its STS call has reached the proxy, which holds it.
        wait_until(lambda: proxy.calls[analytics["arn"]] >= 1, 15, "the STS call")
    wait_until(lambda: any(r["event"] == "sts_assume_role" for r in agent.audit_records()), 15, "the STS call's record")
    wait_until(lambda: [r for r in credential_records(agent.audit_records()) if r["location"] == "s3://hangup/x"],
               30, "the credentials record")
    (record,) = [r for r in credential_records(agent.audit_records()) if r["location"] == "s3://hangup/x"]
    check_credentials_record(record)
    assert record["status"] == 200 and record["source"] == "sts"


def test_lifecycle_records(moto, agent_factory):
    analytics, untrusted = moto.role("analytics"), moto.role("untrusted")
    agent = agent_factory(
        mappings=[
            {"name": "analytics", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]},
            {"name": "untrusted", "role": untrusted["arn"], "prefixes": [f"s3://{untrusted['bucket']}/"]},
        ],
        config={"sts": {"session_name": "{user}-{rule}", "source_identity": "{user}"}},
    )
    ok = agent.credentials(location=f"s3://{analytics['bucket']}/x")
    assert ok.status_code == 200
    denied = agent.credentials(location=f"s3://{untrusted['bucket']}/x")
    assert denied.status_code == 403
    # A valid reload, then an invalid one (the old config keeps serving).
    agent.send_signal(signal.SIGHUP)
    wait_until(lambda: [r["event"] for r in agent.audit_records()].count("config_loaded") == 2, 30, "the reload")
    agent.write_config({**agent.config, "server": {**agent.config["server"], "not_a_key": 1}})
    agent.send_signal(signal.SIGHUP)
    wait_until(lambda: any(r["event"] == "config_rejected" for r in agent.audit_records()), 30, "the rejection")
    assert agent.credentials(location=f"s3://{analytics['bucket']}/y").status_code == 200
    assert agent.stop() == 0

    records = agent.audit_records()
    for r in records:
        assert r["v"] == 1 and TIME.match(r["time"]), r
    times = [r["time"] for r in records]
    assert times == sorted(times)
    events = [r["event"] for r in records]
    assert events[:2] == ["start", "config_loaded"] and events[-1] == "stop"

    start = records[0]
    assert fields_of(start) == {"v", "time", "event", "version", "pid", "config"}
    assert start["pid"] == agent.pid and start["config"] == agent.config_path and start["version"]
    loaded = [r for r in records if r["event"] == "config_loaded"]
    assert len(loaded) == 2
    for r in loaded:
        assert fields_of(r) == {"v", "time", "event", "config", "rules"}
        assert r["config"] == agent.config_path and r["rules"] == 2
    (rejected,) = [r for r in records if r["event"] == "config_rejected"]
    assert fields_of(rejected) == {"v", "time", "event", "config", "error"}
    assert rejected["config"] == agent.config_path and "not_a_key" in rejected["error"]
    stop = records[-1]
    assert fields_of(stop) == {"v", "time", "event", "reason"} and stop["reason"]

    calls = [r for r in records if r["event"] == "sts_assume_role"]
    fields = {"v", "time", "event", "role_arn", "session_name", "result", "sts_request_id", "access_key_id",
              "error_code", "duration_us"}
    for r in calls:
        assert fields_of(r) == fields, sorted(fields_of(r) ^ fields)
        assert isinstance(r["duration_us"], int) and r["duration_us"] > 0
    (good,) = [r for r in calls if r["role_arn"] == analytics["arn"]]
    (bad,) = [r for r in calls if r["role_arn"] == untrusted["arn"]]
    user = credential_records(records)[0]["user"]
    assert good["result"] == "ok" and good["session_name"] == f"{user}-analytics" and good["sts_request_id"]
    assert good["access_key_id"] == ok.json()["AccessKeyId"] and good["error_code"] is None
    assert bad["result"] == "denied" and bad["error_code"] == "AccessDenied" and bad["sts_request_id"]
    assert bad["access_key_id"] is None and bad["session_name"] == f"{user}-untrusted"

    # The credentials record names the same session and STS request as the call that made it.
    rec = by_request_id(records)[ok.headers["X-Request-Id"]]
    assert rec["session_name"] == good["session_name"] and rec["sts_request_id"] == good["sts_request_id"]
    assert rec["source_identity"] == user and rec["access_key_id"] == good["access_key_id"]
    rec = by_request_id(records)[denied.headers["X-Request-Id"]]
    assert rec["sts_request_id"] == bad["sts_request_id"] and rec["error_code"] == "AccessDenied"
    for r in credential_records(records):
        check_credentials_record(r)


def test_audit_to_stdout(moto, agent_factory):
    agent = agent_factory(mappings=[{"name": "a", "role": moto.role("analytics")["arn"]}],
                          config={"audit": {"path": "-"}})
    r = agent.credentials()
    assert r.status_code == 200
    assert agent.stop() == 0
    records = agent.audit_records()
    assert records[0]["event"] == "start" and records[-1]["event"] == "stop"
    assert r.headers["X-Request-Id"] in by_request_id(records)
