"""Read/write rules and S3 Access Grants through the AWS CLI and s3fs with the Python plugin (issue 20, SPEC §4
`access`, §4.1): the two Python client families beside boto3 (test_access_clients.py,
test_access_grants_clients.py, whose worlds, fixtures and checks these tests reuse).

Rules: `s3://lake/curated/` is the reader role's for reads and the writer role's for writes, moto enforces IAM
(the reader may only read) and a recording proxy logs the key that signed each S3 request; every read must be
the reader's, every write the writer's. Access grants: a READ grant on `s3://lake/curated/*`; reads use the
vended key after one GetDataAccess call, a write is refused with the client's own access-denied error.

The AWS CLI (v1): `aws s3` through BOTOCORE_EXPERIMENTAL__PLUGINS, `aws s3api` with emrfs_role_agent.awscli in
the config's [plugins]. s3fs (aiobotocore): cat, ls and pipe.
"""

import json
import os
import subprocess
import sys

import pytest

from helpers import moto_server
from helpers.s3_recorder import S3Recorder
import test_access_clients as rules
import test_access_grants_clients as grants
from test_access_clients import lake  # noqa: F401  (fixtures, used by name)
from test_access_grants_clients import agent, server, world  # noqa: F401
from test_python_plugin import PLUGIN, plugin_env, plugin_site  # noqa: F401

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

BUCKET = rules.BUCKET
ROOT = rules.ROOT
pytestmark = rules.pytestmark  # the reader and writer roles, IAM enforced (the rules' moto)


def aws(env, endpoint, tmp_path, *args, cli_plugin=False):
    env = dict(env)
    if cli_plugin:
        config = tmp_path / "aws-config-with-plugin"
        config.write_text("[plugins]\nemrfs_role_agent = emrfs_role_agent.awscli\n")
        env["AWS_CONFIG_FILE"] = str(config)
    return subprocess.run([os.path.join(moto_server.test_venv(), "bin", "aws"), "--endpoint-url", endpoint,
                           "--region", "us-east-1", *args], env=env, capture_output=True, text=True, timeout=120)


S3FS = r"""
import json, sys
import s3fs

endpoint, bucket, ops = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
                       config_kwargs={"s3": {"addressing_style": "path"}}, use_listings_cache=False)
run = {"cat": lambda k: fs.cat_file(f"{bucket}/{k}").decode(),
       "ls": lambda k: sorted(fs.ls(f"{bucket}/{k}", detail=False)),
       "pipe": lambda k: fs.pipe_file(f"{bucket}/{k}", b"by s3fs") and None}
for op, key in ops:
    try:
        print(json.dumps({"op": op, "key": key, "ok": True, "out": run[op](key)}))
    except Exception as e:
        print(json.dumps({"op": op, "key": key, "ok": False, "type": type(e).__name__, "error": str(e)}))
print("DONE")
"""


