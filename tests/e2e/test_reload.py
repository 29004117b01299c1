"""SIGHUP reloads config and mappings (SPEC §8): a valid new config changes decisions atomically, an
invalid one is rejected (logged, audited, counted) and the old one keeps serving; requests in flight
during reloads all succeed."""

import concurrent.futures
import signal
import time


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def reload_count(agent, result):
    for line in agent.get("/metrics", token=False).text.splitlines():
        if line.startswith("emrfs_role_agent_config_reloads_total") and f'result="{result}"' in line:
            return float(line.split()[-1])
    return 0.0


def test_sighup_swaps_valid_mappings_and_rejects_invalid_ones(moto, agent_factory):
    analytics, engineering = moto.role("analytics"), moto.role("engineering")
    rule = lambda role: {"name": "data", "role": role["arn"], "prefixes": ["s3://data-bucket/"]}
    agent = agent_factory(mappings=[rule(analytics)], config={"fallback": {"mode": "deny"}})
    assert agent.credentials(location="s3://data-bucket/x").json()["RoleArn"] == analytics["arn"]

    # A valid new mapping: decisions change.
    config = dict(agent.config, mapping=[rule(engineering)])
    agent.write_config(config)
    agent.send_signal(signal.SIGHUP)
    assert wait_for(lambda: reload_count(agent, "ok") == 1)
    assert agent.credentials(location="s3://data-bucket/x").json()["RoleArn"] == engineering["arn"]

    # An invalid one (a role that is not an ARN): rejected, the previous rules keep deciding.
    bad = dict(config, mapping=[{"name": "data", "role": "not-an-arn", "prefixes": ["s3://data-bucket/"]}])
    agent.write_config(bad)
    agent.send_signal(signal.SIGHUP)
    assert wait_for(lambda: reload_count(agent, "rejected") == 1)
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
    agent = agent_factory(mappings=rules[0], config={"fallback": {"mode": "deny"}})

    def one(_):
        r = agent.credentials(location="s3://data-bucket/part")
        return r.status_code, r.json().get("RoleArn")

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(one, i) for i in range(200)]
        for i in range(10):
            agent.write_config(dict(agent.config, mapping=rules[(i + 1) % 2]))
            agent.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        answers = [f.result() for f in futures]
    assert all(status == 200 for status, _ in answers), answers
    assert {arn for _, arn in answers} <= {analytics["arn"], engineering["arn"]}
    assert wait_for(lambda: reload_count(agent, "ok") == 10)
