"""Read/write rules through the real clients (issue 20, SPEC §4 `access`, §9): the readers of a lake folder get
a read-only role, writes to it a writer role, and every client asks per S3 operation.

The agent maps `s3://lake/curated/` to the reader role for `access = ["read"]` and to the writer role for
`access = ["write"]`; `s3://lake/staging/` (read and write) to the writer role, so a copy from staging/ into
curated/ reads its source and writes its destination with one session. moto enforces IAM: the reader role's
policy allows only reads, so a write signed by the reader fails at S3 itself. A recording proxy in front of
moto's S3 (helpers/s3_recorder.py) logs the access key that signed each request, joined with the agent's audit
log (role of each key handed out); every GET/HEAD under curated/ must be the reader's, every PUT/POST/DELETE the
writer's. Keys as lakes have them: a space, `%`, non-ASCII.

Clients: boto3 with the Python plugin (clients/python), and Hadoop S3A with the per-request hooks on Hadoop
3.3.6 (SDK v1 request handler) and 3.4.1 (SDK v2 execution interceptor), one JVM run per runtime.
"""

import json
import os
import sys

import pytest

from helpers import jvm
from test_python_plugin import PLUGIN, plugin_env, plugin_site  # noqa: F401  (a fixture, used by name)

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

BUCKET = "lake"
ROOT = f"s3://{BUCKET}/"
ODD = "curated/dt=2026-01-01 00%3A00/café 100%.csv"   # a space, %, an escaped colon, non-ASCII
SESSION = "io.emrfsroleagent.e2e.S3aSession"
BIG = "curated/out/big ü.bin"

pytestmark = pytest.mark.moto(
    roles=[{"name": "curated-reader", "bucket": BUCKET}, {"name": "curated-writer", "bucket": BUCKET}],
    enforce_iam=True,
)


def mappings(moto):
    reader, writer = moto.role("curated-reader")["arn"], moto.role("curated-writer")["arn"]
    return [
        {"name": "curated-writer", "role": writer, "access": ["write"], "prefixes": [ROOT + "curated/"]},
        {"name": "curated-readers", "role": reader, "access": ["read"], "prefixes": [ROOT + "curated/"]},
        {"name": "staging", "role": writer, "prefixes": [ROOT + "staging/"]},
    ]


def read_only(moto):
    """The reader role may read and list the bucket, nothing else (moto enforces it)."""
    moto.client("iam").put_role_policy(
        RoleName="curated-reader", PolicyName="curated-reader-s3",  # replaces moto_setup's s3:* policy
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}]}))


@pytest.fixture
def lake(moto, agent_factory):
    read_only(moto)
    s3 = moto.client("s3")
    for key in (ODD, "curated/t/part-0", "staging/src.csv", "staging/move-me.csv"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"contents of {key}".encode())
    agent = agent_factory(mappings=mappings(moto), config={"fallback": {"mode": "deny"}})
    return agent


def access_of(request):
    return "read" if request.method in ("GET", "HEAD") else "write"


def expected_role(moto, location, access):
    key = (location or ROOT)[len(ROOT):]
    if key.startswith("curated/"):
        return moto.role("curated-reader" if access == "read" else "curated-writer")["arn"]
    if key.startswith("staging/"):
        return moto.role("curated-writer")["arn"]
    return None


def keys_by_role(agent):
    return {r["access_key_id"]: r.get("role_arn") for r in agent.audit_records()
            if r.get("event") == "credentials" and r.get("access_key_id")}


def check_signers(moto, agent, recorder):
    """Every request the recorder saw was signed by the role its location and access get; returns them."""
    roles = keys_by_role(agent)
    requests = recorder.snapshot()
    assert requests, "no S3 request reached the recorder"
    wrong = [f"{r} [{access_of(r)}]: signed by {roles.get(r.access_key_id, 'a key the agent never handed out')},"
             f" expected {expected_role(moto, r.location, access_of(r))}"
             for r in requests if roles.get(r.access_key_id, "none") != expected_role(moto, r.location, access_of(r))]
    assert not wrong, "requests signed with the wrong credentials:\n" + "\n".join(wrong)
    return requests, roles


