"""The instance-metadata world: one node, alone in a network namespace (helpers/netns.py).

    169.254.169.254:80   the node's metadata service (helpers/imds_standin.py, "imds-standin"): region
                         REGION, and the instance profile's credentials from moto
    127.0.0.1:5000       moto (STS, IAM), IAM enforcement off: the agent's source credentials are moto's
                         static instance-profile keys, which only an unenforcing moto accepts
    127.0.0.1:9944       the agent's HTTP API;  IMDS_LISTEN and IMDS_LISTEN_V6 (the packaged socket unit's
                         addresses, 127.0.0.1:254 and [::1]:254): its IMDS listener
    the agent            runs as root (exempt, so its own metadata calls reach the node's service), with
                         no source credentials but the SDK default chain's instance profile, and:
                           emrfs-alice -> role analytics, emrfs-bob -> role engineering,
                           emrfs-yarn  -> role yarn-jobs, but exempt (imds.exempt_users),
                           anyone else: fallback deny (`nobody` plays them)

Nothing is redirected until a test calls install(); redirect(action) runs
`emrfs-role-agent imds-redirect ACTION --backend BACKEND` in the namespace. Clients run as OS users through
client() with the environment an EMR user's shell has: no AWS_* variable at all, so boto3 and the AWS CLI
take their default chain to the instance metadata service, and STS is reached with an explicit endpoint.

Ports are fixed: the namespace is new and holds nothing else.
"""

import json
import os
import re

from .agent import AgentFactory, agent_binary
from .imds_standin import ImdsStandIn
from .moto_server import MotoServer, World
from .moto_setup import DEFAULT_ACCOUNT, setup
from .netns import METADATA_ADDRESS
from .osusers import OsUser

REGION = "eu-north-1"  # the node's region, as only the metadata service knows it
STANDIN = "imds-standin"
MOTO_PORT = 5000
API_LISTEN = "127.0.0.1:9944"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
IMDS_SOCKET_UNIT = os.path.join(REPO, "systemd", "emrfs-role-agent-imds.socket")


def packaged_imds_listen():
    """The metadata listener's addresses as the product ships them: the packaged socket unit's ListenStream=
    lines (the default the docs, example config and bootstrap use), IPv4 first, then [::1] at the same port."""
    with open(IMDS_SOCKET_UNIT) as f:
        addrs = re.findall(r"^ListenStream=(\S+)$", f.read(), re.M)
    assert len(addrs) == 2 and addrs[1] == f"[::1]:{addrs[0].rsplit(':', 1)[1]}", addrs
    return addrs


# The packaged default. The agent binds it itself here (it runs as root, with no socket unit), which it
# refuses for a port anyone could bind.
IMDS_LISTEN, IMDS_LISTEN_V6 = packaged_imds_listen()
IMDS_PORT = int(IMDS_LISTEN.rsplit(":", 1)[1])
BACKENDS = ("nft", "iptables")
NOT_INSTALLED = 3  # `imds-redirect status` exit code

ROLES = [{"name": "analytics"}, {"name": "engineering"}, {"name": "yarn-jobs"}]

# Whose metadata traffic goes where, once the redirect is installed.
MAPPED = {"emrfs-alice": "analytics", "emrfs-bob": "engineering"}
EXEMPT = "emrfs-yarn"
UNMAPPED = "nobody"


def assumed_role_arn(role, user):
    """What STS GetCallerIdentity says for the agent's session of `role` for `user` (session name {user})."""
    return f"arn:aws:sts::{DEFAULT_ACCOUNT}:assumed-role/{role}/{user}"


# Prints what the SDK's default chain found, and who STS says it is.
WHOAMI_BOTO3 = r"""
import json, os, sys
import boto3
from botocore.utils import InstanceMetadataRegionFetcher
session = boto3.Session()
out = {"env": sorted(k for k in os.environ if k.startswith("AWS_"))}
creds = session.get_credentials()
if creds is None:
    out["credentials"] = None
else:
    frozen = creds.get_frozen_credentials()
    out["credentials"] = {"method": creds.method, "access_key_id": frozen.access_key,
                          "secret": frozen.secret_key, "token": frozen.token}
    sts = session.client("sts", endpoint_url=os.environ["STS_ENDPOINT"], region_name="us-east-1")
    out["arn"] = sts.get_caller_identity()["Arn"]
out["region"] = InstanceMetadataRegionFetcher(timeout=10).retrieve_region()
print(json.dumps(out))
"""

