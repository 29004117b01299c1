"""`audit.format = "ocsf"` (SPEC §7.1, issue 21): every record the agent writes is a valid OCSF 1.8.0 event,
checked against the published schema as the PyPI package ocsf-json-schema generates it (JSON Schema
2020-12, profiles []), not against the agent's own idea of it. The chain fields (SPEC §7.2) stay top-level
and are the only keys removed before validation.

Mapping (docs/auditing.md): credential decisions and refusals are Authentication (3002) "Account Switch"
(7), the caller as actor.user, the role session handed out as user, the outcome as status_id; lifecycle
records are Application Lifecycle (6002); calls to STS and S3 Access Grants are API Activity (6003); the
native record is kept whole under `unmapped`.

Each test drives every kind of record it names and fails if one of them was not seen, so that none can
pass by validating nothing."""

import concurrent.futures
import datetime
import functools
import json
import os
import pwd
import signal

import pytest
import requests
from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from helpers.access_grants_standin import MotoWithAccessGrants
from helpers.agent import AgentFactory
from helpers.audit_chain import check_chain, verify
from helpers.net import wait_until

OCSF_VERSION = "1.8.0"
CHAIN_KEYS = ("seq", "prev_file", "chain")
AUTHENTICATION, APPLICATION_LIFECYCLE, API_ACTIVITY = 3002, 6002, 6003
ACCOUNT_SWITCH = 7
START, STOP, UPDATE = 3, 4, 8
SUCCESS, FAILURE = 1, 2
CATEGORY = {AUTHENTICATION: 3, APPLICATION_LIFECYCLE: 6, API_ACTIVITY: 6}
SECRET_BUCKET = "secret-bucket"
PER_SECOND = 20  # server.max_requests_per_caller in the test that is throttled


@functools.lru_cache(maxsize=1)
def ocsf():
    return OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))


@functools.lru_cache(maxsize=None)
def validator(class_uid):
    schema = ocsf().get_class_schema(class_name=ocsf().lookup_class_name_from_uid(class_uid=class_uid), profiles=[])
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def event_name(record):
    return (record.get("unmapped") or {}).get("event")


def read_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def ocsf_event(record, chained=True):
    """The record without exactly its top-level chain fields (which must be there when chained)."""
    if chained:
        assert "seq" in record and "chain" in record, sorted(record)
    else:
        assert not set(CHAIN_KEYS) & set(record), sorted(record)
    return {k: v for k, v in record.items() if k not in CHAIN_KEYS}


def schema_errors(records, chained=True):
    """Every record validated against the schema of its class_uid: (seq or index, event, error) of each
    failure."""
    out = []
    for i, record in enumerate(records):
        event = ocsf_event(record, chained)
        name = event.get("unmapped", {}).get("event")
        if not isinstance(event.get("class_uid"), int):
            out.append((i, name, f"class_uid {event.get('class_uid')!r}"))
            continue
        for error in validator(event["class_uid"]).iter_errors(event):
            if error.validator in ("anyOf", "oneOf"):
                message = f"matches none of {json.dumps(error.validator_value)[:300]}"
            else:
                message = error.message[:300]
            out.append((record.get("seq", i), name, f"/{'/'.join(map(str, error.absolute_path))}: {message}"))
    return out


def epoch_ms(rfc3339):
    return int(datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)


def check_common(event):
    """What every event says the same way: its class and activity in type_uid, its category, the
    schema version, and the native record's time as OCSF time (ms since the epoch)."""
    assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"], event
    assert event["category_uid"] == CATEGORY[event["class_uid"]], event
    assert event["metadata"]["version"] == OCSF_VERSION, event["metadata"]
    native = event["unmapped"]
    assert isinstance(native.get("event"), str), event
    if "time" in native:
        assert event["time"] == epoch_ms(native["time"]), (event["time"], native["time"])


