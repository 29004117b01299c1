"""The Python plugin (clients/python, emrfs_role_agent.botocore) decides every S3 request for its literal key, in
boto3, the AWS CLI and s3fs (aiobotocore), against the real agent.

The package is built as a wheel with pip and installed into a directory of its own (pip --target), which each
client process gets on PYTHONPATH; BOTOCORE_EXPERIMENTAL__PLUGINS turns the plugin on, as on a node. Each
client's own credentials are the agent's source user's keys, so a request the plugin missed would be signed
with them. A recording proxy in front of moto's S3 (helpers/s3_recorder.py) logs the access key id that
signed each S3 request; the agent's audit log names the role and location each key was handed out for.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile

import pytest

from helpers import moto_server

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(REPO, "clients", "python")
BUCKET = "shared-bucket"
PLUGIN = "emrfs-role-agent=emrfs_role_agent.botocore"
# Keys as real lakes have them. Each is allowed by a rule naming exactly that key, so the agent is asked for each
# and only the literal key gets an answer (one decoding too many, or too few, falls to the fallback's deny).
ODD_KEYS = ["odd/100%off.csv", "odd/a%2Fb.csv", "odd/a%25b", "odd/a+b c.csv", "odd/café/ü.parquet",
            "odd/dt=2026-01-01 00%3A00/part-0"]
# Under the deny glob s3://BUCKET/x*/secret/** only as the literal key: decoded once more it would be
# x/y/secret/f, which the glob does not match and team-b's x prefix allows.
BYPASS_KEY = "x%2Fy/secret/f"

pytestmark = pytest.mark.moto(
    roles=[{"name": "team-a", "bucket": BUCKET}, {"name": "team-b", "bucket": BUCKET}], enforce_iam=False
)


def mappings(moto):
    return [
        {"name": "secrets", "effect": "deny",
         "prefixes": [f"s3://{BUCKET}/secret/", f"s3://{BUCKET}/x*/secret/**"]},
        {"name": "team-a", "role": moto.role("team-a")["arn"], "prefixes": [f"s3://{BUCKET}/teamA/"]},
        {"name": "team-b", "role": moto.role("team-b")["arn"],
         "prefixes": [f"s3://{BUCKET}/teamB/", f"s3://{BUCKET}/x"]},
        {"name": "odd-keys", "role": moto.role("team-b")["arn"], "prefixes": [f"s3://{BUCKET}/{k}" for k in ODD_KEYS]},
    ]


def expected_role(moto, location):
    """The role the rules give a literal location; None for a denied one (or none at all)."""
    key = location[len(f"s3://{BUCKET}/"):] if location else ""
    first, _, rest = key.partition("/")
    if key.startswith("secret/") or (first.startswith("x") and rest.startswith("secret/")):
        return None
    if key.startswith("teamA/"):
        return moto.role("team-a")["arn"]
    if key.startswith(("teamB/", "x")) or key in ODD_KEYS:
        return moto.role("team-b")["arn"]
    return None


def plugin_env(source_env, agent, site, tmp_path):
    """A client process's environment with the plugin wired to `agent`: nothing of the test's own AWS or plugin
    settings, the client's own keys (`source_env`: a request the plugin missed is signed with them), no AWS config
    or client properties file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BOTOCORE_", "EMRFS_ROLE_AGENT_"))}
    env.update(source_env)
    env.update({
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "BOTOCORE_EXPERIMENTAL__PLUGINS": PLUGIN,
        "EMRFS_ROLE_AGENT_ENDPOINT": agent.url,
        "EMRFS_ROLE_AGENT_TOKEN_FILE": agent.token_path,
        "EMRFS_ROLE_AGENT_CLIENT_PROPERTIES": str(tmp_path / "no-client.properties"),
        "PYTHONPATH": site,
    })
    return env


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The package built as a wheel and installed into a directory of its own: what PYTHONPATH gets."""
    base = tmp_path_factory.mktemp("python-plugin")
    dist, site = base / "dist", base / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    r = subprocess.run(pip + ["wheel", "--no-deps", "--quiet", "-w", str(dist), PACKAGE], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = sorted(os.listdir(dist))
    assert len(wheels) == 1 and wheels[0].endswith("-py3-none-any.whl"), wheels
    assert wheels[0].startswith("emrfs_role_agent-"), wheels
    r = subprocess.run(pip + ["install", "--no-deps", "--no-index", "--quiet", "--target", str(site),
                              str(dist / wheels[0])], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return str(site)


@pytest.fixture
def world(moto, agent_factory, recorder, plugin_site, tmp_path):
    agent = agent_factory(mappings=mappings(moto), config={"fallback": {"mode": "deny"}})
    admin = moto.client("s3")
    for key in ("teamB/in/part-0", "teamA/in/part-0", "secret/plans.txt", BYPASS_KEY):
        admin.put_object(Bucket=BUCKET, Key=key, Body=f"contents of {key}".encode())
    env = plugin_env(moto.source_env(), agent, plugin_site, tmp_path)
    return World(moto, agent, recorder, env, tmp_path)


class World:
    def __init__(self, moto, agent, recorder, env, tmp_path):
        self.moto, self.agent, self.recorder, self.env, self.tmp = moto, agent, recorder, env, tmp_path
        self.outputs = []

    def run(self, argv, env=None, **kw):
        """argv with the world's environment, updated by `env` (None removes a variable)."""
        full = {**self.env, **(env or {})}
        full = {k: v for k, v in full.items() if v is not None}
        r = subprocess.run(argv, env=full, capture_output=True, text=True, timeout=300, **kw)
        self.outputs += [r.stdout, r.stderr]
        return r

    def python(self, code, *args, env=None):
        r = self.run([sys.executable, "-c", code, *args], env=env)
        assert "DONE" in r.stdout.splitlines(), r.stdout + r.stderr[-6000:]
        return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")], r

    def aws(self, *args, endpoint=None, cli_plugin=True):
        """The AWS CLI v1 of the test venv; cli_plugin: with emrfs_role_agent.awscli in the config's [plugins]
        (for its API commands, which create their clients with botocore's client plugins off)."""
        env = {}
        if cli_plugin:
            config = self.tmp / "aws-config-with-plugin"
            config.write_text("[plugins]\nemrfs_role_agent = emrfs_role_agent.awscli\n")
            env["AWS_CONFIG_FILE"] = str(config)
        return self.run([os.path.join(moto_server.test_venv(), "bin", "aws"), "--endpoint-url",
                         endpoint or self.recorder.endpoint, "--region", "us-east-1", *args], env=env)

    # ---- what the agent and S3 saw ----

    def credential_records(self):
        return [r for r in self.agent.audit_records() if r.get("event") == "credentials"]

    def check_signers(self):
        """Every S3 request the recorder saw was signed by a key the agent handed out for the role the rules
        give that request's literal key; every location the agent was asked for is a literal key or prefix
        some request accessed. Returns the requests."""
        roles = {r["access_key_id"]: r.get("role_arn") for r in self.credential_records() if r.get("access_key_id")}
        requests = self.recorder.snapshot()
        assert requests, "no S3 request reached the recorder"
        wrong = [f"{r}: signed by {roles.get(r.access_key_id, 'a key the agent never handed out')}, expected"
                 f" {expected_role(self.moto, r.location)}"
                 for r in requests if roles.get(r.access_key_id, "none") != expected_role(self.moto, r.location)]
        assert not wrong, "requests signed with the wrong credentials:\n" + "\n".join(wrong)
        for rec in self.credential_records():
            if rec.get("location"):
                assert rec.get("role_arn") == expected_role(self.moto, rec["location"]), rec
        return requests

    def secrets(self):
        out = [self.agent.token, self.moto.user["secret_access_key"], self.moto.admin["secret_access_key"]]
        for location in (f"s3://{BUCKET}/teamA/probe", f"s3://{BUCKET}/teamB/probe"):
            for access in ("read", "write"):
                r = self.agent.get(params={"location": location, "access": access})
                if r.status_code == 200:
                    out += [r.json()["SecretAccessKey"], r.json()["Token"]]
        return out

    def assert_no_secrets(self, debug_log=True):
        secrets = self.secrets()
        assert len(secrets) > 3, "the agent handed out no credentials to search for"
        # The plugin's debug log (key id, role, scope) is part of what is searched.
        assert not debug_log or any("credentials ASIA" in text and ", scope s3://" in text for text in self.outputs), \
            "the plugin's debug log is missing from the clients' output"
        leaked = [s[:4] + "…" for s in secrets if any(s in text for text in self.outputs)]
        assert not leaked, f"secrets in the clients' output: {leaked}"


