import pytest

from emrfs_role_agent.settings import (DEFAULT_ENDPOINT, DEFAULT_TOKEN_FILE, Settings, SettingsError,
                                       from_environment, parse_properties)


def test_defaults_without_environment_or_properties(tmp_path):
    s = from_environment({"EMRFS_ROLE_AGENT_CLIENT_PROPERTIES": str(tmp_path / "missing.properties")})
    assert (s.endpoint, s.token_file) == (DEFAULT_ENDPOINT, DEFAULT_TOKEN_FILE) == ("http://127.0.0.1:9944",
                                                                                  "/etc/emrfs-role-agent/token")
    assert (s.refresh_before_expiry, s.deny_cache, s.max_scopes) == (900, 30, 1000)


def test_properties_file_then_environment_wins(tmp_path):
    props = tmp_path / "client.properties"
    props.write_text("# written by the bootstrap\nendpoint = http://127.0.0.1:19944/\n"
                     "token-file=/run/agent/token\n! another comment\ndeny-cache: 2m\n")
    env = {"EMRFS_ROLE_AGENT_CLIENT_PROPERTIES": str(props)}
    s = from_environment(env)
    assert (s.endpoint, s.token_file, s.deny_cache) == ("http://127.0.0.1:19944", "/run/agent/token", 120)
    assert str(props) in s.source
    env["EMRFS_ROLE_AGENT_ENDPOINT"] = "http://localhost:9000"
    env["EMRFS_ROLE_AGENT_TOKEN_FILE"] = ""
    s = from_environment(env)
    assert (s.endpoint, s.token_file, s.deny_cache) == ("http://localhost:9000", None, 120)


@pytest.mark.parametrize("key,value,words", [
    ("EMRFS_ROLE_AGENT_ENDPOINT", "127.0.0.1:9944", "must be an http:// URL"),
    ("EMRFS_ROLE_AGENT_DENY_CACHE", "soon", "must be a duration"),
    ("EMRFS_ROLE_AGENT_MAX_SCOPES", "0", "at least 1"),
])
def test_bad_settings_name_the_variable(key, value, words):
    with pytest.raises(SettingsError) as e:
        Settings.load({key: value}, {})
    assert key in str(e.value) and words in str(e.value)


def test_properties_syntax():
    assert parse_properties("a=1\nb: 2\nc 3\n  # x\n!y\nd=\ne = x=y\n") == {"a": "1", "b": "2", "c": "3", "d": "",
                                                                          "e": "x=y"}


def test_whose_credentials_explicit_user_then_spark_user_else_none(tmp_path):
    base = {"EMRFS_ROLE_AGENT_CLIENT_PROPERTIES": str(tmp_path / "missing.properties")}
    assert from_environment(base).user is None
    # Spark's executors and drivers carry the application's user; their Python workers inherit it.
    assert from_environment({**base, "SPARK_USER": "alice"}).user == "alice"
    s = from_environment({**base, "SPARK_USER": "alice", "EMRFS_ROLE_AGENT_USER": "bob"})
    assert s.user == "bob" and "EMRFS_ROLE_AGENT_USER" in s.source and "user=bob" in str(s)
    assert from_environment({**base, "SPARK_USER": "  "}).user is None
