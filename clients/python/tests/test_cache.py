"""The scope cache: the JVM clients' semantics, with a fake agent and a clock the test moves (no sleeps)."""

import threading

import pytest

from emrfs_role_agent import cache as cache_module
from emrfs_role_agent.agent import AgentClient, AgentError
from emrfs_role_agent.cache import MIN_CACHE_TIME, ScopeCache, refresh_at


@pytest.fixture
def cache(settings, clock):
    return ScopeCache(AgentClient(settings), clock)


def test_one_answer_serves_every_location_under_its_scope(agent, cache):
    agent.rule("s3://lake/teamA/", role="team-a")
    keys = [cache.get(f"s3://lake/teamA/{k}", "read").credentials.access_key_id
            for k in ("a", "b/c", "x%2Fy", "café", "100%off")]
    assert keys == ["ASIATEAMA0000"] * 5
    assert agent.asked() == [("s3://lake/teamA/a", "read")]


def test_longest_scope_wins(agent, cache):
    agent.rule("s3://lake/teamA/private/", role="private")
    agent.rule("s3://lake/teamA/", role="team-a")
    assert cache.get("s3://lake/teamA/private/y", "read").credentials.role_arn.endswith("/private")
    assert cache.get("s3://lake/teamA/x", "read").credentials.role_arn.endswith("/team-a")
    # Both scopes cached, the shorter one stored last: each location gets the longest scope it lies under.
    assert cache.get("s3://lake/teamA/private/z", "read").credentials.role_arn.endswith("/private")
    assert cache.get("s3://lake/teamA/privateer", "read").credentials.role_arn.endswith("/team-a")
    assert len(agent.requests) == 2


def test_scopes_are_kept_per_access(agent, cache):
    agent.rule("s3://lake/teamA/", role="team-a")
    cache.get("s3://lake/teamA/x", "read")
    cache.get("s3://lake/teamA/y", "read")
    cache.get("s3://lake/teamA/x", "write")
    cache.get("s3://lake/teamA/z", "write")
    assert agent.asked() == [("s3://lake/teamA/x", "read"), ("s3://lake/teamA/x", "write")]


def test_an_answer_without_scope_holds_for_its_location_only(agent, cache):
    agent.rule("s3://lake/", role="lake", scope=False)
    cache.get("s3://lake/a", "read")
    cache.get("s3://lake/a", "read")
    cache.get("s3://lake/ab", "read")
    assert agent.asked() == [("s3://lake/a", "read"), ("s3://lake/ab", "read")]


def test_concurrent_misses_share_one_agent_request(agent, cache, monkeypatch):
    """N threads miss at once; the agent holds its answer until the other N-1 are waiting on the first one's
    future (counted as they start waiting, so the overlap is certain without sleeping)."""
    n = 8
    waiting = threading.Condition()
    count = [0]

    class CountingFuture(cache_module.Future):
        def result(self, timeout=None):
            with waiting:
                count[0] += 1
                waiting.notify_all()
            return super().result(timeout)

    monkeypatch.setattr(cache_module, "Future", CountingFuture)

    def hold(location, access):
        with waiting:
            assert waiting.wait_for(lambda: count[0] == n - 1, timeout=20), count[0]

    agent.on_request = hold
    agent.rule("s3://lake/teamA/", role="team-a")
    results, errors = [], []
    start = threading.Barrier(n)

    def worker():
        start.wait()
        try:
            results.append(cache.get("s3://lake/teamA/part-0", "read"))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == n
    assert len({id(r) for r in results}) == 1
    assert len(agent.requests) == 1 and count[0] == n - 1


def test_concurrent_waiters_all_get_the_refusal(agent, cache, monkeypatch):
    n = 4
    arrived = threading.Barrier(n)
    waiting = threading.Condition()
    count = [0]

    class CountingFuture(cache_module.Future):
        def result(self, timeout=None):
            with waiting:
                count[0] += 1
                waiting.notify_all()
            return super().result(timeout)

    monkeypatch.setattr(cache_module, "Future", CountingFuture)
    agent.on_request = lambda *a: waiting.acquire() and (waiting.wait_for(lambda: count[0] == n - 1, 20),
                                                         waiting.release())
    agent.answer = lambda loc, acc: (503, {"code": "CredentialsUnavailable", "message": "STS is down"})
    errors = []

    def worker():
        arrived.wait()
        try:
            cache.get("s3://lake/x", "read")
        except AgentError as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == n and len(agent.requests) == 1
    assert all("HTTP 503 CredentialsUnavailable: STS is down" in str(e) for e in errors)
    assert len({id(e) for e in errors}) == n  # each caller its own exception


