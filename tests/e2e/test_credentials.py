"""The credentials endpoint against real peers: moto as STS/IAM/S3 (IAM enforcement on), and real
clients (boto3, the AWS CLI) fetching through AWS_CONTAINER_CREDENTIALS_FULL_URI.

Covers SPEC §4.1 (kernel identity, user= and trusted proxies), §5 (API, status codes) and §6 (STS)."""

import json
import os
import pwd
import socket
import subprocess
import sys
import time

import pytest
import requests

from helpers.net import wait_until
from helpers.osusers import NOBODY


def mapping(name, role, **kw):
    return {"name": name, "role": role, **kw}


def caller_identity(env, endpoint):
    """Runs boto3 in a child process with only `env` for credentials; returns get-caller-identity."""
    code = (
        "import boto3, json, sys;"
        f"print(json.dumps(boto3.client('sts', endpoint_url={endpoint!r}).get_caller_identity()))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(env)
    clean["AWS_EC2_METADATA_DISABLED"] = "true"
    out = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def aws_cli(env, *args):
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(env)
    clean["AWS_EC2_METADATA_DISABLED"] = "true"
    return subprocess.run([aws, *args], env=clean, capture_output=True, text=True, timeout=60)


def test_boto3_gets_the_prefix_role_and_s3_is_limited_by_it(moto, agent_factory):
    analytics, engineering = moto.role("analytics"), moto.role("engineering")
    agent = agent_factory(
        mappings=[
            mapping("analytics-data", analytics["arn"], prefixes=[f"s3://{analytics['bucket']}/"]),
            mapping("engineering-data", engineering["arn"], prefixes=[f"s3a://{engineering['bucket']}/*"]),
        ],
        config={"fallback": {"mode": "deny"}},
        # As root the agent runs as nobody: its records must name the client's uid, not its own.
        user=(NOBODY, NOBODY) if os.geteuid() == 0 else None,
    )
    env = agent.client_env(location=f"s3://{analytics['bucket']}/reports/2026/")
    ident = caller_identity(env, moto.endpoint)
    assert ":assumed-role/analytics/" in ident["Arn"]

    # The credentials reach the role's own bucket and nothing else.
    creds = agent.credentials(location=f"s3://{analytics['bucket']}/x").json()
    s3 = moto.client("s3", creds)
    s3.put_object(Bucket=analytics["bucket"], Key="reports/out.txt", Body=b"ok")
    with pytest.raises(Exception) as denied:
        s3.put_object(Bucket=engineering["bucket"], Key="x", Body=b"no")
    assert "AccessDenied" in str(denied.value)

    ident = caller_identity(agent.client_env(location=f"S3N://{engineering['bucket']}/a/b"), moto.endpoint)
    assert ":assumed-role/engineering/" in ident["Arn"]

    records = [r for r in agent.audit_records() if r["event"] == "credentials"]
    assert records[0]["role_arn"] == analytics["arn"]
    assert records[0]["rule_name"] == "analytics-data"
    assert records[0]["caller_uid"] == os.geteuid()
    assert records[0]["caller_user"] == pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        assert agent.uid != os.geteuid()
    assert records[0]["source"] == "sts"
    assert {r["source"] for r in records[1:2]} <= {"cache", "sts"}


def test_aws_cli_and_response_format(moto, agent_factory):
    analytics = moto.role("analytics")
    agent = agent_factory(mappings=[mapping("a", analytics["arn"], prefixes=[f"s3://{analytics['bucket']}/"])])
    out = aws_cli(agent.client_env(location=f"s3://{analytics['bucket']}/"), "sts", "get-caller-identity",
                  "--endpoint-url", moto.endpoint, "--output", "json")
    assert out.returncode == 0, out.stderr
    assert ":assumed-role/analytics/" in json.loads(out.stdout)["Arn"]

    r = agent.credentials(location=f"s3://{analytics['bucket']}/k")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn", "AccountId", "Scope"}
    assert body["Scope"] == f"s3://{analytics['bucket']}/"
    assert body["RoleArn"] == analytics["arn"]
    assert body["AccountId"] == analytics["arn"].split(":")[4]
    # Whole seconds, UTC, Z.
    assert len(body["Expiration"]) == 20 and body["Expiration"].endswith("Z"), body["Expiration"]
    left = time.mktime(time.strptime(body["Expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())
    assert left > 15 * 60


def test_untrusted_role_and_wrong_external_id_are_denied_with_the_sts_request_id(moto, agent_factory):
    untrusted, partner = moto.role("untrusted"), moto.role("partner")
    agent = agent_factory(
        mappings=[
            mapping("untrusted", untrusted["arn"], prefixes=[f"s3://{untrusted['bucket']}/"]),
            mapping("partner-wrong-id", partner["arn"], prefixes=["s3://partner-wrong/"], external_id="not-the-id"),
            mapping("partner-right-id", partner["arn"], prefixes=["s3://partner-right/"],
                    external_id="partner-external-id"),
        ]
    )
    for location in (f"s3://{untrusted['bucket']}/x", "s3://partner-wrong/x"):
        r = agent.credentials(location=location)
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "AccessDenied"
        assert "request id" in r.json()["message"].lower()
    assert agent.credentials(location="s3://partner-right/x").status_code == 200

    # Denials are remembered: asking again makes no new STS call.
    calls = lambda: sum(1 for r in agent.audit_records() if r["event"] == "sts_assume_role")
    before = calls()
    assert agent.credentials(location=f"s3://{untrusted['bucket']}/y").status_code == 403
    assert calls() == before
    denied = [r for r in agent.audit_records() if r["event"] == "credentials" and r["status"] == 403]
    assert all(r["sts_request_id"] for r in denied), denied
    # The message a client sees carries the same STS request id, for the destination account's CloudTrail.
    r = agent.credentials(location="s3://partner-wrong/z")
    assert denied[1]["sts_request_id"] in r.json()["message"], (r.json(), denied[1])


def test_bad_requests_get_clear_errors(moto, agent_factory):
    analytics = moto.role("analytics")
    agent = agent_factory(mappings=[mapping("a", analytics["arn"])])
    cases = [
        (dict(token=False), 401, "Unauthorized"),
        (dict(headers={"Authorization": "wrong"}), 401, "Unauthorized"),
        (dict(params={"bogus": "1"}), 400, "InvalidRequest"),
        (dict(params={"location": "http://bucket/key"}), 400, "InvalidRequest"),
        (dict(params={"location": "s3://"}), 400, "InvalidRequest"),
        (dict(headers={"Host": "evil.example:9944"}), 403, "Forbidden"),
        (dict(headers={"X-Forwarded-For": "10.1.2.3"}), 403, "Forbidden"),
        (dict(headers={"Forwarded": "for=10.1.2.3"}), 403, "Forbidden"),
    ]
    for kw, status, code in cases:
        r = agent.get("/v1/credentials", **kw)
        assert (r.status_code, r.json()["code"]) == (status, code), (kw, r.text)
    r = requests.post(agent.credentials_url, headers={"Authorization": agent.token}, timeout=10)
    assert (r.status_code, r.json()["code"]) == (405, "MethodNotAllowed")
    r = agent.get("/nope")
    assert (r.status_code, r.json()["code"]) == (404, "NotFound")
    # Oversized headers are refused, not buffered.
    r = agent.get("/v1/credentials", headers={"X-Big": "a" * 64 * 1024})
    assert r.status_code == 431
    assert agent.get("/healthz", token=False).status_code == 200
    assert agent.get("/readyz", token=False).status_code == 200


def test_a_client_that_stalls_mid_header_is_closed(moto, agent_factory):
    agent = agent_factory(config={"server": {"header_read_timeout": "1s"}})
    with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as s:
        s.sendall(b"GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        data = s.recv(4096)  # the server gives up on us and closes
        assert time.monotonic() - started < 9
        assert data == b"" or data.startswith(b"HTTP/1.1 408")


def test_token_file_is_reread_when_it_changes(moto, agent_factory):
    agent = agent_factory(mappings=[mapping("a", moto.role("analytics")["arn"])])
    assert agent.credentials().status_code == 200
    with open(agent.token_path, "w") as f:
        f.write("a-new-token-value")
    # The agent looks at the file at most once a second (src/token.rs tests that interval on an
    # injected clock); here, the real rotation takes hold.
    wait_until(lambda: agent.credentials(headers={"Authorization": "a-new-token-value"}).status_code == 200,
               30, "the rotated token to be accepted")
    assert agent.credentials().status_code == 401


def test_instance_profile_fallback_serves_the_nodes_own_credentials(moto, agent_factory):
    agent = agent_factory(mappings=[mapping("a", moto.role("analytics")["arn"], prefixes=["s3://only-this/"])])
    r = agent.credentials(location="s3://some-other-bucket/x")
    assert r.status_code == 200, r.text
    assert r.json()["AccessKeyId"] == moto.user["access_key_id"]
    record = [x for x in agent.audit_records() if x["event"] == "credentials"][-1]
    assert record["source"] == "instance-profile" and record["rule_index"] is None
    deny = agent_factory(config={"fallback": {"mode": "deny"}})
    r = deny.credentials(location="s3://some-other-bucket/x")
    assert (r.status_code, r.json()["code"]) == (403, "AccessDenied")


def test_no_secret_reaches_logs_or_audit(moto, agent_factory):
    analytics = moto.role("analytics")
    agent = agent_factory(
        mappings=[mapping("a", analytics["arn"], prefixes=[f"s3://{analytics['bucket']}/"])],
        env={"RUST_LOG": "trace"},
    )
    handed = [agent.credentials(location=f"s3://{analytics['bucket']}/{i}").json() for i in range(3)]
    handed.append(agent.credentials(location="s3://other/x").json())  # instance profile
    secrets = {h["SecretAccessKey"] for h in handed} | {h["Token"] for h in handed if h.get("Token")}
    secrets.add(moto.user["secret_access_key"])
    metrics = agent.get("/metrics", token=False).text
    assert agent.stop() == 0
    agent.assert_no_secrets(secrets)
    assert not [s for s in secrets if s in metrics]
    # The access key ids are there, for joining with CloudTrail.
    assert handed[0]["AccessKeyId"] in open(agent.audit_path).read()


def test_logs_to_a_file_are_plain_text(moto, agent_factory):
    """journald and log files get no terminal colour codes (the agent's stderr here is a file)."""
    agent = agent_factory(env={"RUST_LOG": "debug"})
    agent.credentials(location="s3://any/x")
    assert agent.stop() == 0
    log = agent.stderr_text()
    assert "INFO" in log, log[-2000:]
    assert "\x1b[" not in log, log[-2000:]
