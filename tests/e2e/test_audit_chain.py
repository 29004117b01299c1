"""Tamper evidence (SPEC §7.2, issue 21): a real audit log, written by the agent through credential
decisions, denials, STS failures, refusals, reloads, rotation and a restart, carries one unbroken hash
chain; `emrfs-role-agent audit verify` accepts it as written and names, by file and line, each kind of
tampering done to a copy of it: a removed, altered, reordered or inserted record, a missing rotated file,
a truncated tail. Both rotation styles keep the chain verifiable: rename + SIGHUP (by hand, and with the
shipped config/logrotate rule: dateext, compress, delaycompress) and copytruncate.

The chain is also recomputed here from its definition (helpers/audit_chain.py), so a log that `audit
verify` accepts but that does not follow the definition fails too."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from helpers.agent import AgentFactory
from helpers import logrotate_rule
from helpers.audit_chain import check_chain, read_chained, seal, unchain, verify
from helpers.net import wait_until
from helpers.sts_proxy import StsProxy

SECRET_BUCKET = "secret-bucket"


def mappings_for(world):
    return [
        {"name": "no-secrets", "effect": "deny", "prefixes": [f"s3://{SECRET_BUCKET}/"]},
        {"name": "analytics", "role": world.role("analytics")["arn"],
         "prefixes": [f"s3://{world.role('analytics')['bucket']}/"]},
        {"name": "untrusted", "role": world.role("untrusted")["arn"],
         "prefixes": [f"s3://{world.role('untrusted')['bucket']}/"]},
        {"name": "sts-down", "role": world.role("engineering")["arn"],
         "prefixes": [f"s3://{world.role('engineering')['bucket']}/"]},
    ]


def traffic(agent, world, tag, sts_down=False):
    """One request of each kind of answer: allowed (STS, then the cache), denied by a rule, by no rule and
    by STS, refused for its token (tallied in a `refused` record), and (sts_down) an STS outage."""
    bucket = world.role("analytics")["bucket"]
    asks = [
        (f"s3://{bucket}/{tag}/a", None, 200),
        (f"s3://{bucket}/{tag}/b", None, 200),
        (f"s3://{SECRET_BUCKET}/{tag}", None, 403),
        (f"s3://nobody-bucket/{tag}", None, 403),
        (f"s3://{world.role('untrusted')['bucket']}/{tag}", None, 403),
        (f"s3://{bucket}/{tag}/c", {"Authorization": "wrong"}, 401),
    ]
    if sts_down:
        asks.append((f"s3://{world.role('engineering')['bucket']}/{tag}", None, 503))
    for location, headers, status in asks:
        r = agent.credentials(location=location, headers=headers)
        assert r.status_code == status, (location, r.text)


def wait_for_reopen(path):
    """After SIGHUP: the agent writes its config_loaded record into a new file at `path`."""
    wait_until(lambda: os.path.exists(path) and any('"event":"config_loaded"' in line for line in read_chained(path)),
               30, f"config_loaded in the new {path}")


def rename_and_reopen(agent, path, rotated):
    os.rename(path, rotated)  # what logrotate does first
    agent.send_signal(signal.SIGHUP)
    wait_for_reopen(path)


class ChainWorld:
    """An STS proxy (STS is down for the engineering role) and agents with the four rules, all writing
    the audit log `path`."""

    def __init__(self, world, factory, path, config=None):
        self.world = world
        self.factory = factory
        self.path = str(path)
        self.proxy = StsProxy(world.endpoint, unavailable={world.role("engineering")["arn"]})
        self.config = {
            "audit": {"path": self.path},
            "sts": {"endpoint_url": self.proxy.endpoint, "call_timeout": "1s"},
            "fallback": {"mode": "deny"},
            **(config or {}),
        }

    def start(self):
        return self.factory.start(mappings=mappings_for(self.world), config=self.config)

    def stop(self):
        self.factory.stop_all()
        self.proxy.stop()


@pytest.fixture(scope="module")
def real_log(moto_server, tmp_path_factory):
    """Three files written by the agent: audit.log-1, audit.log-2 (each renamed away, then SIGHUP) and
    audit.log, which the agent stopped and started again on. Every kind of record is in them."""
    world = moto_server.setup()
    logs = tmp_path_factory.mktemp("chain-log")
    chain_world = ChainWorld(world, AgentFactory(tmp_path_factory, world), logs / "audit.log")
    try:
        agent = chain_world.start()
        traffic(agent, world, "one", sts_down=True)
        rename_and_reopen(agent, chain_world.path, logs / "audit.log-1")
        traffic(agent, world, "two")
        traffic(agent, world, "three")
        rename_and_reopen(agent, chain_world.path, logs / "audit.log-2")
        traffic(agent, world, "four")
        assert agent.stop() == 0
        agent = chain_world.start()
        traffic(agent, world, "five")
        assert agent.stop() == 0
    finally:
        chain_world.stop()
        moto_server.set_enforcement(False)
    return [logs / "audit.log-1", logs / "audit.log-2", logs / "audit.log"]


@pytest.fixture
def chain_world(moto, agent_factory, tmp_path):
    logs = tmp_path / "log"
    logs.mkdir()
    w = ChainWorld(moto, agent_factory, logs / "audit.log")
    yield w
    w.stop()


def events(records):
    return [r["event"] for r in records]


def assert_intact(files, records=None):
    """`audit verify` over files (given newest first, to show the order does not matter) exits 0 and
    counts every record; returns the verdict."""
    if records is None:
        records = [line for f in files for line in read_chained(f)]
    v = verify(*reversed(files))
    assert v.rc == 0, v.output
    first = json.loads(read_chained(files[0])[0])["seq"]
    assert v.intact == (len(records), first, first + len(records) - 1, len(files)), v.output
    return v


# ---- an untouched log ----

def test_an_untouched_log_across_rotation_and_a_restart_verifies(real_log):
    records = check_chain(real_log)
    assert records[0]["seq"] == 1
    assert_intact(real_log, records)
    # Everything the agent writes is in the chain: decisions of every outcome, refusals, STS calls,
    # lifecycle records of both runs.
    kinds = {(r["event"], r.get("outcome")) for r in records}
    for kind in [("start", None), ("config_loaded", None), ("stop", None), ("refused", None), ("sts_assume_role", None),
                 ("credentials", "allow"), ("credentials", "deny"), ("credentials", "error")]:
        assert kind in kinds, kind
    # The restart continued the chain in the same file: stop, then start with the next seq.
    last_file = [json.loads(line) for line in read_chained(real_log[2])]
    starts = [i for i, r in enumerate(last_file) if r["event"] == "start"]
    assert len(starts) == 1 and last_file[starts[0] - 1]["event"] == "stop", events(last_file)
    assert last_file[starts[0]]["seq"] == last_file[starts[0] - 1]["seq"] + 1
    assert "prev_file" not in last_file[starts[0]]
    # Each rotated file names the one before it.
    assert json.loads(read_chained(real_log[1])[0])["prev_file"] == "audit.log-1"
    assert json.loads(read_chained(real_log[2])[0])["prev_file"] == "audit.log-2"


def test_a_restart_on_a_rotated_away_log_continues_from_the_state_file(chain_world):
    """Stopped, its log renamed away (logrotate ran meanwhile): the next run starts a new file and
    continues the chain from `<audit file>.chain`."""
    agent = chain_world.start()
    traffic(agent, chain_world.world, "before")
    assert agent.stop() == 0
    assert os.path.exists(chain_world.path + ".chain")
    rotated = chain_world.path + ".1"
    os.rename(chain_world.path, rotated)
    agent = chain_world.start()
    traffic(agent, chain_world.world, "after")
    assert agent.stop() == 0

    files = [rotated, chain_world.path]
    old = read_chained(rotated)
    first_new = json.loads(read_chained(chain_world.path)[0])
    assert first_new["event"] == "start" and first_new["seq"] == json.loads(old[-1])["seq"] + 1
    check_chain(files, prev_files=[first_new["prev_file"]])
    assert_intact(files)
    # The previous record is in audit.log.1 now: the name it was renamed to (SPEC §7.2, rename rotation).
    assert first_new["prev_file"] == "audit.log.1", first_new


# ---- tampering, each named by file and line ----

def cut_lines(path):
    with open(path) as f:
        return f.read().split("\n")[:-1]


def put_lines(path, lines):
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def credential_lines(lines, **match):
    """Indexes (from 0) of credentials records in lines whose fields have the given values, neither the
    file's first line nor its last."""
    out = []
    for i, line in enumerate(lines[1:-1], 1):
        r = json.loads(line)
        if r["event"] == "credentials" and all(r.get(k) == v for k, v in match.items()):
            out.append(i)
    assert out, match
    return out


