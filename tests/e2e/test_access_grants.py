"""`effect = "access-grants"` end to end (SPEC §4.1): the agent assumes the grantee role in moto's STS, asks
S3 Access Grants `GetDataAccess` as that session, and hands out the vended credentials with `Scope` = the
matched grant; clients use them against moto's S3.

moto has no S3 Access Grants: helpers/access_grants_standin.py stands in for GetDataAccess, written from the
API reference and checked against boto3's service model in test_access_grants_standin.py. It runs in moto's
process (it checks each call's SigV4 signature with the grantee session's secret from moto's STS, and vends
real moto sessions confined to the grant). The agent's S3 Control client puts the account id in front of the
endpoint's host, as it must (`123456789012.localhost`); the agent reaches it through the stand-in acting as
its HTTP proxy, set the way an operator sets one (HTTP_PROXY, with NO_PROXY for moto's STS).
"""

import json
import os
import urllib.parse

import boto3
import botocore
import pytest
import requests

from helpers.access_grants_standin import MotoWithAccessGrants
from helpers.agent import AgentFactory

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

ACCOUNT = "123456789012"
ROLES = [
    {"name": "grants-location", "bucket": "lake"},
    {"name": "analyst"},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = MotoWithAccessGrants(str(tmp_path_factory.mktemp("grants")))
    yield s
    s.stop()


@pytest.fixture
def world(server):
    w = server.setup(roles=ROLES)
    w.client("iam").put_role_policy(
        RoleName="analyst", PolicyName="get-data-access",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetDataAccess",
            "Resource": f"arn:aws:s3:{w.region}:{ACCOUNT}:access-grants/default"}]}))
    analyst = w.role("analyst")["arn"]
    server.set_grants(w.role("grants-location")["arn"], [
        {"grantee": analyst, "scope": "s3://lake/curated/*", "permission": "READ"},
        {"grantee": analyst, "scope": "s3://lake/scratch/*", "permission": "READWRITE"},
    ])
    s3 = w.client("s3")
    for key in ("curated/t/part-0.parquet", "curated/t/part-1 é%.parquet", "raw/secret.csv"):
        s3.put_object(Bucket="lake", Key=key, Body=b"data")
    server.reset_calls()
    return w


@pytest.fixture
def agent(server, world, tmp_path_factory):
    factory = AgentFactory(tmp_path_factory, world)
    a = factory.start(
        mappings=[{"name": "analysts-grants", "effect": "access-grants", "role": world.role("analyst")["arn"],
                   "prefixes": ["s3://lake/"]}],
        config={"fallback": {"mode": "deny"},
                "access_grants": {"endpoint_url": f"http://localhost:{server.grants_port}", "duration": "1h"}},
        env={"HTTP_PROXY": server.grants_endpoint, "NO_PROXY": "127.0.0.1"},
    )
    yield a
    factory.stop_all()


def ask(agent, location, access=None):
    params = {"location": location}
    if access:
        params["access"] = access
    return agent.get("/v1/credentials", params=params)


def s3_with(answer, world):
    body = answer.json()
    return boto3.client("s3", endpoint_url=world.endpoint, region_name=world.region,
                        aws_access_key_id=body["AccessKeyId"], aws_secret_access_key=body["SecretAccessKey"],
                        aws_session_token=body["Token"])


def test_one_grant_serves_every_key_under_it_with_one_call(server, world, agent):
    first = ask(agent, "s3://lake/curated/t/part-0.parquet", "read")
    assert first.status_code == 200, first.text
    assert first.json()["Scope"] == "s3://lake/curated/"
    for key in ("curated/t/part-1 é%.parquet", "curated/other", "curated/"):
        again = ask(agent, f"s3://lake/{key}", "read")
        assert again.status_code == 200, again.text
        assert again.json()["AccessKeyId"] == first.json()["AccessKeyId"], (key, [(r.get("source"), r.get("access_key_id"), r.get("grant_target"), r.get("event")) for r in agent.audit_records()])
    calls = server.calls()
    assert [(c["grantee"], c["target"], c["permission"], c["matched"]) for c in calls] == [
        (world.role("analyst")["arn"] + "", "s3://lake/curated/t/part-0.parquet", "READ", "s3://lake/curated/*")
    ], calls
    # The vended credentials are the grant's: they read under it, and nothing else.
    s3 = s3_with(first, world)
    assert s3.get_object(Bucket="lake", Key="curated/t/part-1 é%.parquet")["Body"].read() == b"data"
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket="lake", Key="raw/secret.csv")

    agent.stop()
    records = [r for r in agent.audit_records() if r["event"] == "credentials"]
    assert {(r["effect"], r["grant_target"], r["role_arn"]) for r in records} == {
        ("access-grants", "s3://lake/curated/*", world.role("analyst")["arn"])}
    calls = [r for r in agent.audit_records() if r["event"] == "get_data_access"]
    assert [(c["target"], c["permission"], c["result"], c["grant_target"]) for c in calls] == [
        ("s3://lake/curated/t/part-0.parquet", "READ", "ok", "s3://lake/curated/*")]
    agent.assert_no_secrets([first.json()["SecretAccessKey"], first.json()["Token"]])


def test_a_read_only_grant_refuses_a_write_and_no_grant_is_access_denied(server, world, agent):
    write = ask(agent, "s3://lake/curated/t/new.parquet", "write")
    assert (write.status_code, write.json()["code"]) == (403, "AccessDenied"), write.text
    none = ask(agent, "s3://lake/raw/secret.csv", "read")
    assert (none.status_code, none.json()["code"]) == (403, "AccessDenied"), none.text
    request_ids = [c["request_id"] for c in server.calls() if c["status"] == 403]
    assert request_ids and request_ids[-1] in none.json()["message"], (none.text, server.calls())
    # A refusal is remembered: asking again costs no call.
    before = server.call_count()
    assert ask(agent, "s3://lake/raw/secret.csv", "read").status_code == 403
    assert server.call_count() == before
    # A read-write grant serves a request that names no access.
    both = ask(agent, "s3://lake/scratch/x")
    assert both.status_code == 200, both.text
    assert [c["permission"] for c in server.calls()][-1] == "READWRITE"


def test_throttling_is_retried_within_the_call_budget(server, world, agent):
    server.inject(throttle=2)
    answer = ask(agent, "s3://lake/curated/t/part-0.parquet", "read")
    assert answer.status_code == 200, answer.text
    assert [c["status"] for c in server.calls()] == [503, 503, 200]
