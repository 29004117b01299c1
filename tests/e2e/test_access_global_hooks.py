"""Read/write rules and S3 Access Grants through the JVM-wide hooks (issue 20, SPEC §4, §4.1, §9): a plain AWS SDK
client in job code, which no Hadoop configuration reaches, asks the agent per S3 operation once
emrfs-role-agent-hooks.jar is on its class path (RoleAgentGlobalInterceptor for SDK v2, RoleAgentGlobalRequestHandler
for v1), one JVM run per SDK (tests/java SdkClientsSession on the jvm-global runtime).

Read/write rules: the world of test_access_clients.py. `s3://lake/curated/` goes to the reader role for reads and
to the writer role for writes; moto enforces IAM (the reader may only read) where the SDK allows; a recording proxy
in front of moto's S3 shows the key that signed each request, joined with the agent's audit log.

Access grants: the world of test_access_grants_clients.py. `effect = "access-grants"` for `s3://lake/` with the
analyst as grantee; the GetDataAccess stand-in holds a READ grant on `s3://lake/curated/*`. Reads under it are
signed by the vended key, one GetDataAccess call for every key; a write fails with the SDK's access-denied error
before anything reaches S3.

The clients' own credentials are moto's admin keys, which the agent never hands out: a request the hooks missed
shows up signed by them.
"""

import os

import pytest

from helpers import jvm
from helpers.s3_recorder import S3Recorder
from test_access_clients import BUCKET, ODD, ROOT, asked, check_signers, lake  # noqa: F401  (lake: a fixture)
from test_access_grants_clients import (DENIED_WRITE, KEYS, agent, check_one_read_grant,  # noqa: F401  (fixtures)
                                        server, world)
from test_jvm_global_hooks import properties_env

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

SDK = "io.emrfsroleagent.e2e.SdkClientsSession"
EXCEPTIONS = {"v1": "com.amazonaws.services.s3.model.AmazonS3Exception status=403 code=AccessDenied",
              "v2": "software.amazon.awssdk.services.s3.model.S3Exception status=403 code=AccessDenied"}

pytestmark = pytest.mark.moto(
    roles=[{"name": "curated-reader", "bucket": BUCKET}, {"name": "curated-writer", "bucket": BUCKET}],
    enforce_iam=True,
)

# moto's IAM enforcement rejects every SDK v1 signature (test_s3a_scopes.test_moto_rejects_sdk_v1_signatures_and_why):
# the v1 run goes with it off; the recorder still proves which role signed what.
SDKS = [pytest.param("v2", True, id="sdk-v2-iam-on"), pytest.param("v1", False, id="sdk-v1-iam-off")]


def parse(out, ops):
    """{op: ("OK", result) | ("FAIL", message)}, by the ops asked for: keys here hold spaces."""
    lines = out.stdout.splitlines()
    assert "DONE" in lines, f"the driver did not finish:\n{out.stdout}\n{out.stderr[-6000:]}"
    results = {}
    for line in lines:
        for op in ops:
            if line == f"OK {op}" or line.startswith(f"OK {op} "):
                results[op] = ("OK", line[len(f"OK {op} "):])
            elif line.startswith(f"FAIL {op}: "):
                results[op] = ("FAIL", line[len(f"FAIL {op}: "):])
    return results


def run_sdk(java_build, world, recorder, agent, tmp_path, ops):
    admin = world.admin
    out = jvm.run(jvm.global_classpath(java_build, "jvm-global"), SDK,
                  [recorder.endpoint, world.endpoint, admin["access_key_id"], admin["secret_access_key"], *ops],
                  env_extra=properties_env(agent, tmp_path))
    return out, parse(out, ops)