def check_credentials(event):
    native = event["unmapped"]
    assert (event["class_uid"], event["activity_id"]) == (AUTHENTICATION, ACCOUNT_SWITCH), event
    assert event["status_id"] == (SUCCESS if native["outcome"] == "allow" else FAILURE), event
    assert event["actor"]["user"]["name"] == native["caller_user"], event
    assert event["actor"]["user"]["uid"] == str(native["caller_uid"]), event
    if native["role_arn"] is not None:
        assert event["user"]["uid"] == native["role_arn"], event
    if native["session_name"] is not None:
        assert event["user"]["name"] == native["session_name"], event
    for key in ("request_id", "outcome", "status", "caller_uid", "caller_user", "user", "location", "rule_name",
                "effect", "role_arn", "session_name", "access_key_id", "source", "error_code"):
        assert key in native, (key, native)


def check_refused(event):
    native = event["unmapped"]
    assert (event["class_uid"], event["activity_id"], event["status_id"]) == (AUTHENTICATION, ACCOUNT_SWITCH,
                                                                              FAILURE), event
    assert event["count"] == native["count"] and native["count"] >= 1, event
    assert event["actor"]["user"]["name"] == native["caller_user"], event


LIFECYCLE = {"start": START, "stop": STOP, "config_loaded": UPDATE, "config_rejected": UPDATE}


def check_lifecycle(event):
    name = event["unmapped"]["event"]
    assert (event["class_uid"], event["activity_id"]) == (APPLICATION_LIFECYCLE, LIFECYCLE[name]), event
    if name == "config_rejected":
        assert event["status_id"] == FAILURE, event
    elif "status_id" in event:
        assert event["status_id"] == SUCCESS, event


def check_api_call(event):
    assert event["class_uid"] == API_ACTIVITY, event
    assert event["status_id"] == (SUCCESS if event["unmapped"]["result"] == "ok" else FAILURE), event


CHECKS = {"credentials": check_credentials, "refused": check_refused, "sts_assume_role": check_api_call,
          "get_data_access": check_api_call, **{name: check_lifecycle for name in LIFECYCLE}}


def check_mapping(records, chained=True):
    """Each record's mapping; returns the kinds seen: event names, credentials by outcome, refusals by code."""
    seen = set()
    for record in records:
        event = ocsf_event(record, chained)
        check_common(event)
        name = event["unmapped"]["event"]
        CHECKS[name](event)
        seen.add(name)
        if name == "credentials":
            seen.add(f"credentials/{event['unmapped']['outcome']}")
        if name == "refused":
            seen.update(f"refused/{code}" for code in event["unmapped"]["codes"])
    return seen


def by_request_id(records):
    return {r["unmapped"]["request_id"]: r for r in records if r["unmapped"]["event"] == "credentials"}


