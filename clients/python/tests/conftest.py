"""Fixtures: a fake agent (fake_agent.py), a clock the test moves, settings and a resolver joining them."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fake_agent import FakeAgent  # noqa: E402

from emrfs_role_agent.resolver import Resolver  # noqa: E402
from emrfs_role_agent.settings import Settings  # noqa: E402

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def agent(clock):
    a = FakeAgent(expires_at=clock.now + 3600)
    yield a
    a.stop()


@pytest.fixture
def token_file(tmp_path, agent):
    path = tmp_path / "token"
    path.write_text(agent.token)  # no trailing newline, as the bootstrap writes it
    return str(path)


@pytest.fixture
def settings(agent, token_file):
    return Settings(endpoint=agent.endpoint, token_file=token_file, connect_timeout=2, read_timeout=10,
                    refresh_before_expiry=900, deny_cache=30, max_scopes=1000)


@pytest.fixture
def resolver(settings, clock):
    from emrfs_role_agent.botocore import _Signing

    return Resolver(settings, clock, convert=_Signing)
