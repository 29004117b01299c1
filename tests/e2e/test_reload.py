"""SIGHUP reloads config and mappings (SPEC §8): a valid new config changes decisions atomically, an
invalid one is rejected (logged, audited, counted) and the old one keeps serving; requests in flight
during reloads all succeed.

Each SIGHUP here is sent once the previous one has taken effect (its reload counted in /metrics):
signals sent closer together may be delivered as one."""

import signal
import threading

from helpers.net import wait_until


def reload_count(agent, result):
    for line in agent.get("/metrics", token=False).text.splitlines():
        if line.startswith("emrfs_role_agent_config_reloads_total") and f'result="{result}"' in line:
            return float(line.split()[-1])
    return 0.0


def reload(agent, config, result="ok"):
    """Writes `config`, sends SIGHUP and waits until the agent counted that reload with `result`."""
    before = reload_count(agent, result)
    agent.write_config(config)
    agent.send_signal(signal.SIGHUP)
    wait_until(lambda: reload_count(agent, result) == before + 1, 30, f"reload {before + 1:.0f} ({result})")


def test_sighup_swaps_valid_mappings_and_rejects_invalid_ones(moto, agent_factory):
    analytics, engineering = moto.role("analytics"), moto.role("engineering")
    rule = lambda role: {"name": "data", "role": role["arn"], "prefixes": ["s3://data-bucket/"]}
    agent = agent_factory(mappings=[rule(analytics)], config={"fallback": {"mode": "deny"}})
    assert agent.credentials(location="s3://data-bucket/x").json()["RoleArn"] == analytics["arn"]
    assert (reload_count(agent, "ok"), reload_count(agent, "rejected")) == (0, 0)

    # A valid new mapping: decisions change.
    config = dict(agent.config, mapping=[rule(engineering)])
    reload(agent, config)
    assert reload_count(agent, "ok") == 1
    assert agent.credentials(location="s3://data-bucket/x").json()["RoleArn"] == engineering["arn"]

    # An invalid one (a role that is not an ARN): rejected, the previous rules keep deciding.
    bad = dict(config, mapping=[{"name": "data", "role": "not-an-arn", "prefixes": ["s3://data-bucket/"]}])
    reload(agent, bad, result="rejected")
    assert reload_count(agent, "rejected") == 1 and reload_count(agent, "ok") == 1
    assert agent.credentials(location="s3://data-bucket/x").json()["RoleArn"] == engineering["arn"]
    assert agent.process.poll() is None

    events = [r["event"] for r in agent.audit_records()]
    assert events.count("config_loaded") == 2 and events.count("config_rejected") == 1
    rejected = next(r for r in agent.audit_records() if r["event"] == "config_rejected")
    assert "not-an-arn" in rejected["error"] and "config.toml" in rejected["error"]
    assert "rejected" in agent.stderr_text()


def test_requests_in_flight_during_reloads_all_succeed(moto, agent_factory):
    analytics, engineering = moto.role("analytics"), moto.role("engineering")
    rules = [
        [{"name": "data", "role": analytics["arn"], "prefixes": ["s3://data-bucket/"]}],
        [{"name": "data", "role": engineering["arn"], "prefixes": ["s3://data-bucket/"]}],
    ]
    roles = [analytics["arn"], engineering["arn"]]
    agent = agent_factory(mappings=rules[0], config={"fallback": {"mode": "deny"}})

    # 20 clients ask without pause from before the first reload until after the last.
    answers, lock, done = [], threading.Lock(), threading.Event()

    def client():
        while not done.is_set():
            try:
                r = agent.credentials(location="s3://data-bucket/part")
                answer = (r.status_code, r.json().get("RoleArn"))
            except Exception as e:  # a request that failed outright is a failed answer too
                answer = (repr(e), None)
            with lock:
                answers.append(answer)

    def answered():
        with lock:
            return len(answers)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(20)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: answered() >= 20, 30, "answers before the first reload")
        for i in range(10):
            reload(agent, dict(agent.config, mapping=rules[(i + 1) % 2]))
            # Swapped in: every request from now on is decided by the new rules.
            assert agent.credentials(location="s3://data-bucket/x").json()["RoleArn"] == roles[(i + 1) % 2]
            # Let the clients see it too: of 40 more answers, at most 20 were in flight before the swap.
            after = answered()
            wait_until(lambda: answered() >= after + 40, 30, f"answers after reload {i + 1}")
    finally:
        done.set()
        for t in threads:
            t.join(30)
    assert not [t for t in threads if t.is_alive()]
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200]
    assert {arn for _, arn in answers} == set(roles)
    assert reload_count(agent, "ok") == 10 and reload_count(agent, "rejected") == 0
    events = [r["event"] for r in agent.audit_records()]
    assert events.count("config_loaded") == 1 + 10 and events.count("config_rejected") == 0
