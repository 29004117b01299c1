"""The bootstrap action and what on the node would fight the agent (docs/install-on-emr.md, "Coexistence with
EMR's own mechanisms"): the release's REAL binary's `check` judges the node before anything changes. A refusal
(interception asked for beside another metadata interceptor, or on a runtime-role cluster) installs nothing; a
warning (the same interceptor with interception off) is shown and the install goes on.

Run with --root: the node's firewall rules and processes are the fixtures in tests/fixtures/coexist, handed
over with the bootstrap's --ruleset and --processes test hooks."""

import os
import shutil

import pytest

from test_bootstrap import IMDS_CONFIG, IMDS_OFF_CONFIG, PROG, Node
from test_bootstrap_rollback import assert_nothing_installed, state

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "coexist")
URM_RULES = os.path.join(FIXTURES, "iptables-user-role-mapper.txt")
OUR_RULES = os.path.join(FIXTURES, "iptables-agent.txt")
SECRET_AGENT = os.path.join(FIXTURES, "processes-secret-agent.txt")
PLAIN = os.path.join(FIXTURES, "processes-plain.txt")
RUNTIME_ROLES = os.path.join(FIXTURES, "security-configuration-runtime-roles.json")
BINARY = f"/usr/local/bin/{PROG}"
REFUSED = "something on this node would fight the agent as configured"


@pytest.fixture
def node(tmp_path):
    n = Node(tmp_path, config=IMDS_CONFIG, real_binary=True)
    yield n
    n.stop_waiters()


def test_interception_beside_another_interceptors_nat_rules_installs_nothing(node):
    r = node.install("--ruleset", URM_RULES, "--processes", PLAIN, mappings=False, check=False)
    assert r.returncode != 0, r.stderr
    refusals = [line for line in r.stderr.splitlines() if line.startswith("refused: ")]
    assert len(refusals) == 1, r.stderr
    assert refusals[0].startswith(f"refused: {URM_RULES}: EMR User Role Mapper already redirects"), r.stderr
    assert "DNAT --to-destination 127.0.0.1:9944" in refusals[0] and "unset [imds] listen" in refusals[0]
    assert REFUSED in r.stderr and "nothing was changed" in r.stderr, r.stderr
    assert_nothing_installed(node)


def test_a_runtime_role_cluster_refuses_interception_named_by_its_s3_location(node):
    uri = node.s3.put("agent/security-configuration.json", open(RUNTIME_ROLES).read())
    r = node.install(
        "--security-configuration", uri, "--ruleset", OUR_RULES, "--processes", PLAIN, mappings=False, check=False
    )
    assert r.returncode != 0, r.stderr
    assert f"refused: {uri}: AuthorizationConfiguration.IAMConfiguration.EnableApplicationScopedIAMRole" in r.stderr
    assert f"refused: {uri}: AuthorizationConfiguration.LakeFormationConfiguration is set" in r.stderr, r.stderr
    assert REFUSED in r.stderr, r.stderr
    assert not node.path(BINARY).exists()


def test_a_refusal_on_an_installed_node_keeps_the_install(node):
    node.install("--ruleset", OUR_RULES, "--processes", PLAIN, mappings=False)
    before = state(node)
    # EMR's secret agent has come up since (a re-run through SSM, say).
    r = node.install("--ruleset", OUR_RULES, "--processes", SECRET_AGENT, mappings=False, check=False)
    assert r.returncode != 0, r.stderr
    assert f"refused: {SECRET_AGENT}: EMR's secret agent is running" in r.stderr, r.stderr
    assert state(node) == before


def test_without_interception_another_interceptor_is_a_warning_and_the_install_goes_on(node):
    node.configure(IMDS_OFF_CONFIG)
    r = node.install("--ruleset", URM_RULES, "--processes", SECRET_AGENT, mappings=False)
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert any(w.startswith(f"warning: {URM_RULES}: EMR User Role Mapper redirects") for w in warnings), r.stderr
    assert any(w.startswith(f"warning: {SECRET_AGENT}: EMR's secret agent is running") for w in warnings), r.stderr
    assert "refused:" not in r.stderr, r.stderr
    assert node.path(BINARY).exists()


# ---- the node's own firewall, read by `check` itself --------------------------------------------------
#
# The bootstrap's check runs as root on the node, where `check` reads the firewall rules itself (nft's ruleset
# and iptables-legacy's tables, or iptables-save's). Here in a network namespace of the test's own, with a
# foreign DNAT of 169.254.169.254 put there by either tool, and with the agent's own rules.