def asked(agent):
    return [(r.get("location"), r.get("access"), r.get("role_arn")) for r in agent.audit_records()
            if r.get("event") == "credentials"]


def test_a_read_role_cannot_write(moto, lake):
    """The premise of the tests below: moto refuses a write signed by the reader's session."""
    import botocore.exceptions

    read = lake.get(params={"location": ROOT + ODD, "access": "read"})
    assert read.status_code == 200, read.json().get("code")
    assert read.json()["RoleArn"] == moto.role("curated-reader")["arn"], read.json()["RoleArn"]
    s3 = moto.client("s3", credentials=read.json())
    assert s3.get_object(Bucket=BUCKET, Key=ODD)["Body"].read() == f"contents of {ODD}".encode()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key="curated/by-reader", Body=b"x")
    assert e.value.response["Error"]["Code"] == "AccessDenied", e.value.response
    write = lake.get(params={"location": ROOT + ODD, "access": "write"})
    assert write.json().get("RoleArn") == moto.role("curated-writer")["arn"], write.json().get("code")
    # No access named: read and write, which no curated/ rule covers alone: the fallback's deny.
    both = lake.get(params={"location": ROOT + ODD})
    assert (both.status_code, both.json()["code"]) == (403, "AccessDenied"), both.text


# ---- boto3 through the Python plugin ----

BOTO3 = r"""
import json, sys
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

s3_endpoint, bucket, odd = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=s3_endpoint, config=Config(s3={"addressing_style": "path"}))

def report(op, key, f):
    try:
        print(json.dumps({"op": op, "key": key, "ok": True, "out": f()}))
    except ClientError as e:
        print(json.dumps({"op": op, "key": key, "ok": False, "code": e.response["Error"]["Code"],
                          "status": e.response["ResponseMetadata"].get("HTTPStatusCode"), "error": str(e)}))

report("get", odd, lambda: s3.get_object(Bucket=bucket, Key=odd)["Body"].read().decode())
report("head", odd, lambda: s3.head_object(Bucket=bucket, Key=odd)["ContentLength"])
report("list", "curated/", lambda: sorted(o["Key"] for o in s3.list_objects_v2(
    Bucket=bucket, Prefix="curated/")["Contents"]))
new = odd.replace(".csv", " neu.csv")
report("put", new, lambda: s3.put_object(Bucket=bucket, Key=new, Body=b"new rows")["ETag"])
big = "curated/big file ü.bin"
mp = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_concurrency=2)
report("multipart", big, lambda: s3.upload_fileobj(__import__("io").BytesIO(b"x" * (6 * 1024 * 1024)), bucket, big,
                                                   Config=mp))
report("copy", "curated/copied.csv", lambda: s3.copy_object(
    Bucket=bucket, Key="curated/copied.csv", CopySource={"Bucket": bucket, "Key": "staging/src.csv"})[
    "CopyObjectResult"]["ETag"])
report("copy", "curated/copy-within.csv", lambda: s3.copy_object(
    Bucket=bucket, Key="curated/copy-within.csv", CopySource={"Bucket": bucket, "Key": odd}))
report("delete", new, lambda: s3.delete_object(Bucket=bucket, Key=new)["ResponseMetadata"]["HTTPStatusCode"])
report("get", "curated/copied.csv", lambda: s3.get_object(Bucket=bucket, Key="curated/copied.csv")["Body"].read().decode())
print("DONE")
"""