def test_every_kind_of_record_is_a_valid_ocsf_event(moto, agent_factory, sts_proxy_factory):
    analytics, untrusted, engineering = moto.role("analytics"), moto.role("untrusted"), moto.role("engineering")
    proxy = sts_proxy_factory(unavailable={engineering["arn"]})
    agent = agent_factory(
        mappings=[
            {"name": "no-secrets", "effect": "deny", "prefixes": [f"s3://{SECRET_BUCKET}/"]},
            {"name": "analytics", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]},
            {"name": "untrusted", "role": untrusted["arn"], "prefixes": [f"s3://{untrusted['bucket']}/"]},
            {"name": "sts-down", "role": engineering["arn"], "prefixes": [f"s3://{engineering['bucket']}/"]},
        ],
        config={
            "audit": {"format": "ocsf"},
            "sts": {"endpoint_url": proxy.endpoint, "call_timeout": "1s"},
            "fallback": {"mode": "deny"},
            "server": {"max_requests_per_caller": PER_SECOND},
        },
    )
    session = requests.Session()

    def ask(params, token=agent.token):
        return session.get(agent.credentials_url, params=params, headers={"Authorization": token}, timeout=30)

    answers = {}
    for kind, location, status in [
        ("allow-sts", f"s3://{analytics['bucket']}/a", 200),
        ("allow-cache", f"s3://{analytics['bucket']}/b", 200),
        ("deny-rule", f"s3://{SECRET_BUCKET}/k", 403),
        ("no-rule", "s3://nobody-bucket/k", 403),
        ("sts-denied", f"s3://{untrusted['bucket']}/k", 403),
        ("sts-down", f"s3://{engineering['bucket']}/k", 503),
    ]:
        r = ask({"location": location})
        assert r.status_code == status, (kind, r.text)
        answers[kind] = r
    assert ask({}, token="wrong").status_code == 401
    assert ask({"bogus": "1"}).status_code == 400
    # Beyond its share of requests a second, a uid is refused (429 Throttled): 10 times the share from 8
    # clients at once.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        burst = list(pool.map(lambda i: agent.credentials(location=f"s3://{analytics['bucket']}/{i}").status_code,
                              range(10 * PER_SECOND)))
    assert 429 in burst and set(burst) == {200, 429}, burst
    session.close()
    # Rotated (rename, then the SIGHUP that also reloads), then a rejected reload (an unknown key).
    rotated = agent.audit_path + ".1"
    os.rename(agent.audit_path, rotated)
    agent.send_signal(signal.SIGHUP)
    wait_until(lambda: os.path.exists(agent.audit_path) and "config_loaded" in [
        event_name(r) for r in read_records(agent.audit_path)], 30, "the reload, in a new file")
    agent.write_config({**agent.config, "server": {**agent.config["server"], "not_a_key": 1}})
    agent.send_signal(signal.SIGHUP)
    wait_until(lambda: "config_rejected" in [event_name(r) for r in read_records(agent.audit_path)], 30,
               "the rejection")
    assert agent.stop() == 0

    records = read_records(rotated) + read_records(agent.audit_path)
    assert "prev_file" in read_records(agent.audit_path)[0]
    seen = check_mapping(records)
    expected = {"start", "stop", "config_loaded", "config_rejected", "sts_assume_role", "credentials/allow",
                "credentials/deny", "credentials/error", "refused/Unauthorized", "refused/InvalidRequest",
                "refused/Throttled"}
    assert expected <= seen, sorted(expected - seen)

    # Joined to what the clients got: the right record, caller and role session.
    events = by_request_id([ocsf_event(r) for r in records])
    allowed = events[answers["allow-sts"].headers["X-Request-Id"]]
    assert allowed["unmapped"]["access_key_id"] == answers["allow-sts"].json()["AccessKeyId"]
    assert allowed["user"]["uid"] == analytics["arn"] and allowed["user"]["name"]
    me = os.geteuid()
    assert (allowed["actor"]["user"]["name"], allowed["actor"]["user"]["uid"]) == (pwd.getpwuid(me).pw_name, str(me))
    assert events[answers["allow-cache"].headers["X-Request-Id"]]["unmapped"]["source"] == "cache"
    for kind, outcome in [("deny-rule", "deny"), ("no-rule", "deny"), ("sts-denied", "deny"), ("sts-down", "error")]:
        event = events[answers[kind].headers["X-Request-Id"]]
        assert (event["unmapped"]["outcome"], event["status_id"]) == (outcome, FAILURE), (kind, event)
    assert events[answers["sts-denied"].headers["X-Request-Id"]]["user"]["uid"] == untrusted["arn"]
    calls = [ocsf_event(r) for r in records if r["unmapped"]["event"] == "sts_assume_role"]
    assert {(c["unmapped"]["role_arn"], c["status_id"]) for c in calls} >= {
        (analytics["arn"], SUCCESS), (untrusted["arn"], FAILURE), (engineering["arn"], FAILURE)}, calls

    # The chain holds in this format too.
    check_chain([rotated, agent.audit_path])
    v = verify(agent.audit_path, rotated)
    assert v.rc == 0 and v.intact == (len(records), 1, len(records), 2), v.output

    errors = schema_errors(records)
    assert not errors, f"{len(errors)} schema errors, first: {errors[:5]}"

    # The OCSF form carries the key id (session.credential_uid), never the secret or the token.
    handed_out = [answers[k].json() for k in ("allow-sts", "allow-cache")]
    secrets = [c[field] for c in handed_out for field in ("SecretAccessKey", "Token")]
    assert all(secrets) and allowed["session"]["credential_uid"] == handed_out[0]["AccessKeyId"]
    written = open(rotated).read() + open(agent.audit_path).read()
    assert not [s for s in secrets if s in written], "a secret reached the OCSF audit log"
    agent.assert_no_secrets(secrets)