FOREIGN_DNAT = {
    "iptables": [
        ["iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-d", "169.254.169.254/32", "-p", "tcp", "--dport", "80",
         "-j", "DNAT", "--to-destination", "127.0.0.1:8181"],
    ],
    "nft": [
        ["nft", "add", "table", "ip", "metadata_proxy"],
        ["nft", "add", "chain", "ip", "metadata_proxy", "out",
         "{ type nat hook output priority -100; policy accept; }"],
        ["nft", "add", "rule", "ip", "metadata_proxy", "out", "ip", "daddr", "169.254.169.254", "tcp", "dport", "80",
         "dnat", "to", "127.0.0.1:8181"],
    ],
}  # fmt: skip
LISTING = {"iptables": "iptables-legacy-save", "nft": "nft list ruleset"}


@pytest.fixture
def netns():
    from helpers.netns import Netns
    from helpers.osusers import require_root

    require_root("network namespaces and NAT rules for 169.254.169.254")
    ns = Netns(prefix="emrfs-coexist")
    yield ns
    ns.delete()


@pytest.mark.parametrize("tool", ["iptables", "nft"])
def test_check_reads_the_nodes_own_firewall(netns, tmp_path, tool):
    from helpers.agent import agent_binary

    if shutil.which("nft") is None:
        pytest.skip("check reads nft's ruleset and iptables-legacy's tables where nft is installed")
    config = tmp_path / "config.toml"
    config.write_text(IMDS_CONFIG)
    check = [agent_binary(), "check", "--config", str(config), "--processes", "/dev/null"]

    # The agent's own rules, in both back ends: nothing to say.
    for backend in ("iptables", "nft"):
        netns.run([agent_binary(), "imds-redirect", "install", "--config", str(config), "--backend", backend])
    r = netns.run(check, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "refused:" not in r.stdout and "warning:" not in r.stdout, r.stdout

    for argv in FOREIGN_DNAT[tool]:
        netns.run(argv)
    r = netns.run(check, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    refusals = [line for line in r.stdout.splitlines() if line.startswith("refused: ")]
    assert len(refusals) == 1, r.stdout
    assert refusals[0].startswith(f"refused: {LISTING[tool]}: another metadata interceptor already redirects")
    assert "127.0.0.1:8181" in refusals[0], refusals[0]

    # Without interception the same rule is a warning.
    config.write_text(IMDS_OFF_CONFIG)
    r = netns.run(check, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(line.startswith(f"warning: {LISTING[tool]}: another metadata interceptor redirects")
               for line in r.stdout.splitlines()), r.stdout  # fmt: skip


# ---- after provisioning -------------------------------------------------------------------------------
#
# The bootstrap action runs before EMR installs the applications: EMR's site files and its secret agent appear
# later. The client waiter, which waits for EMR to finish provisioning the node, asks `check` again then.


def test_the_waiter_checks_the_provisioned_node_and_fails_on_a_refusal(node, tmp_path):
    from helpers.net import wait_until

    state = node.path("/emr/instance-controller/lib/info/job-flow-state.txt")
    state.parent.mkdir(parents=True)
    record = 'localInstance {\n  instanceId: "i-0"\n  nodeProvisionCheckinRecord {\n    status: %s\n  }\n}\n'
    state.write_text(record % "PENDING")
    processes = tmp_path / "processes.txt"
    processes.write_text(open(PLAIN).read())
    r = node.install("--ruleset", OUR_RULES, "--processes", str(processes), mappings=False)
    assert "refused:" not in r.stderr and "warning: " not in r.stderr, r.stderr
    assert node.waiters()

    # EMR provisions the node: its core-site with a role mapping, and its secret agent.
    core_site = node.path("/etc/hadoop/conf/core-site.xml")
    core_site.parent.mkdir(parents=True, exist_ok=True)
    core_site.write_text(
        "<configuration>\n<property><name>fs.s3.authorization.roleMapping</name>"
        "<value>arn:aws:iam::123456789012:role/x=u:alice</value></property>\n</configuration>\n"
    )
    processes.write_text(open(SECRET_AGENT).read())
    state.write_text(record % "SUCCESSFUL")
    wait_until(lambda: not node.waiters(), 30, "the waiter to finish")
    log = node.waiter_log()
    assert f"wire-clients: warning: {core_site}:2: fs.s3.authorization.roleMapping is set" in log, log
    assert f"wire-clients: refused: {processes}: EMR's secret agent is running" in log, log
    assert "fights the agent as configured" in log, log


def test_the_waiter_on_a_quiet_node_says_nothing(node, tmp_path):
    from helpers.net import wait_until

    node.configure(IMDS_OFF_CONFIG)
    state = node.path("/emr/instance-controller/lib/info/job-flow-state.txt")
    state.parent.mkdir(parents=True)
    state.write_text('localInstance {\n  nodeProvisionCheckinRecord {\n    status: SUCCESSFUL\n  }\n}\n')
    node.install("--ruleset", OUR_RULES, "--processes", PLAIN, mappings=False)
    wait_until(lambda: not node.waiters(), 30, "the waiter to finish")
    log = node.waiter_log()
    assert "node provisioned" in log, log
    assert "refused:" not in log and "warning:" not in log and "fights the agent" not in log, log