BOTO3 = r"""
import json, logging, sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
logging.getLogger("emrfs_role_agent").setLevel(logging.DEBUG)
s3_endpoint, sts_endpoint, bucket = sys.argv[1:4]
odd, bypass = json.loads(sys.argv[4]), sys.argv[5]
s3 = boto3.client("s3", endpoint_url=s3_endpoint, config=Config(s3={"addressing_style": "path"}))

def report(op, key, f):
    try:
        out = f()
        print(json.dumps({"op": op, "key": key, "ok": True, "out": out}))
    except ClientError as e:
        print(json.dumps({"op": op, "key": key, "ok": False, "code": e.response["Error"]["Code"],
                          "status": e.response["ResponseMetadata"].get("HTTPStatusCode"), "error": str(e)}))

for i in range(5):
    report("put", f"teamA/boto3/part-{i}", lambda i=i: s3.put_object(
        Bucket=bucket, Key=f"teamA/boto3/part-{i}", Body=b"written by boto3")["ETag"])
report("get", "teamB/in/part-0", lambda: s3.get_object(Bucket=bucket, Key="teamB/in/part-0")["Body"].read().decode())
report("list", "teamA/boto3/", lambda: sorted(o["Key"] for o in s3.list_objects_v2(
    Bucket=bucket, Prefix="teamA/boto3/")["Contents"]))
for key in odd:
    report("put", key, lambda key=key: s3.put_object(Bucket=bucket, Key=key, Body=key.encode())["ETag"])
    report("get", key, lambda key=key: s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
report("copy", "teamA/boto3/copy", lambda: s3.copy_object(
    Bucket=bucket, Key="teamA/boto3/copy", CopySource={"Bucket": bucket, "Key": "teamA/in/part-0"})["CopyObjectResult"]["ETag"])
report("copy", "teamB/from-teamA", lambda: s3.copy_object(
    Bucket=bucket, Key="teamB/from-teamA", CopySource=f"{bucket}/teamA/in/part-0"))
report("get", "secret/plans.txt", lambda: s3.get_object(Bucket=bucket, Key="secret/plans.txt")["Body"].read().decode())
report("get", bypass, lambda: s3.get_object(Bucket=bucket, Key=bypass)["Body"].read().decode())
sts = boto3.client("sts", endpoint_url=sts_endpoint)
report("sts", "", lambda: sts.get_caller_identity()["Arn"])
print("DONE")
"""


