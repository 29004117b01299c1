"""S3 Access Grants through the real clients (issue 20, SPEC §4.1): boto3 with the Python plugin and Hadoop S3A
with the per-request hooks read a prefix under a READ grant with the credentials GetDataAccess vended, one
GetDataAccess call for many keys, and a write under the READ-only grant fails with the client's access-denied
error, before anything reaches S3.

The agent's rule is `effect = "access-grants"` for `s3://lake/` with the analyst role as grantee; the stand-in
(helpers/access_grants_standin.py, moto in the same process) holds a READ grant on `s3://lake/curated/*` and
logs every GetDataAccess call. A recording proxy in front of its moto (helpers/s3_recorder.py) logs the key that
signed each S3 request: it must be the vended key the agent's audit log names for the grant.
"""

import json
import os
import subprocess
import sys

import pytest

from helpers import jvm
from helpers.access_grants_standin import MotoWithAccessGrants
from helpers.agent import AgentFactory
from helpers.s3_recorder import S3Recorder
from test_python_plugin import PLUGIN, plugin_env, plugin_site  # noqa: F401  (a fixture, used by name)

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

ACCOUNT = "123456789012"
BUCKET = "lake"
ROOT = f"s3://{BUCKET}/"
KEYS = ["curated/t/part-0.parquet", "curated/t/part-1 é 100%.parquet", "curated/t/dt=2026-01-01 00%3A00/part-2"]
DENIED_WRITE = "curated/t/new.parquet"
SESSION = "io.emrfsroleagent.e2e.S3aSession"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = MotoWithAccessGrants(str(tmp_path_factory.mktemp("grants")))
    yield s
    s.stop()


@pytest.fixture
def world(server):
    w = server.setup(roles=[{"name": "grants-location", "bucket": BUCKET}, {"name": "analyst"}])
    w.client("iam").put_role_policy(
        RoleName="analyst", PolicyName="get-data-access",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetDataAccess",
            "Resource": f"arn:aws:s3:{w.region}:{ACCOUNT}:access-grants/default"}]}))
    server.set_grants(w.role("grants-location")["arn"], [
        {"grantee": w.role("analyst")["arn"], "scope": f"{ROOT}curated/*", "permission": "READ"}])
    s3 = w.client("s3")
    for key in KEYS + ["raw/secret.csv"]:
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"contents of {key}".encode())
    server.reset_calls()
    yield w
    server.set_enforcement(False)


@pytest.fixture
def agent(server, world, tmp_path_factory):
    factory = AgentFactory(tmp_path_factory, world)
    a = factory.start(
        mappings=[{"name": "analysts-grants", "effect": "access-grants", "role": world.role("analyst")["arn"],
                   "prefixes": [ROOT]}],
        config={"fallback": {"mode": "deny"},
                "access_grants": {"endpoint_url": f"http://localhost:{server.grants_port}", "duration": "1h"}},
        env={"HTTP_PROXY": server.grants_endpoint, "NO_PROXY": "127.0.0.1"},
    )
    yield a
    factory.stop_all()


@pytest.fixture
def recorder(world):
    r = S3Recorder(world.endpoint)
    yield r
    r.stop()


def grant_calls(server):
    return [(c["target"], c["permission"], c["status"], c.get("matched")) for c in server.calls()]


def check_one_read_grant(server, world, agent, recorder):
    """One GetDataAccess READ call served every read; every S3 request was signed by the key it vended; the
    write asked WRITE, was refused, and never reached S3."""
    calls = grant_calls(server)
    reads = [c for c in calls if c[1] == "READ"]
    assert len(reads) == 1 and reads[0][2] == 200 and reads[0][3] == f"{ROOT}curated/*", calls
    writes = [c for c in calls if c[1] == "WRITE"]
    assert writes and all(c[2] == 403 and c[0] == ROOT + DENIED_WRITE for c in writes), calls
    assert len(calls) == len(reads) + len(writes), calls

    records = [r for r in agent.audit_records() if r.get("event") == "credentials"]
    vended = {r["access_key_id"] for r in records if r.get("access_key_id")}
    assert len(vended) == 1, records
    grant = [r for r in records if r.get("access_key_id")][0]
    assert (grant["effect"], grant["grant_target"], grant["role_arn"]) == (
        "access-grants", f"{ROOT}curated/*", world.role("analyst")["arn"]), grant
    requests = recorder.snapshot()
    assert requests, "no S3 request reached the recorder"
    assert {r.access_key_id for r in requests} == vended, [str(r) for r in requests]
    assert {r.method for r in requests} <= {"GET", "HEAD"}, [str(r) for r in requests]
    assert not [str(r) for r in requests if r.key == DENIED_WRITE and r.method != "HEAD" and r.method != "GET"]
    for key in KEYS[:2]:
        assert any(r.method == "GET" and r.key == key for r in requests), (key, [str(r) for r in requests])
    return records


