"""/metrics (SPEC §5, issue 4): Prometheus text, names prefixed `emrfs_role_agent_`, values equal to what
a known sequence of requests did; no secret, no user or role in a label."""

import os
import re
import signal
import time

from helpers.net import wait_until
from helpers.osusers import require_root

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset of (label, value)): float} from the text exposition; checks its shape."""
    samples, typed = {}, set()
    lines = text.splitlines()
    assert lines[-1] == "# EOF", lines[-1]
    for line in lines[:-1]:
        if line.startswith("# TYPE ") or line.startswith("# HELP ") or line.startswith("# UNIT "):
            name = line.split()[2]
            assert name.startswith("emrfs_role_agent_"), line
            typed.add(name)
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        assert name.startswith("emrfs_role_agent_"), line
        assert any(name == t or name.startswith(t + "_") for t in typed), f"{name} has no TYPE"
        key = (name, frozenset(LABEL.findall(labels or "")))
        assert key not in samples, f"duplicate sample {line}"
        samples[key] = float(value)
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def metrics(agent):
    r = agent.get("/metrics", token=False)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/openmetrics-text")
    return r.text, parse(r.text)


def check_histogram(samples, name):
    """Cumulative buckets ending in +Inf = count; returns the count."""
    buckets = sorted(
        ((float(dict(k[1])["le"]), v) for k, v in samples.items() if k[0] == name + "_bucket"),
        key=lambda b: b[0],
    )
    assert buckets and buckets[-1][0] == float("inf"), name
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f"{name} buckets are not cumulative"
    assert counts[-1] == value(samples, name + "_count")
    return counts[-1]


def test_metrics_count_what_a_known_sequence_of_requests_did(moto, four_rule_world):
    require_root("running the agent as another user than its callers")
    world, agent, proxy = four_rule_world, four_rule_world.agent, four_rule_world.proxy
    # The agent runs as nobody, the requests come from root: refusals must be tallied under root.
    assert agent.uid != os.geteuid()
    analytics, engineering, untrusted = world.analytics, world.engineering, world.untrusted
    text, before = metrics(agent)
    # Nothing counted before the first request; the families exist all the same.
    assert value(before, "emrfs_role_agent_request_duration_seconds_count") == 0
    for family in ("audit_records", "audit_write_errors", "audit_records_dropped"):
        assert f"# TYPE emrfs_role_agent_{family} counter" in text
    for family in ("cache_sessions", "audit_queue_depth"):
        assert f"# TYPE emrfs_role_agent_{family} gauge" in text
    for family in ("request_duration_seconds", "sts_call_duration_seconds", "audit_fsync_duration_seconds"):
        assert f"# TYPE emrfs_role_agent_{family} histogram" in text
    for family in ("requests", "sts_calls", "cache_lookups", "cache_refreshes", "config_reloads"):
        assert f"# TYPE emrfs_role_agent_{family} counter" in text
    # Known series start at 0, so that an alert on increase() fires on the first one.
    assert value(before, "emrfs_role_agent_requests_total", outcome="error", code="AuditUnavailable") == 0
    assert ("emrfs_role_agent_requests_total", frozenset({("outcome", "error"), ("code", "AuditUnavailable")})) in before
    assert ("emrfs_role_agent_sts_calls_total", frozenset({("result", "unavailable")})) in before
    assert ("emrfs_role_agent_config_reloads_total", frozenset({("result", "rejected")})) in before

    sent = []

    def ask(kind, i=0):
        params, headers = world.request(kind, i)
        r = agent.get("/v1/credentials", params=params, headers=headers, token=False)
        assert (r.status_code, r.json().get("code")) == world.expected(kind), (kind, r.text)
        sent.append(r)
        return r

    for i in range(5):
        ask("allow", i)
    for _ in range(3):
        ask("deny-rule")
    for _ in range(2):
        ask("sts-denied")  # STS refuses, then the refusal is cached
    ask("no-rule")  # fallback deny
    for _ in range(4):
        ask("bad-token")
    for _ in range(2):
        ask("bad-location")
    ask("impersonation")
    ask("sts-down")

    # The 4 wrong tokens and 2 bad parameters reached no decision: they are counted per caller and
    # written once a second as `refused` records, whose counts add up to exactly those 6 requests.
    refused = wait_until(
        lambda: (lambda rs: rs if sum(r["count"] for r in rs) == 6 else None)(
            [r for r in agent.audit_records() if r["event"] == "refused"]),
        10, "the refused records")
    assert all(r["caller_uid"] == os.geteuid() and r["caller_user"] == "root" for r in refused), refused
    codes = {}
    for r in refused:
        for code, n in r["codes"].items():
            codes[code] = codes.get(code, 0) + n
    assert codes == {"Unauthorized": 4, "InvalidRequest": 2}

    text, m = metrics(agent)
    requests_by = {
        ("allow", "OK"): 5,
        ("deny", "AccessDenied"): 3 + 2 + 1,
        ("deny", "Unauthorized"): 4,
        ("error", "InvalidRequest"): 2,
        ("deny", "ImpersonationDenied"): 1,
        ("error", "CredentialsUnavailable"): 1,
    }
    counted = {tuple(dict(k[1])[x] for x in ("outcome", "code")): v for k, v in m.items()
               if k[0] == "emrfs_role_agent_requests_total" and v}
    assert counted == requests_by
    assert check_histogram(m, "emrfs_role_agent_request_duration_seconds") == len(sent) == 19

    # STS: one good call, one refusal (the second ask was answered from the negative cache), and
    # every attempt against the unavailable endpoint, as the proxy saw them.
    down = proxy.calls[engineering["arn"]]
    assert down >= 1 and proxy.calls[untrusted["arn"]] == 1 and proxy.calls[analytics["arn"]] == 1
    assert value(m, "emrfs_role_agent_sts_calls_total", result="ok") == 1
    assert value(m, "emrfs_role_agent_sts_calls_total", result="denied") == 1
    assert value(m, "emrfs_role_agent_sts_calls_total", result="unavailable") == down
    assert check_histogram(m, "emrfs_role_agent_sts_call_duration_seconds") == 2 + down

    # Cache: one miss, four hits; one session held (a refusal or an outage is not a session).
    assert value(m, "emrfs_role_agent_cache_lookups_total", result="miss") == 1
    assert value(m, "emrfs_role_agent_cache_lookups_total", result="hit") == 4
    assert value(m, "emrfs_role_agent_cache_lookups_total", result="stale") == 0
    assert value(m, "emrfs_role_agent_cache_sessions") == 1

    # Audit: every line in the file counted, nothing queued, nothing failed; one fsync per batch.
    lines = len(agent.audit_records())
    # start, config_loaded, STS calls, a record per decided request, the refused records
    assert lines == 2 + 2 + down + (len(sent) - 6) + len(refused)
    assert value(m, "emrfs_role_agent_audit_records_total") == lines
    assert value(m, "emrfs_role_agent_audit_queue_depth") == 0
    assert value(m, "emrfs_role_agent_audit_write_errors_total") == 0
    assert value(m, "emrfs_role_agent_audit_records_dropped_total") == 0
    assert 1 <= check_histogram(m, "emrfs_role_agent_audit_fsync_duration_seconds") <= lines

    # Reloads: one good, one rejected.
    assert value(m, "emrfs_role_agent_config_reloads_total", result="ok") == 0
    agent.send_signal(signal.SIGHUP)
    wait_metric(agent, "emrfs_role_agent_config_reloads_total", 1, result="ok")
    agent.write_config({**agent.config, "server": {**agent.config["server"], "not_a_key": 1}})
    agent.send_signal(signal.SIGHUP)
    wait_metric(agent, "emrfs_role_agent_config_reloads_total", 1, result="rejected")
    _, m = metrics(agent)
    assert value(m, "emrfs_role_agent_config_reloads_total", result="ok") == 1

    # No secret, no user name, no role in /metrics.
    handed = {r.json()["SecretAccessKey"] for r in sent if r.status_code == 200}
    handed |= {r.json()["Token"] for r in sent if r.status_code == 200}
    handed |= {moto.user["secret_access_key"], agent.token}
    assert not [s for s in handed if s in text]
    for name in (analytics["arn"], "someone-else", "no-secrets", analytics["bucket"]):
        assert name not in text
    # Nor anywhere else the agent wrote (it logs at debug level here).
    agent.assert_no_secrets(handed)


def wait_metric(agent, name, want, timeout=30, **labels):
    """Waits until the sample `name{labels}` equals `want`; returns all samples at that moment."""
    def reached():
        samples = metrics(agent)[1]
        return samples if value(samples, name, **labels) == want else None

    return wait_until(reached, timeout, f"{name}{labels} to reach {want}")


def test_buffered_mode_counts_records_and_syncs_within_a_second(moto, agent_factory):
    started = time.monotonic()
    agent = agent_factory(
        mappings=[{"name": "a", "role": moto.role("analytics")["arn"]}],
        config={"audit": {"durability": "buffered"}},
    )
    for _ in range(10):
        assert agent.credentials().status_code == 200
    # Written in batches a few milliseconds apart, not waiting for the sync (that the lines reach the
    # file before any sync is tested on the writer itself in src/audit.rs): start, config_loaded, the
    # STS call, ten requests, and nothing more.
    want = 2 + 1 + 10
    wait_until(lambda: len(agent.audit_records()) >= want, 30, f"{want} audit lines")
    lines = len(agent.audit_records())
    assert lines == want
    m = wait_metric(agent, "emrfs_role_agent_audit_records_total", lines)
    # Synced in batches, not once a record: at most once a second since the agent started (on a
    # fast machine that is one or two syncs for these 13 lines).
    elapsed = time.monotonic() - started
    assert check_histogram(m, "emrfs_role_agent_audit_fsync_duration_seconds") <= 1 + elapsed
    # And synced without anything else happening: the once-a-second flush.
    wait_until(lambda: check_histogram(metrics(agent)[1], "emrfs_role_agent_audit_fsync_duration_seconds") >= 1,
               30, "a sync of the buffered records")
    _, later = metrics(agent)
    assert check_histogram(later, "emrfs_role_agent_audit_fsync_duration_seconds") >= 1
    assert value(later, "emrfs_role_agent_audit_records_total") == lines