def test_boto3_reads_with_the_reader_and_writes_with_the_writer(moto, lake, recorder, plugin_site, tmp_path):
    import subprocess

    env = plugin_env(moto.source_env(), lake, plugin_site, tmp_path)
    r = subprocess.run([sys.executable, "-c", BOTO3, recorder.endpoint, BUCKET, ODD], env=env, capture_output=True,
                       text=True, timeout=300)
    assert "DONE" in r.stdout.splitlines(), r.stdout + r.stderr[-6000:]
    got = {(x["op"], x["key"]): x for x in (json.loads(line) for line in r.stdout.splitlines()
                                            if line.startswith("{"))}
    new, big = ODD.replace(".csv", " neu.csv"), "curated/big file ü.bin"
    assert got[("get", ODD)].get("out") == f"contents of {ODD}", got[("get", ODD)]
    assert got[("head", ODD)].get("out") == len(f"contents of {ODD}".encode()), got[("head", ODD)]
    assert got[("list", "curated/")].get("out") == sorted([ODD, "curated/t/part-0"]), got[("list", "curated/")]
    for op in (("put", new), ("multipart", big), ("copy", "curated/copied.csv"), ("delete", new)):
        assert got[op]["ok"], got[op]
    assert got[("get", "curated/copied.csv")]["out"] == "contents of staging/src.csv"
    # A copy inside curated/ reads with the reader and writes with the writer: S3 signs a request with one
    # set of credentials, so the plugin refuses it before anything is sent.
    within = got[("copy", "curated/copy-within.csv")]
    assert (within["ok"], within["code"]) == (False, "AccessDenied"), within
    assert "needs one set of credentials for both" in within["error"], within

    s3 = moto.client("s3")
    assert s3.head_object(Bucket=BUCKET, Key=big)["ContentLength"] == 6 * 1024 * 1024
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="curated/copy-within")

    requests, roles = check_signers(moto, lake, recorder)
    reader, writer = moto.role("curated-reader")["arn"], moto.role("curated-writer")["arn"]
    seen = {(r.method, roles[r.access_key_id]) for r in requests}
    assert {("GET", reader), ("HEAD", reader), ("PUT", writer), ("POST", writer), ("DELETE", writer)} <= seen, seen
    # The multipart upload: create, parts, complete, all the writer's.
    multipart = [r for r in requests if r.key == big]
    assert {r.method for r in multipart} == {"POST", "PUT"} and len(multipart) >= 4, [str(r) for r in multipart]
    copy = [r for r in requests if r.copy_source]
    assert [(r.key, roles[r.access_key_id]) for r in copy] == [("curated/copied.csv", writer)], [str(r) for r in copy]
    # The copy asked for its source to read and its destination to write; the odd key by its literal bytes.
    questions = asked(lake)
    # (the destination's write is a hit on the write scope the put before it got: one question per access)
    assert (ROOT + "staging/src.csv", "read", writer) in questions, questions
    assert (ROOT + ODD, "read", reader) in questions and (ROOT + new, "write", writer) in questions, questions
    curated = sorted((acc, role) for loc, acc, role in questions if loc.startswith(ROOT + "curated/"))
    assert curated == [("read", reader), ("write", writer)], questions


# ---- Hadoop S3A with the per-request hooks ----

# moto's IAM enforcement rejects every SDK v1 signature (test_s3a_scopes.test_moto_rejects_sdk_v1_signatures_and_why),
# so Hadoop 3.3.6 runs with it off: the recording proxy still proves which role signed what.
@pytest.mark.parametrize("runtime,enforce", [pytest.param("hadoop-3.3.6", False, id="hadoop-3.3.6-iam-off"),
                                             pytest.param("hadoop-3.4.1", True, id="hadoop-3.4.1-iam-on")])
