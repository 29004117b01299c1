"""Hadoop S3A decides per request for the exact key it accesses, and a refusal fails at once (issue 18).

Keys are bytes: a key containing `%2F` is not a key containing `/`, `100%off.csv` is a legal key, `café` is
`café`. One S3A filesystem reads, lists and writes keys as real lakes have them (`%`, `%2F`, `%25`, `+`, spaces,
non-ASCII, Hive-escaped partitions) through the recording S3 (helpers/s3_recorder.py) against the real agent.
Each S3 request must be signed by the credentials of the rule its LITERAL key matches, and each agent request
must name a literal key the job accessed (joined through the agent's audit log); the deny
`s3://lake/*/secret/**` cannot be bypassed with `x%2Fy/secret/f`.

With `[fallback] mode = "deny"` and rules for prefixes only, the documented wiring works on Hadoop 3.3.6 (SDK
v1), 3.4.1 with SDK 2.24.6 (which resolves the filesystem provider's identity before any interceptor runs) and
3.4.1 with a current SDK: allowed prefixes work, nothing asks the agent for the bucket root, and a denied read
fails with java.nio.file.AccessDeniedException in one attempt, with S3A's retry settings at their defaults.
"""

import os
import sys

import pytest

from helpers import jvm
from test_s3a_scopes import keys_by_role

BUCKET = "lake"
RUNTIMES = ["hadoop-3.3.6", "hadoop-3.4.1", "hadoop-3.4.1-sdk-current"]
SESSION = "io.emrfsroleagent.e2e.S3aSession"
sys.path.insert(0, os.path.join(jvm.REPO, "bootstrap"))
import emr_conf  # noqa: E402
ROOT = f"s3://{BUCKET}/"

pytestmark = pytest.mark.moto(
    roles=[{"name": n, "bucket": BUCKET} for n in ("team-a", "team-b", "team-c", "lake-rest")], enforce_iam=False
)

# Literal prefixes, as S3 has the keys.
XY = "x%2Fy/"                        # a key with %2F: one path segment, not x/ then y/
CAFE = "café/"
HIVE = "t/dt=2026-01-01 00%3A00/"    # Hive's escaping of "2026-01-01 00:00"


def run_session(java_build, runtime, site, tmp_path, ops):
    conf_dir = str(tmp_path / "conf")
    jvm.write_site(conf_dir, site)
    out = jvm.run(jvm.classpath(java_build, runtime, conf_dir), SESSION, [f"s3a://{BUCKET}/", *ops], timeout=600)
    assert "DONE" in out.stdout.splitlines(), f"the session did not finish:\n{out.stdout}\n{out.stderr[-6000:]}"
    results, took = {}, {}
    for line in out.stdout.splitlines():
        for op in ops:  # operations contain spaces: match them whole
            if line == f"OK {op}" or line.startswith(f"OK {op} "):
                results[op] = ("OK", line[len(f"OK {op} "):])
            elif line.startswith(f"FAIL {op}: "):
                results[op] = ("FAIL", line[len(f"FAIL {op}: "):])
            elif line.startswith("TOOK ") and line.endswith(f" {op}"):
                took[op] = int(line.split(" ", 2)[1])
    return out, results, took


def credential_records(agent):
    return [r for r in agent.audit_records() if r.get("event") == "credentials"]


def access_of(request):
    return "read" if request.method in ("GET", "HEAD") else "write"


# ---- keys are bytes ----

def literal_mappings(moto):
    return [
        {"name": "secret", "effect": "deny", "prefixes": [f"s3://{BUCKET}/*/secret/**"]},
        {"name": "team-a", "role": moto.role("team-a")["arn"], "prefixes": [ROOT + XY]},
        {"name": "team-b", "role": moto.role("team-b")["arn"], "prefixes": [ROOT + CAFE]},
        {"name": "team-c", "role": moto.role("team-c")["arn"], "prefixes": [ROOT + HIVE]},
        {"name": "lake-rest", "role": moto.role("lake-rest")["arn"], "prefixes": [ROOT]},
    ]