def with_field(line, key, value):
    """`line` with the top-level string `key` set to `value`, every other byte as it was."""
    old = f'"{key}":{json.dumps(json.loads(line)[key])}'
    assert line.count(old) == 1, (key, line)
    return line.replace(old, f'"{key}":{json.dumps(value)}')


def remove(files):
    lines = cut_lines(files[1])
    i = credential_lines(lines, outcome="allow")[0]
    del lines[i]
    put_lines(files[1], lines)
    return files[1], i + 1, "removed"  # the record after the gap is the first that does not follow


def alter(key, value):
    def tamper(files):
        lines = cut_lines(files[1])
        i = [i for i in credential_lines(lines) if json.loads(lines[i])[key] not in (None, value)][0]
        lines[i] = with_field(lines[i], key, value)
        put_lines(files[1], lines)
        return files[1], i + 1, "altered"

    return tamper


def reorder(files):
    lines = cut_lines(files[1])
    i = credential_lines(lines, outcome="deny")[0]
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    put_lines(files[1], lines)
    return files[1], i + 1, "reordered"


def insert_copy(files):
    """A copy of a real record, with another user, right after it."""
    lines = cut_lines(files[1])
    i = credential_lines(lines, outcome="allow")[0]
    lines.insert(i + 1, with_field(lines[i], "user", "mallory"))
    put_lines(files[1], lines)
    return files[1], i + 2, "inserted"