def test_refresh_ahead_of_expiry_asks_with_the_scope(agent, cache, clock):
    agent.rule("s3://lake/teamA/", role="team-a")
    first = cache.get("s3://lake/teamA/a", "read")
    assert first.refresh_at == first.expires_at - 900
    clock.advance(3600 - 900 - 1)
    assert cache.get("s3://lake/teamA/b", "read") is first
    assert len(agent.requests) == 1
    clock.advance(2)
    agent.rotate()
    agent.expires_at = clock.now + 3600
    second = cache.get("s3://lake/teamA/b", "read")
    assert second is not first and second.credentials.access_key_id == "ASIATEAMA0001"
    assert agent.asked()[-1] == ("s3://lake/teamA/", "read")
    assert cache.size() == 1


def test_a_failed_refresh_serves_the_current_credentials_until_they_expire(agent, cache, clock, caplog):
    agent.rule("s3://lake/teamA/", role="team-a")
    first = cache.get("s3://lake/teamA/a", "read")
    agent.answer = lambda loc, acc: (503, {"code": "CredentialsUnavailable", "message": "STS is down"})
    clock.advance(3600 - 900 + 1)
    assert cache.get("s3://lake/teamA/a", "read") is first
    assert "serving the cached ASIATEAMA0000" in caplog.text
    clock.advance(899 - 2)
    assert cache.get("s3://lake/teamA/b", "read") is first
    clock.advance(2)  # expired
    with pytest.raises(AgentError) as e:
        cache.get("s3://lake/teamA/a", "read")
    assert "STS is down" in str(e.value)


def test_a_refresh_that_no_longer_covers_the_location_asks_for_the_location(agent, cache, clock):
    """A reload narrowed the rule: deny s3://lake/exports/secret/ now sits under the cached s3://lake/exports/."""
    agent.rule("s3://lake/exports/", role="exports")
    cache.get("s3://lake/exports/secret/f", "read")
    agent.rules[:] = []
    agent.rule("s3://lake/exports/secret/", deny=True)
    agent.rule("s3://lake/exports/", role="exports", scope=False)  # no prefix qualifies: exactly the location
    clock.advance(3600 - 900 + 1)
    with pytest.raises(AgentError) as e:
        cache.get("s3://lake/exports/secret/f", "read")
    assert e.value.is_denial
    assert agent.asked() == [("s3://lake/exports/secret/f", "read"), ("s3://lake/exports/", "read"),
                             ("s3://lake/exports/secret/f", "read")]
    # Other keys under the old scope ask for themselves too: the old answer is gone.
    assert cache.get("s3://lake/exports/public/g", "read").credentials.role_arn.endswith("/exports")
    assert agent.asked()[-1] == ("s3://lake/exports/public/g", "read")


def test_a_deny_with_scope_is_remembered_for_the_deny_cache_time(agent, cache, clock):
    agent.rule("s3://lake/secret/", deny=True)
    for key in ("a", "b/c", "a"):
        with pytest.raises(AgentError):
            cache.get(f"s3://lake/secret/{key}", "read")
    assert len(agent.requests) == 1
    clock.advance(30)
    with pytest.raises(AgentError):
        cache.get("s3://lake/secret/a", "read")
    assert len(agent.requests) == 2
    # A deny holds for its access only.
    with pytest.raises(AgentError):
        cache.get("s3://lake/secret/a", "write")
    assert len(agent.requests) == 3


def test_a_refusal_without_scope_is_not_remembered(agent, cache):
    agent.answer = lambda loc, acc: (403, {"code": "AccessDenied", "message": "STS refused (request id 1)"})
    for _ in range(2):
        with pytest.raises(AgentError):
            cache.get("s3://lake/x", "read")
    assert len(agent.requests) == 2


def test_a_full_bucket_drops_the_entry_closest_to_expiry(agent, settings, clock):
    from dataclasses import replace

    cache = ScopeCache(AgentClient(replace(settings, max_scopes=2)), clock)
    agent.rule("s3://lake/", role="lake", scope=False)
    cache.get("s3://lake/a", "read")
    agent.expires_at += 10
    cache.get("s3://lake/b", "read")
    agent.expires_at += 10
    cache.get("s3://lake/c", "read")
    assert cache.size() == 2
    assert cache.lookup("s3://lake/a", "read", clock.now) is None
    assert cache.lookup("s3://lake/c", "read", clock.now) is not None


def test_refresh_time():
    assert refresh_at(0, 3600, 900) == 2700
    assert refresh_at(0, 600, 900) == MIN_CACHE_TIME
    assert refresh_at(0, 30, 900) == 30
