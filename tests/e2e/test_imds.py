"""Instance-metadata interception (SPEC §5.1): users' SDKs, with nothing configured, get their mapped role
from 169.254.169.254 through the agent, while root, the agent and exempt users still reach the node's own
metadata service.

Everything happens in a network namespace each test creates (helpers/netns.py), where 169.254.169.254 is on
the namespace's loopback and answered by a stand-in for the node's metadata service (helpers/imds_standin.py;
moto answers its credential paths). Never from the machine's own namespace. The world (who is mapped to
what, who is exempt) is helpers/imds_world.py. Every test runs with both redirect back ends: `nft` and
`iptables` (iptables-legacy).

Needs root: network namespaces, NAT rules, OS users.
"""

import errno
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from helpers.imds_standin import INSTANCE_ID
from helpers.imds_world import (
    BACKENDS, EXEMPT, IMDS_LISTEN, IMDS_LISTEN_V6, IMDS_PORT, MAPPED, NOT_INSTALLED, REGION, STANDIN, UNMAPPED,
    ImdsWorld, assumed_role_arn,
)
from helpers.netns import METADATA_ADDRESS, METADATA_ADDRESS_V6, Netns
from helpers.osusers import require_root

CREDS = "/latest/meta-data/iam/security-credentials/"
REGION_PATH = "/latest/meta-data/placement/region"
INSTANCE_ID_PATH = "/latest/meta-data/instance-id"
DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"
EXPIRATION = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# moto's instance profile: what the node's own metadata service hands out.
NODE_ROLE = "default-role"
NODE_SECRETS = ("test-secret-key", "test-session-token")
EMR_PROXY = "emr-metadata-proxy"
EMR_PROXY_LISTEN = "127.0.0.1:9946"
# The node's metadata service on its IPv6 address, and how an SDK in IPv6 endpoint mode reaches it.
STANDIN_V6 = "imds-standin-v6"
BASE_V6 = f"http://[{METADATA_ADDRESS_V6}]"
IPV6_MODE = {"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"}

# What a local user tries while the agent is down: bind the metadata listener's addresses and answer the
# users the redirect sends there with credentials of its own. Prints one line per address: "bound" or the
# errno's name; then, if it bound anything, serves until killed.
SQUATTER = r"""
import errno, socket, sys, threading
port = int(sys.argv[1])
bound = []
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(family)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        s.listen(16)
        bound.append(s)
        print(host, "bound", flush=True)
    except OSError as e:
        print(host, errno.errorcode.get(e.errno, e.errno), flush=True)
BODY = b'{"Code":"Success","AccessKeyId":"SQUATTED","SecretAccessKey":"x","Token":"x"}'
def serve(s):
    while True:
        c, _ = s.accept()
        c.recv(65536)
        c.sendall(b"HTTP/1.1 200 OK\r\nX-Metadata-Server: squatter\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % len(BODY) + BODY)
        c.close()
for s in bound:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
sys.stdin.read()
"""


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def netns():
    require_root("network namespaces and NAT rules for the instance-metadata redirect")
    ns = Netns()
    yield ns
    ns.delete()


@pytest.fixture
def world(netns, os_users, tmp_path_factory, backend):
    w = ImdsWorld(netns, os_users, tmp_path_factory, backend)
    yield w
    # Shown with a failing test's report.
    print(w.diagnostics())
    w.stop()


def preexisting_dnat(port):
    """A DNAT for the metadata address such as EMR's own metadata proxy puts in front of it."""
    return ["-p", "tcp", "-d", f"{METADATA_ADDRESS}/32", "--dport", "80", "-j", "DNAT",
            "--to-destination", f"127.0.0.1:{port}"]


def answered_by(probe, path=CREDS):
    """(status, body, which server) of a probe's answer for `path`; which server is the stand-in's name,
    or None when something else (the agent) answered."""
    a = probe["paths"][path]
    assert "error" not in a, f"{path}: {a}"
    return a["status"], a["body"], a["server"]


def imds_records(world):
    """The agent's credential records via imds, by the caller's user name; fails on a record of any
    caller but the test's users, or one with a location."""
    uids = {world.user(u).uid: u for u in (*MAPPED, EXEMPT, UNMAPPED)}
    by_user = {}
    for r in world.agent.audit_records():
        if r["event"] != "credentials" or r["via"] != "imds":
            continue
        assert r["caller_uid"] in uids, f"an IMDS record for uid {r['caller_uid']}, who never asked: {r}"
        assert r["caller_user"] == uids[r["caller_uid"]] and r["location"] is None, r
        by_user.setdefault(uids[r["caller_uid"]], []).append(r)
    return by_user


