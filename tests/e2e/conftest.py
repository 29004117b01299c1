"""Fixtures for the end-to-end suites.

    moto_server   (session)  one moto server (STS, IAM, S3) on a free loopback port
    moto          (function) a fresh AWS world in it: the agent's source user, an admin, roles with their
                             buckets; IAM enforcement on. Options with a mark:
                             @pytest.mark.moto(roles=[{...}], enforce_iam=False, buckets=[...])
                             (role keys: see helpers/moto_setup.py; default roles: moto_server.DEFAULT_ROLES)
    agent_factory (function) agent_factory(mappings=[...], config={...}) starts `emrfs-role-agent serve`
                             against `moto` and waits for /readyz; see helpers/agent.py
    sts_proxy_factory (function) sts_proxy_factory(unavailable={arn}, delay={arn: seconds}) puts a
                             fault-injecting proxy in front of moto's STS; see helpers/sts_proxy.py
    four_rule_world (function) an agent with a deny rule, an allowed role, a role STS refuses and a role
                             STS is down for, fallback deny, and the answer each kind of request must
                             get; see helpers/four_rules.py. As root the agent runs as nobody, so that
                             its callers (the test, root) are another user (agent.uid)
    os_users      (session)  OS users emrfs-alice, emrfs-bob, emrfs-yarn and their groups (root only);
                             os_users.run_as(user, argv, env) / python_as(user, code, env)
    java_build    (session)  the JVM clients' jars and test drivers (scripts/build-emrfs-provider.sh); the build
                             directory, see helpers/jvm.py
    recorder      (function) a recording proxy in front of moto's S3 (helpers/s3_recorder.py): the access key
                             that signed each S3 request

A test that needs root calls helpers.osusers.require_root: without root it fails when CI=true and is
skipped otherwise, and the summary at the end names every test skipped that way.
"""

import os

import pytest

from helpers import jvm
from helpers.agent import AgentFactory
from helpers.four_rules import FourRuleWorld
from helpers.moto_server import MotoServer
from helpers.osusers import NEEDS_ROOT, NOBODY, OsUsers, require_root
from helpers.s3_recorder import S3Recorder
from helpers.sts_proxy import StsProxy


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "moto(roles=None, enforce_iam=True, buckets=()): how the `moto` fixture builds its world"
    )


def pytest_terminal_summary(terminalreporter):
    """Tests skipped for want of root are listed by name, whatever -r says: a quiet skip reads as a pass."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NEEDS_ROOT in str(r.longrepr)]
    if not skipped:
        return
    terminalreporter.section(f"{len(skipped)} test(s) NOT RUN: they need root", sep="!", red=True, bold=True)
    for report in skipped:
        terminalreporter.line(f"{report.nodeid}: {report.longrepr[2]}", red=True)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = MotoServer(str(tmp_path_factory.mktemp("moto")))
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server, request):
    mark = request.node.get_closest_marker("moto")
    options = dict(mark.kwargs) if mark else {}
    world = moto_server.setup(**options)
    yield world
    # Leave the server open to the next test's setup.
    moto_server.set_enforcement(False)


@pytest.fixture
def agent_factory(moto, tmp_path_factory):
    factory = AgentFactory(tmp_path_factory, moto)
    yield factory
    factory.stop_all()


@pytest.fixture
def sts_proxy_factory(moto):
    proxies = []

    def make(**kw):
        p = StsProxy(moto.endpoint, **kw)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.stop()


@pytest.fixture
def four_rule_world(moto, agent_factory, sts_proxy_factory):
    agent_user = (NOBODY, NOBODY) if os.geteuid() == 0 else None
    return FourRuleWorld(moto, agent_factory, sts_proxy_factory, agent_user=agent_user)


@pytest.fixture(scope="session")
def os_users():
    require_root("creating OS users (useradd) and running clients as them")
    users = OsUsers()
    yield users
    users.cleanup()


@pytest.fixture(scope="session")
def java_build():
    return jvm.build()


@pytest.fixture
def recorder(moto):
    r = S3Recorder(moto.endpoint)
    yield r
    r.stop()
