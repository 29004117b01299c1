"""Fixtures for the end-to-end suites.

    moto_server   (session)  one moto server (STS, IAM, S3) on a free loopback port
    moto          (function) a fresh AWS world in it: the agent's source user, an admin, roles with their
                             buckets; IAM enforcement on. Options with a mark:
                             @pytest.mark.moto(roles=[{...}], enforce_iam=False, buckets=[...])
                             (role keys: see helpers/moto_setup.py; default roles: moto_server.DEFAULT_ROLES)
    agent_factory (function) agent_factory(mappings=[...], config={...}) starts `emrfs-role-agent serve`
                             against `moto` and waits for /readyz; see helpers/agent.py
    os_users      (session)  OS users emrfs-alice, emrfs-bob, emrfs-yarn and their groups (root only);
                             os_users.run_as(user, argv, env) / python_as(user, code, env)
"""

import os

import pytest

from helpers.agent import AgentFactory
from helpers.moto_server import MotoServer
from helpers.osusers import OsUsers


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "moto(roles=None, enforce_iam=True, buckets=()): how the `moto` fixture builds its world"
    )


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


@pytest.fixture(scope="session")
def os_users():
    if os.geteuid() != 0:
        pytest.skip("creating OS users needs root (CI runs as root)")
    users = OsUsers()
    yield users
    users.cleanup()