def literal_rule(moto, key):
    """The role the rules above give a literal key (None: denied)."""
    first = key.split("/", 1)
    if len(first) == 2 and first[1].startswith("secret/"):
        return None
    for prefix, role in ((XY, "team-a"), (CAFE, "team-b"), (HIVE, "team-c")):
        if key.startswith(prefix):
            return moto.role(role)["arn"]
    return moto.role("lake-rest")["arn"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_request_is_decided_for_its_literal_key(java_build, moto, agent_factory, recorder, tmp_path, runtime):
    agent = agent_factory(mappings=literal_mappings(moto), config={"fallback": {"mode": "deny"}})
    s3 = moto.client("s3")
    objects = {
        XY + "data.csv": b"team A's rows",
        XY + "secret/f": b"the deny must hold for this",
        "x/y/data.csv": b"not under x%2Fy/",
        CAFE + "menu/a.txt": b"croissant",
        CAFE + "menu/b.txt": b"pain au chocolat",
        HIVE + "part-0": b"hive rows",
        "100%off.csv": b"a bare percent sign",
        "a b+c/100%25.txt": b"spaces, plus, %25",
    }
    for key, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    def path(key):
        return f"s3a://{BUCKET}/{key}"

    reads = [XY + "data.csv", "x/y/data.csv", CAFE + "menu/a.txt", CAFE + "menu/b.txt", HIVE + "part-0",
             "100%off.csv", "a b+c/100%25.txt"]
    denied = XY + "secret/f"
    ops = [f"read:{path(k)}" for k in reads]
    ops += [f"list:{path(CAFE + 'menu')}", f"list:{path(HIVE.rstrip('/'))}",
            f"write:{path(CAFE + 'menu/c.txt')}", f"write:{path('a b+c/new 100%.txt')}", f"read:{path(denied)}"]
    out, results, _ = run_session(java_build, runtime, jvm.s3a_site(
        recorder.endpoint, agent, jvm.RUNTIME_SETTINGS[runtime], {"fs.s3a.endpoint.region": "us-east-1"}),
        tmp_path, ops)

    for key in reads:
        assert results.get(f"read:{path(key)}") == ("OK", objects[key].decode()), (key, results, out.stderr[-6000:])
    assert results.get(f"list:{path(CAFE + 'menu')}") == ("OK", "a.txt b.txt"), results
    assert results.get(f"list:{path(HIVE.rstrip('/'))}") == ("OK", "part-0"), results
    for key in (CAFE + "menu/c.txt", "a b+c/new 100%.txt"):
        assert results.get(f"write:{path(key)}", ("",))[0] == "OK", (key, results, out.stderr[-6000:])
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == f"written to {path(key)}".encode()

    # The deny holds for the literal key: x%2Fy is one segment, so */secret/** matches it.
    status, message = results.get(f"read:{path(denied)}", ("missing", ""))
    assert status == "FAIL" and message.startswith("java.nio.file.AccessDeniedException"), message
    assert f"refused credentials to read {ROOT}{denied}" in message and "HTTP 403 AccessDenied" in message, message

    requests = recorder.snapshot()
    roles = keys_by_role(agent)
    assert not [str(r) for r in requests if r.location and "/secret/" in r.location], "a denied key reached S3"
    wrong = [f"{r}: signed by {roles.get(r.access_key_id, 'a key the agent never handed out')}, expected "
             f"{literal_rule(moto, r.location[len(ROOT):]) if r.location else 'lake-rest (bucket root)'}"
             for r in requests
             if roles.get(r.access_key_id, "missing") != literal_rule(moto, (r.location or ROOT)[len(ROOT):])]
    assert not wrong, "requests signed with the wrong credentials:\n" + "\n".join(wrong)
    # Every literal prefix was on the wire with its own role.
    signed = {roles[r.access_key_id] for r in requests}
    assert signed == {moto.role(n)["arn"] for n in ("team-a", "team-b", "team-c", "lake-rest")}, signed

    # Each agent request names a literal key or prefix this job accessed, with the access it used it for.
    records = credential_records(agent)
    accessed = {(r.location or ROOT, access_of(r)) for r in requests} | {(ROOT + denied, "read")}
    accessed |= {(ROOT + k, "write") for r in requests for k in r.delete_keys}  # a bulk delete's keys
    asked = [(rec["location"], rec["access"]) for rec in records]
    assert asked and all(a in accessed for a in asked), (sorted(set(asked) - accessed), sorted(accessed))
    assert (ROOT + denied, "read") in asked and (ROOT + "100%off.csv", "read") in asked, asked
    deny_records = [rec for rec in records if rec["location"] == ROOT + denied]
    assert [rec["outcome"] for rec in deny_records] == ["deny"], deny_records

    # The glob leaves every answer in this bucket without Scope (it may match under any prefix): each location
    # is asked for once per access, however many requests it takes (HEAD, then GET).
    assert len(asked) == len(set(asked)), sorted(asked)


def scope_mappings(moto):
    return [
        {"name": "secret", "effect": "deny", "prefixes": [ROOT + XY + "secret/"]},
        {"name": "team-a", "role": moto.role("team-a")["arn"], "prefixes": [ROOT + XY]},
        {"name": "team-b", "role": moto.role("team-b")["arn"], "prefixes": [ROOT + CAFE]},
        {"name": "team-c", "role": moto.role("team-c")["arn"], "prefixes": [ROOT + HIVE]},
    ]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_literal_scope_is_a_hit_for_every_key_under_it(java_build, moto, agent_factory, recorder, tmp_path,
                                                         runtime):
    """Scope comes back as literal as the key (`s3://lake/café/`, not `caf%C3%A9`), and the client compares it
    literally: one agent request per scope and access however many keys the job touches under it."""
    agent = agent_factory(mappings=scope_mappings(moto), config={"fallback": {"mode": "deny"}})
    s3 = moto.client("s3")
    cafe = [CAFE + "menu/a.txt", CAFE + "menu/b.txt", CAFE + "carte des vins.txt", CAFE + "100%bio+.txt"]
    hive = [HIVE + "part-0", HIVE + "part-1"]
    for key in cafe + hive + [XY + "secret/f"]:
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    ops = [f"read:s3a://{BUCKET}/{k}" for k in cafe + hive]
    ops += [f"list:s3a://{BUCKET}/{CAFE}menu", f"list:s3a://{BUCKET}/{HIVE.rstrip('/')}",
            f"read:s3a://{BUCKET}/{XY}secret/f", f"read:s3a://{BUCKET}/{XY}secret/f"]
    out, results, _ = run_session(java_build, runtime, jvm.s3a_site(
        recorder.endpoint, agent, jvm.RUNTIME_SETTINGS[runtime], {"fs.s3a.endpoint.region": "us-east-1"}),
        tmp_path, ops)
    for key in cafe + hive:
        assert results.get(f"read:s3a://{BUCKET}/{key}") == ("OK", key), (key, results, out.stderr[-6000:])
    assert results.get(f"list:s3a://{BUCKET}/{CAFE}menu") == ("OK", "a.txt b.txt"), results
    assert results.get(f"read:s3a://{BUCKET}/{XY}secret/f", ("",))[0] == "FAIL", results

    records = credential_records(agent)
    for prefix, role in ((CAFE, "team-b"), (HIVE, "team-c")):
        scope = agent.get(params={"location": ROOT + prefix + "probe", "access": "read"}).json().get("Scope")
        assert scope == ROOT + prefix, f"Scope in literal form: {scope!r}"
        under = [(r["location"], r["access"]) for r in records if r["location"].startswith(ROOT + prefix)]
        assert under == [(ROOT + (cafe if prefix == CAFE else hive)[0], "read")], under
    # The deny carries Scope too: the second denied read asks nothing.
    denies = [r for r in records if r["location"].startswith(ROOT + XY + "secret/")]
    assert [r["outcome"] for r in denies] == ["deny"], denies
    roles = keys_by_role(agent)
    for r in recorder.snapshot():
        want = "team-b" if r.location.startswith(ROOT + CAFE) else "team-c"
        assert roles.get(r.access_key_id) == moto.role(want)["arn"], str(r)


# ---- fallback deny: no bucket-root detour, deny fails at once ----

def prefix_mappings(moto):
    return [
        {"name": "team-a", "role": moto.role("team-a")["arn"], "prefixes": [f"{ROOT}teamA/"]},
        {"name": "team-b", "role": moto.role("team-b")["arn"], "prefixes": [f"{ROOT}teamB/"]},
    ]


def s3a_defaults_site(runtime, agent, recorder):
    """The documented wiring with S3A's own retry settings (attempts, retry limit and interval) left alone."""
    site = jvm.s3a_site(recorder.endpoint, agent, jvm.RUNTIME_SETTINGS[runtime],
                        {"fs.s3a.endpoint.region": "us-east-1"})
    for key in ("fs.s3a.attempts.maximum", "fs.s3a.retry.limit", "fs.s3a.retry.interval"):
        site.pop(key, None)
    return site


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fallback_deny_allowed_prefixes_work_and_a_denied_read_fails_at_once(
        java_build, moto, agent_factory, recorder, tmp_path, runtime):
    agent = agent_factory(mappings=prefix_mappings(moto), config={"fallback": {"mode": "deny"}})
    s3 = moto.client("s3")
    s3.put_object(Bucket=BUCKET, Key="teamA/input/part-0", Body=b"rows of team A")
    s3.put_object(Bucket=BUCKET, Key="scratch/x", Body=b"nobody's")

    listing, read = f"list:s3a://{BUCKET}/teamA/input", f"read:s3a://{BUCKET}/teamA/input/part-0"
    write, denied = f"write:s3a://{BUCKET}/teamB/out/part-0", f"read:s3a://{BUCKET}/scratch/x"
    site = s3a_defaults_site(runtime, agent, recorder)
    assert not any(k.startswith(("fs.s3a.attempts", "fs.s3a.retry")) for k in site), site
    out, results, took = run_session(java_build, runtime, site, tmp_path, [listing, read, write, denied])

    assert results.get(listing) == ("OK", "part-0"), (results, out.stderr[-6000:])
    assert results.get(read) == ("OK", "rows of team A"), (results, out.stderr[-6000:])
    assert results.get(write, ("",))[0] == "OK", (results, out.stderr[-6000:])

    # The denied read: the access-denied error S3A does not retry, with the agent's words.
    status, message = results.get(denied, ("missing", ""))
    assert status == "FAIL" and message.startswith("java.nio.file.AccessDeniedException"), message
    expect = agent.credentials(location=f"{ROOT}scratch/x").json()
    assert expect["message"] in message and "HTTP 403 AccessDenied" in message, (message, expect)
    # One attempt: one deny record from the agent, no S3 request for it, and well inside S3A's retry budget
    # (the retried failure took 93-142 s).
    records = credential_records(agent)
    denies = [r for r in records if r["location"] == f"{ROOT}scratch/x" and r["outcome"] == "deny"]
    assert len(denies) == 2, denies  # the JVM's, then this test's own question above
    assert not [str(r) for r in recorder.snapshot() if r.location and r.location.startswith(f"{ROOT}scratch/")]
    assert took[denied] < 20_000, took

    # No detour through the bucket root: the agent is never asked for it, every request is signed by its prefix.
    assert not [r for r in records if r["location"] in (ROOT, f"s3a://{BUCKET}/")], records
    assert all(r["location"] for r in records), "a request without a location: " + str(records)
    roles = keys_by_role(agent)
    for r in recorder.snapshot():
        want = moto.role("team-a" if (r.location or "").startswith(f"{ROOT}teamA/") else "team-b")["arn"]
        assert roles.get(r.access_key_id) == want, (str(r), roles)


# ---- s3:// through S3A on EMR 6.9-7.9 (bootstrap --s3-via-s3a) ----

def test_s3_uris_through_s3a_are_decided_per_request(java_build, moto, agent_factory, recorder, tmp_path):
    """The bootstrap's --s3-via-s3a wiring for the Hadoop 3.3 line (EMR 6.9-7.9), as emr_conf.py writes it into
    core-site: s3:// paths are served by S3A with its per-request hook, so prefix rules hold for them too."""
    runtime = "hadoop-3.3.6"
    wiring = emr_conf.settings(s3a_sdk="v1", s3_via_s3a=True)["core-site"]
    assert wiring["fs.s3.impl"] == "org.apache.hadoop.fs.s3a.S3AFileSystem", wiring
    agent = agent_factory(mappings=prefix_mappings(moto), config={"fallback": {"mode": "deny"}})
    s3 = moto.client("s3")
    s3.put_object(Bucket=BUCKET, Key="teamA/in/part-0", Body=b"rows of team A")
    s3.put_object(Bucket=BUCKET, Key="scratch/x", Body=b"nobody's")
    ops = [f"read:s3://{BUCKET}/teamA/in/part-0", f"list:s3://{BUCKET}/teamA/in",
           f"write:s3://{BUCKET}/teamB/out/part-0", f"read:s3://{BUCKET}/scratch/x"]
    site = jvm.s3a_site(recorder.endpoint, agent, wiring, {"fs.s3a.endpoint.region": "us-east-1"})
    conf_dir = str(tmp_path / "conf")
    jvm.write_site(conf_dir, site)
    out = jvm.run(jvm.classpath(java_build, runtime, conf_dir), SESSION, [ROOT, *ops], timeout=600)
    assert "DONE" in out.stdout.splitlines(), f"the session did not finish:\n{out.stdout}\n{out.stderr[-6000:]}"
    lines = out.stdout.splitlines()
    assert f"OK {ops[0]} rows of team A" in lines, out.stdout
    assert f"OK {ops[1]} part-0" in lines, out.stdout
    assert any(line.startswith(f"OK {ops[2]}") for line in lines), out.stdout
    denied = [line for line in lines if line.startswith(f"FAIL {ops[3]}: ")]
    assert denied and "java.nio.file.AccessDeniedException" in denied[0], out.stdout

    # Each request signed by its prefix's role, with the location asked for in the s3:// form.
    records = credential_records(agent)
    assert {r["location"] for r in records} >= {f"{ROOT}teamA/in/part-0", f"{ROOT}scratch/x"}, records
    roles = keys_by_role(agent)
    requests = recorder.snapshot()
    assert requests, "no S3 request reached the recorder"
    for r in requests:
        want = moto.role("team-a" if (r.location or "").startswith(f"{ROOT}teamA/") else "team-b")["arn"]
        assert roles.get(r.access_key_id) == want, (str(r), roles)
    assert {roles[r.access_key_id] for r in requests} == {moto.role("team-a")["arn"], moto.role("team-b")["arn"]}