def by_op(results):
    return {(r["op"], r["key"]): r for r in results}


def test_boto3_signs_each_request_with_the_role_of_its_literal_key(world, moto):
    results, _ = world.python(BOTO3, world.recorder.endpoint, moto.endpoint, BUCKET, json.dumps(ODD_KEYS),
                              BYPASS_KEY)
    got = by_op(results)
    for i in range(5):
        assert got[("put", f"teamA/boto3/part-{i}")]["ok"], got
    assert got[("get", "teamB/in/part-0")]["out"] == "contents of teamB/in/part-0"
    assert got[("list", "teamA/boto3/")]["out"] == [f"teamA/boto3/part-{i}" for i in range(5)]
    for key in ODD_KEYS:
        assert got[("get", key)].get("out") == key, got[("get", key)]
    assert got[("copy", "teamA/boto3/copy")]["ok"], got
    cross = got[("copy", "teamB/from-teamA")]
    assert not cross["ok"] and cross["code"] == "AccessDenied", cross
    assert "needs one set of credentials for both" in cross["error"], cross
    for key in ("secret/plans.txt", BYPASS_KEY):
        denied = got[("get", key)]
        assert (denied["ok"], denied["code"], denied["status"]) == (False, "AccessDenied", 403), denied
        assert f"refused read credentials for s3://{BUCKET}/{key}: HTTP 403 AccessDenied" in denied["error"]
    # The STS client in the same process kept its own credentials (the source user's).
    assert got[("sts", "")]["out"].endswith(f":user/{moto.user['name']}"), got[("sts", "")]

    requests = world.check_signers()
    # Denied keys never reached S3; the cross-role copy neither.
    assert not [str(r) for r in requests if r.location and ("secret/" in r.location or "from-teamA" in r.location)]
    # Each odd key reached S3 as itself, and the agent was asked for it byte for byte.
    reached = {r.key for r in requests}
    asked = {(r["location"], r.get("access")) for r in world.credential_records() if r.get("location")}
    for key in ODD_KEYS:
        assert key in reached, (key, reached)
        assert {(f"s3://{BUCKET}/{key}", "write"), (f"s3://{BUCKET}/{key}", "read")} <= asked, (key, asked)
    assert (f"s3://{BUCKET}/{BYPASS_KEY}", "read") in asked, asked
    # A scope hit costs no agent call: five writes, a listing, a copy reading teamA/in/ and writing teamA/boto3/
    # took one write and one read request.
    team_a = {(loc, acc) for loc, acc in asked if loc.startswith(f"s3://{BUCKET}/teamA/")}
    assert team_a == {(f"s3://{BUCKET}/teamA/boto3/part-0", "write"), (f"s3://{BUCKET}/teamA/boto3/", "read")}, team_a
    world.assert_no_secrets()