def test_without_the_chain_each_record_is_an_ocsf_event_as_written(moto, agent_factory):
    analytics = moto.role("analytics")
    agent = agent_factory(mappings=[{"name": "analytics", "role": analytics["arn"]}],
                          config={"audit": {"format": "ocsf", "chain": False}})
    assert agent.credentials(location=f"s3://{analytics['bucket']}/a").status_code == 200
    assert agent.stop() == 0
    records = read_records(agent.audit_path)
    assert {"start", "config_loaded", "credentials/allow", "sts_assume_role", "stop"} <= check_mapping(records, False)
    errors = schema_errors(records, chained=False)
    assert not errors, f"{len(errors)} schema errors, first: {errors[:5]}"


# ---- S3 Access Grants (the GetDataAccess stand-in, as test_access_grants.py runs it) ----

@pytest.fixture(scope="module")
def grants_server(tmp_path_factory):
    s = MotoWithAccessGrants(str(tmp_path_factory.mktemp("grants")))
    yield s
    s.stop()


def test_access_grants_records_are_valid_ocsf_events(grants_server, tmp_path_factory):
    world = grants_server.setup(roles=[{"name": "grants-location", "bucket": "lake"}, {"name": "analyst"}])
    analyst = world.role("analyst")["arn"]
    world.client("iam").put_role_policy(
        RoleName="analyst", PolicyName="get-data-access",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetDataAccess",
            "Resource": f"arn:aws:s3:{world.region}:123456789012:access-grants/default"}]}))
    grants_server.set_grants(world.role("grants-location")["arn"],
                             [{"grantee": analyst, "scope": "s3://lake/curated/*", "permission": "READ"}])
    factory = AgentFactory(tmp_path_factory, world)
    try:
        agent = factory.start(
            mappings=[{"name": "analysts-grants", "effect": "access-grants", "role": analyst,
                       "prefixes": ["s3://lake/"]}],
            config={"fallback": {"mode": "deny"}, "audit": {"format": "ocsf"},
                    "access_grants": {"endpoint_url": f"http://localhost:{grants_server.grants_port}"}},
            env={"HTTP_PROXY": grants_server.grants_endpoint, "NO_PROXY": "127.0.0.1"},
        )
        granted = agent.get("/v1/credentials", params={"location": "s3://lake/curated/t/x", "access": "read"})
        assert granted.status_code == 200, granted.text
        refused = agent.get("/v1/credentials", params={"location": "s3://lake/raw/x", "access": "read"})
        assert refused.status_code == 403, refused.text
        assert agent.stop() == 0
    finally:
        factory.stop_all()

    records = read_records(agent.audit_path)
    seen = check_mapping(records)
    assert {"get_data_access", "credentials/allow", "credentials/deny"} <= seen, sorted(seen)
    calls = [ocsf_event(r) for r in records if r["unmapped"]["event"] == "get_data_access"]
    assert {c["status_id"] for c in calls} == {SUCCESS, FAILURE}, calls
    events = by_request_id([ocsf_event(r) for r in records])
    allowed = events[granted.headers["X-Request-Id"]]
    assert allowed["user"]["uid"] == analyst and allowed["unmapped"]["grant_target"] == "s3://lake/curated/*"
    errors = schema_errors(records)
    assert not errors, f"{len(errors)} schema errors, first: {errors[:5]}"
