"""One request to the agent: the location encoded exactly once, the token, the answer and the refusals."""

import urllib.parse

import pytest

from conftest import T0
from emrfs_role_agent.agent import AgentClient, AgentError
from emrfs_role_agent.settings import Settings

LITERAL = ["s3://lake/x%2Fy/secret/f", "s3://lake/100%off.csv", "s3://lake/a+b c", "s3://lake/café/ü",
           "s3://lake/dt=2026-01-01 00%3A00/part-0", "s3://lake/a%25b&access=write#frag"]


@pytest.mark.parametrize("location", LITERAL)
def test_location_is_percent_encoded_once_and_decodes_to_the_literal_key(agent, settings, location):
    agent.rule("s3://lake/", role="lake")
    answer = AgentClient(settings).fetch(location, "read", T0)
    query, decoded, access, auth = agent.requests[-1]
    assert query == "location=" + urllib.parse.quote(location, safe="") + "&access=read"
    assert decoded == location and access == "read" and auth == agent.token
    assert "+" not in query and " " not in query
    assert answer.scope == "s3://lake/"
    assert answer.credentials.access_key_id == "ASIALAKE0000"


def test_a_scope_that_does_not_contain_the_location_is_dropped(agent, settings):
    agent.rule("s3://lake/a", role="lake", scope="s3://lake/b/")
    assert AgentClient(settings).fetch("s3://lake/a/1", "write", T0).scope is None
    agent.rules[:] = []
    agent.rule("s3://lake/a", role="lake", scope=False)
    assert AgentClient(settings).fetch("s3://lake/a/1", "write", T0).scope is None


def test_deny_carries_its_scope_and_the_agents_words(agent, settings):
    agent.rule("s3://lake/secret/", deny=True)
    with pytest.raises(AgentError) as e:
        AgentClient(settings).fetch("s3://lake/secret/plans.txt", "read", T0)
    err = e.value
    assert (err.status, err.code, err.scope, err.is_denial) == (403, "AccessDenied", "s3://lake/secret/", True)
    assert str(err) == (f"emrfs-role-agent at {agent.endpoint} refused read credentials for "
                        "s3://lake/secret/plans.txt: HTTP 403 AccessDenied: deny rule for s3://lake/secret/")


def test_wrong_token_unreachable_agent_and_bad_answers(agent, settings, tmp_path):
    (tmp_path / "wrong").write_text("not-the-token")
    with pytest.raises(AgentError) as e:
        AgentClient(Settings(endpoint=agent.endpoint, token_file=str(tmp_path / "wrong"))).fetch("s3://b/k", "read",
                                                                                                 T0)
    assert e.value.status == 401 and not e.value.is_refusal and "HTTP 401 Unauthorized" in str(e.value)
    with pytest.raises(AgentError) as e:
        AgentClient(Settings(endpoint=agent.endpoint, token_file=str(tmp_path / "none"))).fetch("s3://b/k", "read",
                                                                                                T0)
    assert "token file" in str(e.value) and "does not exist" in str(e.value)
    with pytest.raises(AgentError) as e:
        AgentClient(Settings(endpoint="http://127.0.0.1:1", token_file=None)).fetch("s3://b/k", "read", T0)
    assert e.value.status == 0 and "could not be reached" in str(e.value)
    agent.answer = lambda loc, acc: (200, {"AccessKeyId": "ASIAX", "SecretAccessKey": "s3cr3t-x",
                                           "Expiration": "yesterday"})
    with pytest.raises(AgentError) as e:
        AgentClient(settings).fetch("s3://b/k", "read", T0)
    assert "invalid Expiration" in str(e.value) and "s3cr3t" not in str(e.value)
    agent.answer = lambda loc, acc: (200, {"AccessKeyId": "ASIAX", "SecretAccessKey": "s3cr3t-x",
                                           "Expiration": "2020-01-01T00:00:00Z"})
    with pytest.raises(AgentError) as e:
        AgentClient(settings).fetch("s3://b/k", "read", T0)
    assert "expired at 2020-01-01T00:00:00Z" in str(e.value) and "s3cr3t" not in str(e.value)
    agent.answer = lambda loc, acc: (200, b"s3cr3t-x not json")
    with pytest.raises(AgentError) as e:
        AgentClient(settings).fetch("s3://b/k", "read", T0)
    assert "not a JSON object" in str(e.value) and "s3cr3t" not in str(e.value)


def test_no_location_asks_without_one(agent, settings):
    agent.answer = lambda loc, acc: (200, agent.credentials("node"))
    answer = AgentClient(settings).fetch("", "read", T0)
    assert agent.requests[-1][0] == "access=read" and answer.scope is None


def test_credentials_never_print_their_secrets(agent, settings):
    agent.rule("s3://lake/", role="lake")
    creds = AgentClient(settings).fetch("s3://lake/k", "read", T0).credentials
    text = repr(creds) + str(creds) + creds.describe()
    assert "ASIALAKE0000" in text and "arn:aws:iam::111111111111:role/lake" in text
    assert not [s for s in agent.secrets()[1:] if s in text]


def test_a_named_user_is_asked_for(agent, settings):
    agent.rule("s3://lake/", role="lake")
    named = Settings(**{**settings.__dict__, "user": "alice w"})
    AgentClient(named).fetch("s3://lake/k", "read", T0)
    assert agent.requests[-1][0] == "location=s3%3A%2F%2Flake%2Fk&access=read&user=alice%20w"
    AgentClient(settings).fetch("s3://lake/k", "read", T0)
    assert "user=" not in agent.requests[-1][0]