def s3fs_run(env, endpoint, ops):
    r = subprocess.run([sys.executable, "-c", S3FS, endpoint, BUCKET, json.dumps(ops)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert "DONE" in r.stdout.splitlines(), r.stdout + r.stderr[-6000:]
    return {(x["op"], x["key"]): x for x in (json.loads(line) for line in r.stdout.splitlines()
                                            if line.startswith("{"))}


def check_rules(moto, lake_, recorder, written):
    """Every request signed by the role its location and access get; reads under curated/ the reader's, the
    writes of `written` the writer's."""
    requests, roles = rules.check_signers(moto, lake_, recorder)
    reader, writer = moto.role("curated-reader")["arn"], moto.role("curated-writer")["arn"]
    curated = {(rules.access_of(r), roles[r.access_key_id]) for r in requests
               if (r.location or "").startswith(ROOT + "curated/")}
    assert curated == {("read", reader), ("write", writer)}, curated
    for key in written:
        puts = [r for r in requests if r.key == key and r.method == "PUT"]
        assert puts and {roles[r.access_key_id] for r in puts} == {writer}, (key, [str(r) for r in requests])
    assert any(r.method == "GET" and r.key == rules.ODD and roles[r.access_key_id] == reader for r in requests), \
        [str(r) for r in requests]


# ---- read/write rules ----

def test_the_aws_cli_reads_with_the_reader_and_writes_with_the_writer(moto, lake, recorder, plugin_site, tmp_path):
    env = plugin_env(moto.source_env(), lake, plugin_site, tmp_path)
    local = tmp_path / "up.csv"
    local.write_text("a,b\n1,2\n")
    up, api_up = "curated/cli/up ü.csv", "curated/cli/api put é.csv"
    get = aws(env, recorder.endpoint, tmp_path, "s3", "cp", f"{ROOT}{rules.ODD}", "-")
    assert get.returncode == 0 and get.stdout == f"contents of {rules.ODD}", get.stdout + get.stderr
    put = aws(env, recorder.endpoint, tmp_path, "s3", "cp", str(local), f"{ROOT}{up}")
    assert put.returncode == 0, put.stderr
    out = tmp_path / "got.csv"
    api_get = aws(env, recorder.endpoint, tmp_path, "s3api", "get-object", "--bucket", BUCKET, "--key", rules.ODD,
                  str(out), cli_plugin=True)
    assert api_get.returncode == 0 and out.read_text() == f"contents of {rules.ODD}", api_get.stderr
    api_put = aws(env, recorder.endpoint, tmp_path, "s3api", "put-object", "--bucket", BUCKET, "--key", api_up,
                  "--body", str(local), cli_plugin=True)
    assert api_put.returncode == 0, api_put.stderr

    s3 = moto.client("s3")
    for key in (up, api_up):
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"a,b\n1,2\n"
    check_rules(moto, lake, recorder, [up, api_up])


def test_s3fs_reads_with_the_reader_and_writes_with_the_writer(moto, lake, recorder, plugin_site, tmp_path):
    env = plugin_env(moto.source_env(), lake, plugin_site, tmp_path)
    new = "curated/s3fs/neu ü.csv"
    got = s3fs_run(env, recorder.endpoint, [("cat", rules.ODD), ("ls", "curated/t/"), ("pipe", new)])
    assert got[("cat", rules.ODD)].get("out") == f"contents of {rules.ODD}", got
    assert got[("ls", "curated/t/")].get("out") == [f"{BUCKET}/curated/t/part-0"], got
    assert got[("pipe", new)]["ok"], got
    assert moto.client("s3").get_object(Bucket=BUCKET, Key=new)["Body"].read() == b"by s3fs"
    check_rules(moto, lake, recorder, [new])


# ---- access grants ----

@pytest.fixture
def grants_recorder(world):  # noqa: F811
    r = S3Recorder(world.endpoint)
    yield r
    r.stop()


def test_the_aws_cli_reads_under_a_read_grant_and_a_write_is_refused(server, world, agent, grants_recorder,  # noqa: F811
                                                                     plugin_site, tmp_path):
    env = plugin_env(world.source_env(), agent, plugin_site, tmp_path)
    endpoint = grants_recorder.endpoint
    get = aws(env, endpoint, tmp_path, "s3", "cp", f"{ROOT}{grants.KEYS[1]}", "-")
    assert get.returncode == 0 and get.stdout == f"contents of {grants.KEYS[1]}", get.stdout + get.stderr
    out = tmp_path / "got"
    api_get = aws(env, endpoint, tmp_path, "s3api", "get-object", "--bucket", BUCKET, "--key", grants.KEYS[0],
                  str(out), cli_plugin=True)
    assert api_get.returncode == 0 and out.read_text() == f"contents of {grants.KEYS[0]}", api_get.stderr
    local = tmp_path / "w.parquet"
    local.write_text("not allowed")
    put = aws(env, endpoint, tmp_path, "s3", "cp", str(local), f"{ROOT}{grants.DENIED_WRITE}")
    assert put.returncode != 0, put.stdout + put.stderr
    assert "AccessDenied" in put.stderr and \
        f"refused write credentials for {ROOT}{grants.DENIED_WRITE}: HTTP 403 AccessDenied" in put.stderr, put.stderr

    grants.check_one_read_grant(server, world, agent, grants_recorder)
    assert "Contents" not in world.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=grants.DENIED_WRITE)


def test_s3fs_reads_under_a_read_grant_and_a_write_is_refused(server, world, agent, grants_recorder,  # noqa: F811
                                                              plugin_site, tmp_path):
    env = plugin_env(world.source_env(), agent, plugin_site, tmp_path)
    ops = [("cat", grants.KEYS[0]), ("cat", grants.KEYS[1]), ("ls", "curated/t/"), ("pipe", grants.DENIED_WRITE)]
    got = s3fs_run(env, grants_recorder.endpoint, ops)
    for key in grants.KEYS[:2]:
        assert got[("cat", key)].get("out") == f"contents of {key}", got
    assert got[("ls", "curated/t/")].get("out") == sorted(
        [f"{BUCKET}/{k}" for k in grants.KEYS[:2]] + [f"{BUCKET}/curated/t/dt=2026-01-01 00%3A00"]), got
    denied = got[("pipe", grants.DENIED_WRITE)]
    assert not denied["ok"] and denied["type"] == "PermissionError", denied
    assert f"refused write credentials for {ROOT}{grants.DENIED_WRITE}: HTTP 403 AccessDenied" in denied["error"], \
        denied

    grants.check_one_read_grant(server, world, agent, grants_recorder)
    assert "Contents" not in world.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=grants.DENIED_WRITE)