def insert_forged(chain):
    """A record made up from scratch: the next seq, a fresh request id, a user of its own, and a chain
    computed as the agent would (chain="computed") or any 64 hex digits (chain="random")."""

    def tamper(files):
        lines = cut_lines(files[1])
        i = credential_lines(lines, outcome="allow")[0]
        record = json.loads(lines[i])
        record.update(seq=record["seq"] + 1, request_id="f0f0f0f0-0000-4000-8000-000000000000", user="mallory",
                      caller_user="mallory", caller_uid=31337)
        del record["chain"]
        line = seal(unchain(lines[i])[1], record)
        if chain == "random":
            line = line[:-67] + '"' + "ab" * 32 + '"}'
        lines.insert(i + 1, line)
        put_lines(files[1], lines)
        return files[1], i + 2, "inserted"

    return tamper


def drop_middle_file(files):
    os.unlink(files[1])
    del files[1]
    return files[1], 1, "missing file"  # its first record names a file that is not there


def truncate_tail(files):
    with open(files[2], "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        f.truncate(size - 20)  # the last line loses its end, newline included
    return files[2], len(read_chained(files[2])), "truncated"


TAMPERING = {
    "removed": remove,
    "altered-user": alter("user", "mallory"),
    "altered-role_arn": alter("role_arn", "arn:aws:iam::123456789012:role/admin"),
    "reordered": reorder,
    "inserted-copy": insert_copy,
    "inserted-forged-computed-chain": insert_forged("computed"),
    "inserted-forged-random-chain": insert_forged("random"),
    "missing-file": drop_middle_file,
    "truncated-tail": truncate_tail,
}


@pytest.mark.parametrize("how", TAMPERING)
def test_tampering_is_named_by_file_and_line(real_log, tmp_path, how):
    files = []
    for f in real_log:
        shutil.copy(f, tmp_path / f.name)
        files.append(tmp_path / f.name)
    path, line, kind = TAMPERING[how](files)
    v = verify(*reversed(files))
    assert v.rc == 1, v.output
    assert v.broken, v.output
    named, at, said, _ = v.broken
    assert (named in (str(path), path.name), at, said) == (True, line, kind), (f"want {path.name}:{line}: {kind}",
                                                                              v.output)


# ---- rotation ----

def test_copytruncate_keeps_the_chain(chain_world, tmp_path):
    """The real logrotate with a copytruncate rule, run while the agent is idle; more requests after it."""
    agent = chain_world.start()
    traffic(agent, chain_world.world, "before")
    wait_until(lambda: any('"event":"refused"' in line for line in read_chained(chain_world.path)), 10,
               "the refusal's tally")
    conf = tmp_path / "copytruncate.conf"
    conf.write_text(f"{chain_world.path} {{\n    rotate 5\n    copytruncate\n    missingok\n}}\n")
    r = subprocess.run([logrotate(), "--force", "-s", str(tmp_path / "state"), str(conf)], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    copy = chain_world.path + ".1"
    assert os.path.getsize(chain_world.path) == 0 and os.path.getsize(copy) > 0
    traffic(agent, chain_world.world, "after")
    assert agent.stop() == 0

    files = [copy, chain_world.path]
    with open(chain_world.path, "rb") as f:
        assert not f.read(1).startswith(b"\0"), "the agent kept writing at its old offset: a hole of NULs"
    # copytruncate leaves the agent no other name to give than its own file's.
    records = check_chain(files, prev_files=["audit.log"])
    assert events(records).count("start") == 1
    assert_intact(files, records)


def test_the_shipped_logrotate_rule_keeps_the_chain(chain_world, tmp_path):
    """config/logrotate (dateext, compress, delaycompress; SIGHUP in postrotate), run twice by the real
    logrotate: the first rotated file is gzip'd by the second run, and verify reads it as it is."""
    agent = chain_world.start()
    logs = os.path.dirname(chain_world.path)
    conf = logrotate_rule.for_agent(agent.pid, chain_world.path, str(tmp_path))

    def rotate():
        r = subprocess.run([logrotate(), "--force", "-s", str(tmp_path / "state"), str(conf)], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
        assert r.returncode == 0, (r.stderr, sorted(os.listdir(logs)))
        wait_for_reopen(chain_world.path)

    traffic(agent, chain_world.world, "one", sts_down=True)
    rotate()
    first = [n for n in os.listdir(logs) if n.startswith("audit.log-")]
    assert len(first) == 1 and not first[0].endswith(".gz"), first  # delaycompress
    traffic(agent, chain_world.world, "two")
    # dateformat -%Y%m%d-%s: a second rotation within the same second would want the same name (and
    # logrotate's time(2) may lag a few milliseconds behind this clock).
    named_at = int(first[0].rsplit("-", 1)[1])
    wait_until(lambda: time.time() >= named_at + 1.05, 5, "the next second")
    rotate()
    traffic(agent, chain_world.world, "three")
    assert agent.stop() == 0

    rotated = sorted(n for n in os.listdir(logs) if n.startswith("audit.log-"))
    assert rotated[0] == first[0] + ".gz" and len(rotated) == 2 and not rotated[1].endswith(".gz"), rotated
    files = [os.path.join(logs, n) for n in rotated] + [chain_world.path]
    records = check_chain(files)  # prev_file: the names logrotate renamed them to, without .gz
    assert {r["event"] for r in records} >= {"start", "config_loaded", "credentials", "refused", "stop"}
    assert_intact(files, records)


def logrotate():
    path = shutil.which("logrotate") or "/usr/sbin/logrotate"
    assert os.access(path, os.X_OK), "logrotate is missing (scripts/setup-test-env.sh installs it)"
    return path


# ---- without the chain ----

def test_chain_false_writes_no_chain_fields(chain_world):
    chain_world.config["audit"]["chain"] = False
    agent = chain_world.start()
    traffic(agent, chain_world.world, "plain")
    rename_and_reopen(agent, chain_world.path, chain_world.path + ".1")
    traffic(agent, chain_world.world, "plain-again")
    assert agent.stop() == 0
    records = [json.loads(line) for f in (chain_world.path + ".1", chain_world.path) for line in read_chained(f)]
    assert {"start", "config_loaded", "credentials", "refused", "stop"} <= set(events(records))
    with_chain = [r for r in records if {"seq", "prev_file", "chain"} & set(r)]
    assert not with_chain, with_chain[0]


def test_verify_without_a_file_is_a_usage_error():
    v = verify()
    assert v.rc == 2 and not v.intact and not v.broken, v.output