@pytest.mark.parametrize("sdk,enforce", SDKS)
def test_plain_sdk_client_reads_with_the_reader_and_writes_with_the_writer(java_build, moto, moto_server, lake,
                                                                           recorder, tmp_path, sdk, enforce):
    if not enforce:
        moto_server.set_enforcement(False)
    new = f"curated/out/neu {sdk} ü 100%.txt"
    ops = [f"{sdk}-get:{BUCKET}/{ODD}", f"{sdk}-head:{BUCKET}/{ODD}", f"{sdk}-list:{BUCKET}/curated/t/",
           f"{sdk}-put:{BUCKET}/{new}", f"{sdk}-get:{BUCKET}/{new}", f"{sdk}-delete:{BUCKET}/{new}",
           f"{sdk}-put:{BUCKET}/staging/{sdk}.txt", f"{sdk}-get:{BUCKET}/staging/{sdk}.txt"]
    out, results = run_sdk(java_build, moto, recorder, lake, tmp_path, ops)
    failed = {op: r for op, r in results.items() if r[0] != "OK"}
    assert not failed and len(results) == len(ops), (results, out.stderr[-6000:])
    assert results[ops[0]] == ("OK", f"contents of {ODD}"), results
    assert results[ops[1]] == ("OK", str(len(f"contents of {ODD}".encode()))), results
    assert results[ops[2]] == ("OK", "curated/t/part-0"), results
    assert results[ops[4]] == ("OK", f"written by {sdk} to {new}"), results
    assert results[ops[7]] == ("OK", f"written by {sdk} to staging/{sdk}.txt"), results
    s3 = moto.client("s3")
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=new)

    # Every request signed by the role of its location and access: GET/HEAD/LIST under curated/ by the
    # reader, PUT/DELETE by the writer; nothing with the client's own keys.
    requests, roles = check_signers(moto, lake, recorder)
    reader, writer = moto.role("curated-reader")["arn"], moto.role("curated-writer")["arn"]
    curated = {(r.method, roles[r.access_key_id]) for r in requests if (r.location or "").startswith(ROOT + "curated/")}
    assert curated == {("GET", reader), ("HEAD", reader), ("PUT", writer), ("DELETE", writer)}, \
        (curated, [str(r) for r in requests])
    # The odd key went out as its literal bytes (the recorder decodes the path) and was read by the reader.
    assert {(r.method, roles[r.access_key_id]) for r in requests if r.key == ODD} == {("GET", reader),
                                                                                     ("HEAD", reader)}
    assert {(r.method, roles[r.access_key_id]) for r in requests if r.key == new} == {
        ("PUT", writer), ("GET", reader), ("DELETE", writer)}, [str(r) for r in requests if r.key == new]
    # One agent question per scope and access under curated/: the head, the listing and the second get ride
    # on the first read's scope, the delete on the put's.
    under = sorted((acc, role) for loc, acc, role in asked(lake) if loc.startswith(ROOT + "curated/"))
    assert under == [("read", reader), ("write", writer)], asked(lake)


@pytest.fixture
def grants_recorder(world):
    r = S3Recorder(world.endpoint)
    yield r
    r.stop()


@pytest.mark.parametrize("sdk,enforce", SDKS)
def test_plain_sdk_client_reads_under_a_read_grant_with_one_call_and_a_write_is_refused(
        java_build, server, world, agent, grants_recorder, tmp_path, sdk, enforce):
    if not enforce:
        server.set_enforcement(False)
    ops = [*(f"{sdk}-get:{BUCKET}/{key}" for key in KEYS), f"{sdk}-head:{BUCKET}/{KEYS[1]}",
           f"{sdk}-list:{BUCKET}/curated/t/", f"{sdk}-put:{BUCKET}/{DENIED_WRITE}"]
    out, results = run_sdk(java_build, world, grants_recorder, agent, tmp_path, ops)
    assert len(results) == len(ops), (results, out.stderr[-6000:])
    for op, key in zip(ops, KEYS):
        assert results[op] == ("OK", f"contents of {key}"), (results, out.stderr[-6000:])
    assert results[ops[3]] == ("OK", str(len(f"contents of {KEYS[1]}".encode()))), results
    assert results[ops[4]] == ("OK", " ".join(sorted(KEYS))), results
    status, message = results[ops[5]]
    assert status == "FAIL" and message.startswith(EXCEPTIONS[sdk]), (results, out.stderr[-4000:])
    assert f"emrfs-role-agent at {agent.url} refused credentials to write {ROOT}{DENIED_WRITE}" in message, message

    check_one_read_grant(server, world, agent, grants_recorder)
    assert "Contents" not in world.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=DENIED_WRITE)