BOTO3 = r"""
import json, sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

s3_endpoint, bucket, keys, denied = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
s3 = boto3.client("s3", endpoint_url=s3_endpoint, config=Config(s3={"addressing_style": "path"}))

def report(op, key, f):
    try:
        print(json.dumps({"op": op, "key": key, "ok": True, "out": f()}))
    except ClientError as e:
        print(json.dumps({"op": op, "key": key, "ok": False, "code": e.response["Error"]["Code"],
                          "status": e.response["ResponseMetadata"].get("HTTPStatusCode"), "error": str(e)}))

for key in keys:
    report("get", key, lambda key=key: s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
report("head", keys[1], lambda: s3.head_object(Bucket=bucket, Key=keys[1])["ContentLength"])
report("list", "curated/t/", lambda: sorted(o["Key"] for o in s3.list_objects_v2(
    Bucket=bucket, Prefix="curated/t/")["Contents"]))
report("put", denied, lambda: s3.put_object(Bucket=bucket, Key=denied, Body=b"not allowed")["ETag"])
print("DONE")
"""


def test_boto3_reads_under_a_read_grant_with_one_call_and_a_write_is_refused(server, world, agent, recorder,
                                                                              plugin_site, tmp_path):
    env = plugin_env(world.source_env(), agent, plugin_site, tmp_path)
    r = subprocess.run([sys.executable, "-c", BOTO3, recorder.endpoint, BUCKET, json.dumps(KEYS), DENIED_WRITE],
                       env=env, capture_output=True, text=True, timeout=300)
    assert "DONE" in r.stdout.splitlines(), r.stdout + r.stderr[-6000:]
    got = {(x["op"], x["key"]): x for x in (json.loads(line) for line in r.stdout.splitlines()
                                            if line.startswith("{"))}
    for key in KEYS:
        assert got[("get", key)].get("out") == f"contents of {key}", got[("get", key)]
    assert got[("head", KEYS[1])]["ok"], got
    assert got[("list", "curated/t/")].get("out") == sorted(KEYS), got[("list", "curated/t/")]
    denied = got[("put", DENIED_WRITE)]
    assert (denied["ok"], denied["code"], denied["status"]) == (False, "AccessDenied", 403), denied
    assert f"refused write credentials for {ROOT}{DENIED_WRITE}: HTTP 403 AccessDenied" in denied["error"], denied

    check_one_read_grant(server, world, agent, recorder)
    assert "Contents" not in world.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=DENIED_WRITE)


# moto's IAM enforcement rejects every SDK v1 signature (test_s3a_scopes.test_moto_rejects_sdk_v1_signatures_and_why):
# Hadoop 3.3.6 runs with it off, the recorder and the stand-in's call log still prove whose key signed what.
@pytest.mark.parametrize("runtime,enforce", [pytest.param("hadoop-3.4.1", True, id="hadoop-3.4.1-iam-on"),
                                             pytest.param("hadoop-3.3.6", False, id="hadoop-3.3.6-iam-off")])
def test_s3a_reads_under_a_read_grant_with_one_call_and_a_write_is_refused(java_build, server, world, agent,
                                                                           recorder, tmp_path, runtime, enforce):
    if not enforce:
        server.set_enforcement(False)

    def path(key):
        return f"s3a://{BUCKET}/{key}"

    reads = [f"read:{path(k)}" for k in KEYS[:2]]
    listing, write = f"list:{path('curated/t')}", f"write:{path(DENIED_WRITE)}"
    conf_dir = str(tmp_path / "conf")
    jvm.write_site(conf_dir, jvm.s3a_site(recorder.endpoint, agent, jvm.RUNTIME_SETTINGS[runtime],
                                          {"fs.s3a.endpoint.region": "us-east-1"}))
    out = jvm.run(jvm.classpath(java_build, runtime, conf_dir), SESSION, [f"s3a://{BUCKET}/", *reads, listing, write],
                  timeout=600)
    lines = out.stdout.splitlines()
    assert "DONE" in lines, f"the session did not finish:\n{out.stdout}\n{out.stderr[-6000:]}"
    for op, key in zip(reads, KEYS):
        assert f"OK {op} contents of {key}" in lines, out.stdout + out.stderr[-6000:]
    assert f"OK {listing} part-0.parquet part-1 é 100%.parquet dt=2026-01-01 00%3A00" in lines, out.stdout
    failed = [line for line in lines if line.startswith(f"FAIL {write}: ")]
    assert failed and failed[0].startswith(f"FAIL {write}: java.nio.file.AccessDeniedException"), out.stdout
    assert f"refused credentials to write {ROOT}{DENIED_WRITE}" in failed[0], failed[0]
    assert "HTTP 403 AccessDenied" in failed[0], failed[0]

    check_one_read_grant(server, world, agent, recorder)
    assert "Contents" not in world.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=DENIED_WRITE)