def test_mapped_users_get_their_roles_through_the_sdk_default_chain(world):
    """boto3 and the AWS CLI, with nothing configured, get each user's mapped role; the agent answers the
    credential paths as IMDS does and forwards the rest (region, instance id, identity document) to the
    node's metadata service; tokens are their caller's; the audit log says who got what, via imds."""
    out = world.redirect("status")
    assert out.returncode == NOT_INSTALLED, f"status before install: exit {out.returncode}\n{out.stdout}{out.stderr}"
    world.install()
    out = world.redirect("status")
    assert out.returncode == 0, f"status once installed: exit {out.returncode}\n{out.stdout}{out.stderr}"
    # What is installed: which back end, where the traffic goes, who is let through.
    for what in (world.backend, IMDS_LISTEN, EXEMPT):
        assert what in out.stdout.lower(), f"status does not name {what}:\n{out.stdout}"

    secrets = []
    handed_out = {}  # user -> access key ids its clients got
    for user, role in MAPPED.items():
        me = world.whoami(user)
        assert me["env"] == [], f"{user}'s client must run with no AWS_* variable: {me['env']}"
        assert me["credentials"] and me["credentials"]["method"] == "iam-role", me
        assert me["arn"] == assumed_role_arn(role, user), me["arn"]
        assert me["region"] == REGION
        assert world.cli_identity(user) == assumed_role_arn(role, user)
        secrets += [me["credentials"]["secret"], me["credentials"]["token"]]
        handed_out[user] = {me["credentials"]["access_key_id"]}

    # The agent's answers, as a redirected user sees them.
    alice = world.probe("emrfs-alice", [CREDS, CREDS + "analytics", REGION_PATH, INSTANCE_ID_PATH, DOCUMENT_PATH])
    assert alice["token"]["status"] == 200 and alice["token"].get("server") is None, alice["token"]
    assert answered_by(alice)[:2] == (200, "analytics")
    status, body, server = answered_by(alice, CREDS + "analytics")
    assert (status, server) == (200, None), body
    creds = json.loads(body)
    assert (creds["Code"], creds["Type"]) == ("Success", "AWS-HMAC"), creds
    assert EXPIRATION.match(creds["Expiration"]) and creds["LastUpdated"], creds
    assert creds["AccessKeyId"] and creds["SecretAccessKey"] and creds["Token"], sorted(creds)
    secrets += [creds["SecretAccessKey"], creds["Token"]]
    handed_out["emrfs-alice"].add(creds["AccessKeyId"])
    # Forwarded to the node's metadata service, which takes only its own tokens: the agent's.
    assert answered_by(alice, REGION_PATH)[:2] == (200, REGION)
    assert answered_by(alice, INSTANCE_ID_PATH)[:2] == (200, INSTANCE_ID)
    status, body, _ = answered_by(alice, DOCUMENT_PATH)
    assert status == 200 and (json.loads(body)["region"], json.loads(body)["instanceId"]) == (REGION, INSTANCE_ID)

    # However a credential path is written, the agent answers it and never forwards it: the node's own
    # role is not alice's, and the instance-identity credentials are nobody's.
    sneaky = [f"/2021-07-15/meta-data/iam/security-credentials/{NODE_ROLE}",
              f"//latest//meta-data/iam/security-credentials/{NODE_ROLE}",
              f"/latest/meta-data/iam/security-credentials%2F{NODE_ROLE}",
              "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance"]
    probed = world.probe("emrfs-alice", sneaky)
    for path in sneaky:
        status, body, server = answered_by(probed, path)
        assert (status, server) == (404, None), (path, status, server, body)

    # A token is its caller's: bob cannot use alice's.
    stolen = world.probe("emrfs-bob", [CREDS, CREDS + "analytics"], token=alice["token_used"])
    assert answered_by(stolen)[0] == 401 and answered_by(stolen, CREDS + "analytics")[0] == 401, stolen

    # The HTTP API's records are told apart from these.
    with world.ns.entered():
        assert world.agent.credentials().status_code == 403
    api = [r for r in world.agent.audit_records() if r["event"] == "credentials" and r["via"] != "imds"]
    assert [(r["via"], r["caller_uid"]) for r in api] == [("api", 0)], api

    by_user = imds_records(world)
    assert set(by_user) == set(MAPPED), by_user
    # alice's requests for the node's role and the instance-identity role, however written, are recorded refusals.
    refused = [r for r in by_user["emrfs-alice"] if r["outcome"] != "allow"]
    assert [(r["status"], r["error_code"], r["access_key_id"]) for r in refused] == [(404, "NotFound", None)] * len(
        sneaky), refused
    for user, role in MAPPED.items():
        records = [r for r in by_user[user] if r not in refused]
        assert all(r["outcome"] == "allow" and r["role_arn"] == world.moto.role(role)["arn"] for r in records), records
        assert {r["access_key_id"] for r in records} == handed_out[user], (records, handed_out[user])

    world.agent.assert_no_secrets(secrets)