def test_the_aws_cli_signs_each_request_with_the_role_of_its_key(world, moto):
    """`aws s3` through BOTOCORE_EXPERIMENTAL__PLUGINS, `aws s3api` through the CLI plugin (emrfs_role_agent.awscli);
    `aws sts` in the same set-up keeps the CLI's own credentials."""
    local = world.tmp / "cli upload.csv"
    local.write_text("a,b\n1,2\n")
    put = world.aws("s3", "cp", str(local), f"s3://{BUCKET}/teamA/cli/in put.csv", cli_plugin=False)
    assert put.returncode == 0, put.stderr
    get = world.aws("s3", "cp", f"s3://{BUCKET}/teamB/in/part-0", "-", cli_plugin=False)
    assert get.returncode == 0 and get.stdout == "contents of teamB/in/part-0", get.stderr
    ls = world.aws("s3", "ls", f"s3://{BUCKET}/teamA/cli/", cli_plugin=False)
    assert ls.returncode == 0 and "in put.csv" in ls.stdout, ls.stdout + ls.stderr
    odd = world.aws("s3api", "put-object", "--bucket", BUCKET, "--key", ODD_KEYS[1], "--body", str(local))
    assert odd.returncode == 0, odd.stderr
    denied = world.aws("s3", "cp", f"s3://{BUCKET}/secret/plans.txt", "-", cli_plugin=False)
    assert denied.returncode != 0
    assert "AccessDenied" in denied.stderr and f"refused read credentials for s3://{BUCKET}/secret/plans.txt" in \
        denied.stderr, denied.stderr
    sts = world.aws("sts", "get-caller-identity", "--query", "Arn", "--output", "text", endpoint=moto.endpoint)
    assert sts.returncode == 0 and sts.stdout.strip().endswith(f":user/{moto.user['name']}"), sts.stdout + sts.stderr

    requests = world.check_signers()
    assert not [str(r) for r in requests if r.location and "secret/" in r.location]
    assert ODD_KEYS[1] in {r.key for r in requests}
    assert any(r.method == "PUT" and r.key == "teamA/cli/in put.csv" for r in requests), [str(r) for r in requests]
    world.assert_no_secrets(debug_log=False)


