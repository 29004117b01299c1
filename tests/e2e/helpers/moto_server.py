"""A moto server process on a free loopback port, and the AWS world built in it."""

import os
import subprocess
import tempfile

from . import moto_setup
from .net import free_port, tail, wait_http_ok

DEFAULT_VENV = os.path.expanduser("~/.cache/emrfs-role-agent/venv")


def test_venv():
    return os.environ.get("EMRFS_TEST_VENV", DEFAULT_VENV)


class World:
    """What moto_setup.setup created: source user, admin, roles, buckets (see moto_setup's doc)."""

    def __init__(self, data):
        self.data = data
        self.endpoint = data["endpoint"]
        self.region = data["region"]
        self.account_id = data["account_id"]
        self.user = data["user"]
        self.admin = data["admin"]
        self.roles = data["roles"]
        self.buckets = data["buckets"]
        self.enforce_iam = data["enforce_iam"]

    def role(self, name):
        for r in self.roles:
            if r["name"] == name:
                return r
        raise KeyError(f"no role {name!r} in {[r['name'] for r in self.roles]}")

    def source_env(self):
        """Environment giving a process the source user's keys (the agent's 'instance profile')."""
        return {
            "AWS_ACCESS_KEY_ID": self.user["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.user["secret_access_key"],
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service, credentials=None):
        """A boto3 client against moto; `credentials` is an agent response dict or None for the admin."""
        import boto3

        if credentials is None:
            kw = dict(
                aws_access_key_id=self.admin["access_key_id"],
                aws_secret_access_key=self.admin["secret_access_key"],
            )
        else:
            kw = dict(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials.get("Token"),
            )
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region, **kw)


# The roles every test gets unless it asks for others (pytest mark `moto(roles=[...])`).
DEFAULT_ROLES = [
    {"name": "analytics"},
    {"name": "engineering"},
    {"name": "partner", "external_id": "partner-external-id"},
    {"name": "untrusted", "allowed_by_user": False, "trusts_user": False},
]


class MotoServer:
    """`moto_server` from the test virtualenv, on 127.0.0.1:<free port>; stop() ends it.

    port: a given port instead; wrap: an argv prefix that execs the server, e.g. `ip netns exec NS` (the
    calling thread must then be in that namespace too, to see the server answer: helpers/netns.py)."""

    def __init__(self, log_dir=None, port=None, wrap=()):
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(log_dir or tempfile.mkdtemp(prefix="moto-"), "moto.log")
        exe = os.path.join(test_venv(), "bin", "moto_server")
        if not os.path.exists(exe):
            raise RuntimeError(f"{exe} missing: run scripts/setup-test-env.sh")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [*wrap, exe, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_http_ok(f"{self.endpoint}/moto-api/", 60, self.process, lambda: tail(self.log_path))
        except Exception:
            self.stop()
            raise

    def setup(self, roles=None, enforce_iam=True, buckets=(), user=None, reset=True):
        """Resets moto and builds a world (see moto_setup); returns a World."""
        if reset:
            moto_setup.reset(self.endpoint)
        spec = {
            "roles": DEFAULT_ROLES if roles is None else roles,
            "buckets": list(buckets),
            "enforce_iam": enforce_iam,
        }
        if user:
            spec["user"] = user
        return World(moto_setup.setup(self.endpoint, spec))

    def set_enforcement(self, enforce):
        moto_setup.set_enforcement(self.endpoint, enforce)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