SDK_CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdk_clients")


@pytest.fixture(scope="module")
def go_and_js_clients():
    """The AWS SDK for Go v2 and JavaScript v3 default-chain clients of test_sdk_clients.py (tests/e2e/sdk_clients),
    runnable by the test users: the Go binary is built into a world-readable directory."""
    assert shutil.which("go") and shutil.which("node") and shutil.which("npm"), "Go, Node.js and npm"
    where = tempfile.mkdtemp(prefix="emrfs-imds-clients-")
    os.chmod(where, 0o755)
    exe = os.path.join(where, "whoami-go")
    out = subprocess.run(["go", "build", "-o", exe, "."], cwd=os.path.join(SDK_CLIENTS, "go"), capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    js = os.path.join(SDK_CLIENTS, "js")
    if not os.path.isdir(os.path.join(js, "node_modules", "@aws-sdk")):
        out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=js,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-4000:]
    yield {"go-sdk-v2": [exe], "js-sdk-v3": [shutil.which("node"), os.path.join(js, "whoami.mjs")]}
    shutil.rmtree(where)


def test_go_and_js_sdks_get_their_roles_through_the_default_chain(world, go_and_js_clients):
    """The AWS SDKs for Go v2 and JavaScript v3, with nothing configured, fall through their default chains to
    instance metadata (IMDSv2) and get each user's mapped role; the unmapped user gets none."""
    world.install()
    for sdk, argv in go_and_js_clients.items():
        for user, role in MAPPED.items():
            out = world.client(user, argv, env={"STS_ENDPOINT": world.moto.endpoint})
            assert out.returncode == 0, f"{sdk} as {user}: exit {out.returncode}\n{out.stdout}{out.stderr[-3000:]}"
            assert f"ARN {assumed_role_arn(role, user)}" in out.stdout.splitlines(), f"{sdk} as {user}: {out.stdout}"
        out = world.client(UNMAPPED, argv, env={"STS_ENDPOINT": world.moto.endpoint})
        assert out.returncode == 1 and out.stdout.startswith("ERROR"), f"{sdk} as {UNMAPPED}: {out.stdout}"
    assert set(imds_records(world)) == {*MAPPED, UNMAPPED}


def test_unmapped_user_gets_nothing_and_exempt_users_reach_the_node_service(world):
    """An unmapped user under fallback deny gets no credentials by any route (but still its region); root
    and the exempt user, though mapped, reach the node's own metadata service and never the agent."""
    world.install()

    nobody = world.whoami(UNMAPPED)
    assert nobody["env"] == [] and nobody["credentials"] is None, nobody
    assert nobody["region"] == REGION
    cli = world.aws_cli(UNMAPPED, "sts", "get-caller-identity", "--endpoint-url", world.moto.endpoint,
                        "--region", "us-east-1")
    assert cli.returncode != 0 and "Unable to locate credentials" in cli.stderr, cli.stdout + cli.stderr
    denied = world.probe(UNMAPPED, [CREDS, CREDS + "analytics", CREDS + NODE_ROLE, REGION_PATH])
    for path in (CREDS, CREDS + "analytics", CREDS + NODE_ROLE):
        assert answered_by(denied, path)[0] == 404, (path, denied)
    assert answered_by(denied, REGION_PATH)[:2] == (200, REGION)

    for who in ("root", EXEMPT):
        direct = world.probe(who, [CREDS, CREDS + NODE_ROLE])
        assert answered_by(direct) == (200, NODE_ROLE, STANDIN), (who, direct)
        assert json.loads(answered_by(direct, CREDS + NODE_ROLE)[1])["AccessKeyId"] == "test-key"
        me = world.whoami(who)
        assert me["credentials"]["access_key_id"] == "test-key" and me["region"] == REGION, (who, me)

    by_user = imds_records(world)
    assert set(by_user) == {UNMAPPED}, f"only the unmapped user's requests reach the agent: {by_user}"
    assert all((r["outcome"], r["role_arn"], r["access_key_id"]) == ("deny", None, None)
               for r in by_user[UNMAPPED]), by_user[UNMAPPED]
    world.agent.assert_no_secrets(NODE_SECRETS)