S3FS = r"""
import json, logging, sys
import s3fs

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
logging.getLogger("emrfs_role_agent").setLevel(logging.DEBUG)
endpoint, bucket, odd = sys.argv[1], sys.argv[2], sys.argv[3]
fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
                       config_kwargs={"s3": {"addressing_style": "path"}}, use_listings_cache=False)

def report(op, key, f):
    try:
        print(json.dumps({"op": op, "key": key, "ok": True, "out": f()}))
    except Exception as e:
        print(json.dumps({"op": op, "key": key, "ok": False, "type": type(e).__name__, "error": str(e)}))

for i in range(3):
    report("pipe", f"teamA/s3fs/part-{i}", lambda i=i: fs.pipe_file(f"{bucket}/teamA/s3fs/part-{i}", b"by s3fs") and None)
report("cat", "teamB/in/part-0", lambda: fs.cat_file(f"{bucket}/teamB/in/part-0").decode())
report("ls", "teamA/s3fs/", lambda: sorted(fs.ls(f"{bucket}/teamA/s3fs/", detail=False)))
report("pipe", odd, lambda: fs.pipe_file(f"{bucket}/{odd}", b"odd") and None)
report("cat", odd, lambda: fs.cat_file(f"{bucket}/{odd}").decode())
report("cat", "secret/plans.txt", lambda: fs.cat_file(f"{bucket}/secret/plans.txt").decode())
print("DONE")
"""


def test_s3fs_signs_each_request_with_the_role_of_its_key(world, moto):
    """s3fs finds the agent through the client properties file, as the bootstrap writes it."""
    properties = world.tmp / "client.properties"
    properties.write_text("# Written by the emrfs-role-agent bootstrap action: where the client hooks find the agent.\n"
                          f"endpoint={world.agent.url}\ntoken-file={world.agent.token_path}\n")
    results, run = world.python(S3FS, world.recorder.endpoint, BUCKET, ODD_KEYS[4], env={
        "EMRFS_ROLE_AGENT_ENDPOINT": None, "EMRFS_ROLE_AGENT_TOKEN_FILE": None,
        "EMRFS_ROLE_AGENT_CLIENT_PROPERTIES": str(properties)})
    got = by_op(results)
    for i in range(3):
        assert got[("pipe", f"teamA/s3fs/part-{i}")]["ok"], got
    assert got[("cat", "teamB/in/part-0")]["out"] == "contents of teamB/in/part-0", got
    assert got[("ls", "teamA/s3fs/")]["out"] == [f"{BUCKET}/teamA/s3fs/part-{i}" for i in range(3)], got
    assert got[("cat", ODD_KEYS[4])]["out"] == "odd", got
    denied = got[("cat", "secret/plans.txt")]
    assert not denied["ok"] and denied["type"] == "PermissionError", denied
    assert f"refused read credentials for s3://{BUCKET}/secret/plans.txt" in denied["error"], denied

    requests = world.check_signers()
    assert not [str(r) for r in requests if r.location and "secret/" in r.location]
    assert ODD_KEYS[4] in {r.key for r in requests}
    # Three writes and a listing under teamA/: one agent request for each access.
    team_a = [(r["location"], r.get("access")) for r in world.credential_records()
              if r.get("location", "").startswith(f"s3://{BUCKET}/teamA/")]
    assert sorted(acc for _, acc in team_a) == ["read", "write"], team_a
    world.assert_no_secrets()


def test_the_cli_api_commands_skip_botocore_client_plugins_and_why(world, moto):
    """Why the AWS CLI needs emrfs_role_agent.awscli as well: its API commands (`aws s3api`, `aws sts`, ...) create
    their clients with botocore.utils.create_nested_client, which turns client plugins off, so with only
    BOTOCORE_EXPERIMENTAL__PLUGINS set, `aws s3api` signs with the CLI's own credentials. If this test fails, the
    CLI loads client plugins for its API commands too, and docs/python.md can drop the [plugins] step."""
    body = world.tmp / "body"
    body.write_text("x")
    r = world.aws("s3api", "put-object", "--bucket", BUCKET, "--key", "teamA/s3api/plain", "--body", str(body),
                  cli_plugin=False)
    assert r.returncode == 0, r.stderr
    signers = {q.access_key_id for q in world.recorder.snapshot() if q.key == "teamA/s3api/plain"}
    assert signers == {moto.user["access_key_id"]}, signers
    assert not world.credential_records()