# Raw IMDSv2: a token (or the one given), then GET every path. Prints JSON:
#   {"token": {"status", "body"} or {"error"}, "paths": {path: {"status", "body", "server"} or {"error"}}}
IMDS_PROBE = r"""
import json, os, urllib.error, urllib.request
BASE = os.environ.get("PROBE_BASE", "http://169.254.169.254")
spec = json.loads(os.environ["PROBE"])

def call(method, path, headers):
    req = urllib.request.Request(BASE + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return {"status": r.status, "body": r.read().decode(), "server": r.headers.get("X-Metadata-Server")}
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")
        return {"status": e.code, "body": body, "server": e.headers.get("X-Metadata-Server")}
    except urllib.error.URLError as e:
        return {"error": type(e.reason).__name__, "detail": str(e.reason)}
    except OSError as e:
        return {"error": type(e).__name__, "detail": str(e)}

out = {}
token = spec.get("token")
if token is None:
    out["token"] = call("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
    token = out["token"].get("body") if out["token"].get("status") == 200 else ""
out["paths"] = {p: call("GET", p, {"X-aws-ec2-metadata-token": token}) for p in spec["paths"]}
out["token_used"] = token
print(json.dumps(out))
"""


class ImdsWorld:
    def __init__(self, netns, os_users, tmp_path_factory, backend):
        self.ns = netns
        self.os_users = os_users
        self.backend = backend
        self.dir = str(tmp_path_factory.mktemp("imds-world"))
        self.users = {u: OsUser(u) for u in (*MAPPED, EXEMPT, UNMAPPED)}
        self._stoppable = []
        try:
            with netns.entered():
                self.moto_server = self._keep(MotoServer(self.dir, port=MOTO_PORT, wrap=netns.wrap))
                self.moto = World(setup(self.moto_server.endpoint, {"roles": ROLES, "enforce_iam": False}))
            self.standin = self.start_standin(f"{METADATA_ADDRESS}:80", STANDIN)
            self.agents = AgentFactory(tmp_path_factory, self.moto)
            self._stoppable.append(self.agents)
            self.agent = self.agents.start(
                mappings=[
                    {"name": "alice", "role": self.moto.role("analytics")["arn"], "users": ["emrfs-alice"]},
                    {"name": "bob", "role": self.moto.role("engineering")["arn"], "users": ["emrfs-bob"]},
                    {"name": "yarn", "role": self.moto.role("yarn-jobs")["arn"], "users": [EXEMPT]},
                ],
                config={
                    "server": {"listen": [API_LISTEN]},
                    "fallback": {"mode": "deny"},
                    "imds": {"listen": IMDS_LISTEN, "exempt_users": [EXEMPT]},
                },
                # The node's own credentials come from its metadata service, through the default chain.
                source_env=False,
                env={"AWS_EC2_METADATA_DISABLED": None, "RUST_LOG": "debug"},
                wrap=netns.wrap,
                wait_ready=False,
            )
            with netns.entered():
                self.agent.wait_ready()
        except Exception:
            self.stop()
            raise

    def _keep(self, stoppable):
        self._stoppable.append(stoppable)
        return stoppable

    def start_standin(self, listen, name):
        """Another metadata server in the namespace (e.g. one that a pre-existing DNAT points at)."""
        log = os.path.join(self.dir, f"{name}.log")
        return self._keep(ImdsStandIn(listen, name, self.moto.endpoint, REGION, log, wrap=self.ns.wrap))

    def stop(self):
        for s in reversed(self._stoppable):
            if hasattr(s, "stop_all"):
                s.stop_all()
            else:
                s.stop()
        self._stoppable = []

    # ---- the redirect ----

    def redirect(self, action, backend=None):
        """`emrfs-role-agent imds-redirect ACTION` in the namespace; CompletedProcess."""
        return self.ns.run(
            [agent_binary(), "imds-redirect", action, "--config", self.agent.config_path,
             "--backend", backend or self.backend],
            check=False,
        )

    def install(self):
        out = self.redirect("install")
        assert out.returncode == 0, f"imds-redirect install: exit {out.returncode}\n{out.stdout}{out.stderr}"
        return out

    def remove(self):
        out = self.redirect("remove")
        assert out.returncode == 0, f"imds-redirect remove: exit {out.returncode}\n{out.stdout}{out.stderr}"
        return out

    def nft_ruleset(self):
        return self.ns.run(["nft", "list", "ruleset"]).stdout

    def legacy_nat(self):
        """`iptables-legacy -t nat -S` lines (chains and rules)."""
        return self.ns.run(["iptables-legacy", "-t", "nat", "-S"]).stdout.splitlines()

    def legacy_nat6(self):
        """`ip6tables-legacy -t nat -S` lines (chains and rules)."""
        return self.ns.run(["ip6tables-legacy", "-t", "nat", "-S"]).stdout.splitlines()

    def our_rules(self):
        """Every trace of the agent's redirect in either back end's NAT rules (both families), as lines."""
        lines = [line for line in self.legacy_nat() + self.legacy_nat6()
                 if "EMRFS-ROLE-AGENT" in line or "emrfs-role-agent" in line]
        lines += [line for line in self.nft_ruleset().splitlines() if "emrfs_role_agent" in line]
        return lines

    # ---- clients ----

    def user(self, name):
        return self.users[name]

    def client(self, who, argv, env=None):
        """Runs argv in the namespace as OS user `who` ("root" too) with no AWS_* variable but `env`."""
        base = {"LANG": "C.UTF-8"}
        if who == "root":
            full = {"HOME": "/root", "PATH": f"{self.os_users.venv}/bin:/usr/sbin:/usr/bin:/bin", **base, **(env or {})}
            return self.ns.run(argv, check=False, env=full, timeout=120)
        return self.os_users.run_as(self.users[who], argv, env={**base, **(env or {})}, wrap=self.ns.wrap)

    def whoami(self, who, env=None):
        """boto3 with its default chain: {"env", "credentials": {method, access_key_id, secret, token} or
        None, "arn" (STS GetCallerIdentity), "region" (botocore's IMDS region lookup)}. `env`: more variables
        (e.g. AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE)."""
        out = self.client(who, [self.os_users.python, "-c", WHOAMI_BOTO3],
                          env={"STS_ENDPOINT": self.moto.endpoint, **(env or {})})
        assert out.returncode == 0, f"boto3 as {who}: exit {out.returncode}\n{out.stderr[-3000:]}"
        return json.loads(out.stdout)

    def aws_cli(self, who, *args):
        """The AWS CLI with its default chain; CompletedProcess."""
        return self.client(who, [self.os_users.aws, *args])

    def cli_identity(self, who):
        out = self.aws_cli(who, "sts", "get-caller-identity", "--endpoint-url", self.moto.endpoint,
                           "--region", "us-east-1", "--output", "json")
        assert out.returncode == 0, f"aws sts get-caller-identity as {who}: exit {out.returncode}\n{out.stderr}"
        return json.loads(out.stdout)["Arn"]

    def probe(self, who, paths, token=None, base=None):
        """Raw IMDSv2 requests to 169.254.169.254 (or `base`, e.g. "http://[fd00:ec2::254]") as `who`
        (see IMDS_PROBE)."""
        spec = {"paths": list(paths)}
        if token is not None:
            spec["token"] = token
        env = {"PROBE": json.dumps(spec), **({"PROBE_BASE": base} if base else {})}
        out = self.client(who, [self.os_users.python, "-c", IMDS_PROBE], env=env)
        assert out.returncode == 0, f"IMDS probe as {who}: exit {out.returncode}\n{out.stderr[-3000:]}"
        return json.loads(out.stdout)

    def diagnostics(self):
        """What to read when a test fails: the agent's stderr tail, the stand-ins' request logs, the rules."""
        stderr = re.sub(r"\x1b\[[0-9;]*m", "", self.agent.stderr_text())
        parts = [f"--- agent stderr (tail) ---\n{stderr[-6000:]}"]
        for s in self._stoppable:
            if isinstance(s, ImdsStandIn):
                parts.append(f"--- {s.name} requests ---\n{s.log()[-3000:]}")
        parts.append("--- nft ruleset ---\n" + self.nft_ruleset())
        parts.append("--- iptables-legacy -t nat -S ---\n" + "\n".join(self.legacy_nat()))
        parts.append("--- ip6tables-legacy -t nat -S ---\n" + "\n".join(self.legacy_nat6()))
        return "\n".join(parts)