def test_agent_stopped_means_a_connection_error_for_redirected_callers(world):
    """The install guide's promise, on the product's own listener address (the packaged socket unit's, a port
    only root can bind) with no socket unit holding it: while the agent is down, no local user can take the
    port, and redirected users get a refused connection, IPv4 or IPv6 — never a squatter's answer, never the
    node's credentials."""
    assert IMDS_PORT < 1024, f"the packaged metadata listener {IMDS_LISTEN} is on a port any user may bind"
    world.start_standin(f"[{METADATA_ADDRESS_V6}]:80", STANDIN_V6)
    world.install()
    before = world.probe("emrfs-alice", [CREDS])
    assert answered_by(before)[:2] == (200, "analytics")

    assert world.agent.stop() == 0
    # A local user (one the redirect sends here, and one it does not) tries to take the port.
    for squatter in (UNMAPPED, "emrfs-bob"):
        user = world.user(squatter)
        process = subprocess.Popen(
            [*world.ns.wrap, "setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--",
             world.os_users.python, "-c", SQUATTER, str(IMDS_PORT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={"PATH": "/usr/sbin:/usr/bin:/bin"},
        )  # fmt: skip
        try:
            said = [process.stdout.readline().strip() for _ in range(2)]
            assert said == ["127.0.0.1 EACCES", "::1 EACCES"], f"{squatter} on port {IMDS_PORT}: {said}"
            refused = world.probe("emrfs-alice", [CREDS])
            assert refused["token"].get("error") == "ConnectionRefusedError", refused
            assert refused["paths"][CREDS].get("error") == "ConnectionRefusedError", refused
            refused = world.probe("emrfs-alice", [CREDS], base=BASE_V6)
            assert refused["paths"][CREDS].get("error") == "ConnectionRefusedError", refused
            for env in ({}, IPV6_MODE):
                me = world.whoami("emrfs-alice", env=env)
                assert me["credentials"] is None, f"credentials while the agent is down ({env}): {me}"
        finally:
            process.kill()
            process.wait(10)
    # Still redirected, not let through to the node's credentials.
    out = world.redirect("status")
    assert out.returncode == 0, out.stdout + out.stderr
    # Exempt traffic is unaffected.
    assert answered_by(world.probe("root", [CREDS])) == (200, NODE_ROLE, STANDIN)
    assert answered_by(world.probe("root", [CREDS], base=BASE_V6)) == (200, NODE_ROLE, STANDIN_V6)


def test_the_ipv6_metadata_address_is_redirected_too(world, backend):
    """[fd00:ec2::254] is the same service as 169.254.169.254 (Nitro, IPv6 endpoint on): boto3 in IPv6 endpoint
    mode gets the user's mapped role from the agent, never the node's; exempt users and root still reach the
    node's service there; `status` and `remove` cover it."""
    world.start_standin(f"[{METADATA_ADDRESS_V6}]:80", STANDIN_V6)
    # The side door, open before the redirect is installed: the node's own role, to anyone.
    assert answered_by(world.probe("emrfs-alice", [CREDS], base=BASE_V6)) == (200, NODE_ROLE, STANDIN_V6)

    world.install()
    out = world.redirect("status")
    assert out.returncode == 0, out.stdout + out.stderr
    listed = out.stdout.lower()
    assert METADATA_ADDRESS_V6 in listed and IMDS_LISTEN_V6 in listed, out.stdout
    assert ("table ip6 emrfs_role_agent" if backend == "nft" else "ip6tables") in listed, out.stdout

    secrets = []
    for user, role in MAPPED.items():
        me = world.whoami(user, env=IPV6_MODE)
        assert me["env"] == ["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"], me["env"]
        assert me["credentials"] and me["credentials"]["method"] == "iam-role", me
        assert me["credentials"]["access_key_id"] != "test-key", f"{user} got the node's credentials over IPv6"
        assert me["arn"] == assumed_role_arn(role, user), me["arn"]
        secrets += [me["credentials"]["secret"], me["credentials"]["token"]]

    # Raw IMDSv2 over IPv6: the agent answers (no X-Metadata-Server), as the kernel-verified caller.
    alice = world.probe("emrfs-alice", [CREDS, CREDS + "analytics", CREDS + NODE_ROLE, REGION_PATH], base=BASE_V6)
    assert alice["token"]["status"] == 200 and alice["token"].get("server") is None, alice["token"]
    assert answered_by(alice)[:3] == (200, "analytics", None)
    status, body, server = answered_by(alice, CREDS + "analytics")
    assert (status, server) == (200, None) and json.loads(body)["AccessKeyId"] != "test-key", body
    assert answered_by(alice, CREDS + NODE_ROLE)[:3:2] == (404, None)
    # Other paths are forwarded to the node's service (at its configured IPv4 upstream).
    assert answered_by(alice, REGION_PATH)[:2] == (200, REGION)
    nobody = world.probe(UNMAPPED, [CREDS, CREDS + NODE_ROLE], base=BASE_V6)
    assert answered_by(nobody)[0] == 404 and answered_by(nobody, CREDS + NODE_ROLE)[0] == 404, nobody

    for who in ("root", EXEMPT):
        direct = world.probe(who, [CREDS], base=BASE_V6)
        assert answered_by(direct) == (200, NODE_ROLE, STANDIN_V6), (who, direct)
        me = world.whoami(who, env=IPV6_MODE)
        assert me["credentials"]["access_key_id"] == "test-key", (who, me)

    by_user = imds_records(world)
    assert set(by_user) == {*MAPPED, UNMAPPED}, by_user
    world.agent.assert_no_secrets(secrets)

    world.remove()
    assert world.our_rules() == []
    assert answered_by(world.probe("emrfs-alice", [CREDS], base=BASE_V6)) == (200, NODE_ROLE, STANDIN_V6)


def test_install_twice_remove_once_leaves_no_rule(world, backend):
    assert world.our_rules() == []
    world.install()
    once = world.our_rules()
    assert once, "install left no rule"
    if backend == "nft":
        # Ahead of any iptables DNAT (-100), so that ours decides first; IPv4 and IPv6 alike.
        for family in ("ip", "ip6"):
            listing = json.loads(world.ns.run(["nft", "-j", "list", "table", family, "emrfs_role_agent"]).stdout)
            chains = [c["chain"] for c in listing["nftables"] if "chain" in c]
            hooks = [(c["type"], c["hook"], c["prio"]) for c in chains if "hook" in c]
            assert hooks == [("nat", "output", -150)], (family, chains)
        assert not [line for line in world.legacy_nat() + world.legacy_nat6() if "EMRFS" in line]
    else:
        for nat in (world.legacy_nat(), world.legacy_nat6()):
            output = [line for line in nat if line.startswith("-A OUTPUT")]
            assert output and "-j EMRFS-ROLE-AGENT" in output[0] and "emrfs-role-agent" in output[0], output
        assert "emrfs_role_agent" not in world.nft_ruleset()

    world.install()
    assert world.our_rules() == once, "a second install changed the rules"
    assert answered_by(world.probe("emrfs-alice", [CREDS]))[:2] == (200, "analytics")

    world.remove()
    assert world.our_rules() == []
    out = world.redirect("status")
    assert out.returncode == NOT_INSTALLED, f"status after remove: exit {out.returncode}\n{out.stdout}{out.stderr}"
    # Back to the node's metadata service.
    assert answered_by(world.probe("emrfs-alice", [CREDS])) == (200, NODE_ROLE, STANDIN)


def test_rules_coexist_with_a_preexisting_dnat(world, backend):
    """EMR's own metadata proxy plays the pre-existing DNAT: users the agent redirects reach the agent, the
    others keep going where they went before; removing ours leaves that rule as it was."""
    world.start_standin(EMR_PROXY_LISTEN, EMR_PROXY)
    port = EMR_PROXY_LISTEN.rsplit(":", 1)[1]
    world.ns.run(["iptables-legacy", "-t", "nat", "-A", "OUTPUT", *preexisting_dnat(port)])
    theirs = [line for line in world.legacy_nat() if f"127.0.0.1:{port}" in line]
    assert len(theirs) == 1, world.legacy_nat()
    assert answered_by(world.probe("emrfs-alice", [CREDS])) == (200, NODE_ROLE, EMR_PROXY)

    world.install()
    output = [line for line in world.legacy_nat() if line.startswith("-A OUTPUT")]
    if backend == "iptables":
        assert "-j EMRFS-ROLE-AGENT" in output[0] and output[1:] == theirs, output
    else:
        assert output == theirs, output

    me = world.whoami("emrfs-alice")
    assert me["arn"] == assumed_role_arn("analytics", "emrfs-alice"), me
    assert answered_by(world.probe("emrfs-bob", [CREDS]))[:2] == (200, "engineering")
    for who in ("root", EXEMPT):
        assert answered_by(world.probe(who, [CREDS])) == (200, NODE_ROLE, EMR_PROXY), who

    world.remove()
    assert world.our_rules() == []
    assert [line for line in world.legacy_nat() if line.startswith("-A OUTPUT")] == theirs
    for who in ("emrfs-alice", "root"):
        assert answered_by(world.probe(who, [CREDS])) == (200, NODE_ROLE, EMR_PROXY), who