def test_the_release_tarball_carries_the_wheel_built_reproducibly(tmp_path):
    """scripts/release.sh (with a stand-in binary: the agent's build is test_release.py's business) puts the
    wheel into python/; a second build after the sources' mtimes changed gives the same bytes."""
    with open(os.path.join(REPO, "Cargo.toml")) as f:
        version = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M).group(1)
    stub = tmp_path / "emrfs-role-agent"
    stub.write_text(f"#!/bin/sh\necho emrfs-role-agent {version}\n")
    stub.chmod(0o755)
    digests = []
    for run in range(2):
        if run:
            for root, _, files in os.walk(os.path.join(PACKAGE, "src")):
                for name in files:
                    os.utime(os.path.join(root, name))
        out = tmp_path / f"out{run}"
        r = subprocess.run([os.path.join(REPO, "scripts", "release.sh"), "--binary", str(stub), "--no-jar", "--out",
                            str(out)], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-4000:]
        wheel_name = f"emrfs_role_agent-{version}-py3-none-any.whl"
        with tarfile.open(r.stdout.strip().splitlines()[-1]) as t:
            member = t.getmember(f"emrfs-role-agent-{version}-x86_64-linux/python/{wheel_name}")
            assert member.mode & 0o777 == 0o644 and member.uid == 0
            data = t.extractfile(member).read()
        digests.append(hashlib.sha256(data).hexdigest())
    assert digests[0] == digests[1]
    (tmp_path / "wheel.whl").write_bytes(data)
    with zipfile.ZipFile(tmp_path / "wheel.whl") as z:
        names = set(z.namelist())
        metadata = z.read(f"emrfs_role_agent-{version}.dist-info/METADATA").decode()
    assert {"emrfs_role_agent/botocore.py", "emrfs_role_agent/awscli.py", "emrfs_role_agent/cache.py"} <= names
    assert not [n for n in names if "test" in n or n.endswith(".pyc")], names
    assert f"Version: {version}" in metadata and "Requires-Dist: botocore>=1.34.70" in metadata


def test_the_bootstrap_installs_the_wheel_where_python3_has_pip(tmp_path):
    """install.sh --root keeps the wheel in /usr/local/lib/emrfs-role-agent/python/ and records the pip install
    it runs on a node; that command, run with a fresh virtualenv's python, installs the plugin."""
    from test_bootstrap import Node

    node = Node(tmp_path)
    r = node.install()
    wheels = [p for p in node.files() if p.startswith("usr/local/lib/emrfs-role-agent/python/")]
    assert len(wheels) == 1 and wheels[0].endswith("-py3-none-any.whl"), wheels
    assert node.files()[wheels[0]][0] == "0o644"
    wheel = "/" + wheels[0]
    pip = [a for a in node.runs()[-1] if a.startswith("python3 -m pip install")]
    assert pip == ["python3 -m pip install --quiet --disable-pip-version-check --no-input --no-deps --no-index"
                   f" --upgrade {wheel}"], node.runs()[-1]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    argv = pip[0].split()
    # The venv has no pip of its own: the test venv's pip installs into it (--prefix), the rest as recorded.
    run = subprocess.run([sys.executable, *argv[1:-1], "--prefix", str(venv), str(node.root) + argv[-1]],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    py = venv / "bin" / "python"
    out = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('emrfs-role-agent'))"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == wheel.split("-")[-4], out.stdout + out.stderr
    # A second run changes nothing.
    files = node.files()
    node.install()
    assert node.files() == files
    assert "no Python plugin wheel" not in r.stderr