def test_s3a_reads_with_the_reader_and_writes_with_the_writer(java_build, moto, moto_server, lake, recorder, tmp_path,
                                                              runtime, enforce):
    if not enforce:
        moto_server.set_enforcement(False)
    def path(key):
        return f"s3a://{BUCKET}/{key}"

    written = "curated/out/part 0 ü%.csv"
    ops = [f"read:{path(ODD)}", f"list:{path('curated/t')}", f"write:{path(written)}",
           f"rename:{path('staging/move-me.csv')}={path('curated/t/moved.csv')}", f"delete:{path('curated/t/part-0')}",
           f"writebig:{path(BIG)}=6", f"rename:{path(written)}={path('curated/out/final.csv')}"]
    conf_dir = str(tmp_path / "conf")
    jvm.write_site(conf_dir, jvm.s3a_site(recorder.endpoint, lake, jvm.RUNTIME_SETTINGS[runtime],
                                          {"fs.s3a.endpoint.region": "us-east-1", "fs.s3a.multipart.size": "5M",
                                           "fs.s3a.multipart.threshold": "5M"}))
    out = jvm.run(jvm.classpath(java_build, runtime, conf_dir), SESSION, [ROOT.replace("s3:", "s3a:"), *ops],
                  timeout=600)
    lines = out.stdout.splitlines()
    assert "DONE" in lines, f"the session did not finish:\n{out.stdout}\n{out.stderr[-6000:]}"
    failed = [line for line in lines if line.startswith("FAIL ")]
    # A rename inside curated/ copies with the reader's source and the writer's destination: one S3 request
    # cannot be signed by both, so it fails at once, as S3's access-denied error (docs/clients.md).
    within = [line for line in failed if line.startswith(f"FAIL {ops[-1]}: ")]
    assert within and within[0].startswith(f"FAIL {ops[-1]}: java.nio.file.AccessDeniedException"), out.stdout
    assert "needs one set of credentials for both" in within[0], within[0]
    assert failed == within, "\n".join(failed) + "\n" + out.stderr[-6000:]
    assert f"OK {ops[0]} contents of {ODD}" in lines, out.stdout
    assert f"OK {ops[1]} part-0" in lines, out.stdout

    s3 = moto.client("s3")
    assert s3.get_object(Bucket=BUCKET, Key=written)["Body"].read() == f"written to {path(written)}".encode()
    assert s3.get_object(Bucket=BUCKET, Key="curated/t/moved.csv")["Body"].read() == b"contents of staging/move-me.csv"
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="staging/move-me.csv")
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="curated/t/part-0")

    requests, roles = check_signers(moto, lake, recorder)
    reader, writer = moto.role("curated-reader")["arn"], moto.role("curated-writer")["arn"]
    curated = {(access_of(r), roles[r.access_key_id]) for r in requests if (r.location or "").startswith(ROOT + "curated/")}
    assert curated == {("read", reader), ("write", writer)}, curated
    assert any(r.method == "PUT" and r.key == written for r in requests), [str(r) for r in requests]
    # The 6 MiB file went up in parts (initiate, two parts, complete), every one the writer's.
    multipart = [r for r in requests if r.key == BIG and r.method in ("POST", "PUT")]
    assert len(multipart) >= 4 and {r.method for r in multipart} == {"POST", "PUT"}, [str(r) for r in multipart]
    assert {roles[r.access_key_id] for r in multipart} == {writer}, [str(r) for r in multipart]
    assert s3.head_object(Bucket=BUCKET, Key=BIG)["ContentLength"] == 6 * 1024 * 1024
    # The rename's copy: signed by the writer, after asking for the source to read and the destination to write.
    copy = [r for r in requests if r.copy_source]
    assert [(r.key, roles[r.access_key_id]) for r in copy] == [("curated/t/moved.csv", writer)], [str(r) for r in copy]
    questions = asked(lake)
    assert (ROOT + "staging/move-me.csv", "read", writer) in questions, questions
    assert (ROOT + ODD, "read", reader) in questions, questions
    # One question per access under curated/ (the copy's destination is a hit on the write's scope).
    under = sorted((acc, role) for loc, acc, role in questions if loc.startswith(ROOT + "curated/"))
    assert under == [("read", reader), ("write", writer)], questions
