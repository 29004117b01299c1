"""The test harness itself: what the moto world enforces, and the helpers the other suites rely on.

These pin down moto's behaviour as the agent's tests assume it; if a moto upgrade changes it, they fail
here first, with a clear name.
"""

import datetime
import os
import time
import tomllib

import boto3
import botocore.exceptions
import pytest
import requests

from helpers.agent import merge, to_toml
from helpers.net import wait_until
from helpers.osusers import NEEDS_ROOT, require_root

OTHER_ACCOUNT = "222222222222"

ROLES = [
    {"name": "trusted"},
    {"name": "not-in-user-policy", "allowed_by_user": False},
    {"name": "trust-names-someone-else", "trusts_user": False},
    {"name": "with-external-id", "external_id": "expected-external-id"},
    {"name": "cross-account", "account": OTHER_ACCOUNT, "trusts_user": False},
    {"name": "cross-account-not-allowed", "account": OTHER_ACCOUNT, "allowed_by_user": False},
]


def sts_as_user(world):
    return boto3.client(
        "sts",
        endpoint_url=world.endpoint,
        region_name=world.region,
        aws_access_key_id=world.user["access_key_id"],
        aws_secret_access_key=world.user["secret_access_key"],
    )


def assume(world, role_name, **kw):
    return sts_as_user(world).assume_role(RoleArn=world.role(role_name)["arn"], RoleSessionName="harness", **kw)


def error_of(call):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call()
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def as_agent_response(credentials):
    return {
        "AccessKeyId": credentials["AccessKeyId"],
        "SecretAccessKey": credentials["SecretAccessKey"],
        "Token": credentials["SessionToken"],
    }


@pytest.mark.moto(roles=ROLES)
def test_trusted_role_is_assumed_and_reaches_only_its_bucket(moto):
    result = assume(moto, "trusted")
    assert result["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{moto.account_id}:assumed-role/trusted/harness"
    s3 = moto.client("s3", as_agent_response(result["Credentials"]))
    own = moto.role("trusted")["bucket"]
    assert s3.get_object(Bucket=own, Key="seed.txt")["Body"].read().startswith(b"seed object")
    s3.put_object(Bucket=own, Key="written.txt", Body=b"x")
    other = moto.role("not-in-user-policy")["bucket"]
    assert error_of(lambda: s3.get_object(Bucket=other, Key="seed.txt")) == ("AccessDenied", 403)
    assert error_of(lambda: s3.put_object(Bucket=other, Key="x", Body=b"x")) == ("AccessDenied", 403)


@pytest.mark.moto(roles=ROLES)
def test_identity_policy_is_enforced(moto):
    assert error_of(lambda: assume(moto, "not-in-user-policy")) == ("AccessDenied", 403)
    assert error_of(lambda: assume(moto, "cross-account-not-allowed")) == ("AccessDenied", 403)


@pytest.mark.moto(roles=ROLES)
def test_trust_policy_is_enforced_in_the_callers_account_only(moto):
    assert error_of(lambda: assume(moto, "trust-names-someone-else")) == ("AccessDenied", 403)
    # moto looks the role up in the caller's account: another account's trust policy is not evaluated.
    result = assume(moto, "cross-account")
    assert result["AssumedRoleUser"]["Arn"].startswith(f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/cross-account/")


@pytest.mark.moto(roles=ROLES)
def test_external_id_condition(moto):
    assert error_of(lambda: assume(moto, "with-external-id", ExternalId="wrong")) == ("AccessDenied", 403)
    assert assume(moto, "with-external-id", ExternalId="expected-external-id")["Credentials"]["AccessKeyId"]
    # moto quirk: a request without ExternalId passes a StringEquals condition (AWS would deny it).
    assert assume(moto, "with-external-id")["Credentials"]["AccessKeyId"]


@pytest.mark.moto(roles=ROLES)
def test_cross_account_role_policy_applies_to_s3(moto):
    s3 = moto.client("s3", as_agent_response(assume(moto, "cross-account")["Credentials"]))
    assert s3.get_object(Bucket=moto.role("cross-account")["bucket"], Key="seed.txt")
    assert error_of(lambda: s3.get_object(Bucket=moto.role("trusted")["bucket"], Key="seed.txt")) == (
        "AccessDenied",
        403,
    )


@pytest.mark.moto(roles=ROLES)
def test_unknown_keys_and_source_user_on_s3_are_refused(moto):
    bad = boto3.client(
        "sts", endpoint_url=moto.endpoint, region_name="us-east-1", aws_access_key_id="AKIAUNKNOWN0000000000",
        aws_secret_access_key="x",
    )
    assert error_of(lambda: bad.get_caller_identity()) == ("InvalidClientTokenId", 403)
    user_s3 = boto3.client(
        "s3", endpoint_url=moto.endpoint, region_name="us-east-1", aws_access_key_id=moto.user["access_key_id"],
        aws_secret_access_key=moto.user["secret_access_key"],
    )
    assert error_of(lambda: user_s3.list_objects_v2(Bucket=moto.role("trusted")["bucket"]))[0] == "AccessDenied"


@pytest.mark.moto(roles=ROLES)
def test_access_denied_wire_format(moto):
    """What the agent's STS client sees: 403, an x-amzn-requestid header, and moto's error XML, which wraps
    <Error> in <Errors> (real STS does not, so the Rust SDK cannot read the code from it)."""
    seen = []
    client = sts_as_user(moto)
    client.meta.events.register("response-received.sts.AssumeRole", lambda response_dict, **_: seen.append(response_dict))
    with pytest.raises(botocore.exceptions.ClientError):
        client.assume_role(RoleArn=moto.role("not-in-user-policy")["arn"], RoleSessionName="harness")
    raw = seen[-1]
    assert raw["status_code"] == 403
    assert raw["headers"].get("x-amzn-requestid")
    assert b"<Errors><Error><Code>AccessDenied</Code>" in raw["body"]


@pytest.mark.moto(roles=ROLES)
def test_duration_is_honoured(moto):
    creds = assume(moto, "trusted", DurationSeconds=7200)["Credentials"]
    left = creds["Expiration"] - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(minutes=110) < left <= datetime.timedelta(minutes=121)


@pytest.mark.moto(roles=ROLES, enforce_iam=False)
def test_without_enforcement_anything_goes(moto):
    assert assume(moto, "not-in-user-policy")["Credentials"]["AccessKeyId"]
    assert assume(moto, "trust-names-someone-else")["Credentials"]["AccessKeyId"]


def test_default_world(moto):
    assert [r["name"] for r in moto.roles] == ["analytics", "engineering", "partner", "untrusted"]
    assert moto.role("partner")["external_id"] == "partner-external-id"
    assert assume(moto, "analytics")["Credentials"]["AccessKeyId"]
    assert error_of(lambda: assume(moto, "untrusted")) == ("AccessDenied", 403)
    # The admin keeps full access once enforcement is on.
    admin_s3 = moto.client("s3")
    assert {b["Name"] for b in admin_s3.list_buckets()["Buckets"]} == set(moto.buckets)
    assert requests.get(f"{moto.endpoint}/moto-api/", timeout=10).status_code == 200


def test_config_writer_produces_the_toml_the_agent_reads():
    config = merge(
        {"server": {"listen": ["127.0.0.1:1"], "require_token": True}, "audit": {"path": "/x"}},
        {"server": {"require_token": None, "max_connections": 8}, "sts": {"session_name": "{user}-\"q\""}},
    )
    config["mappings_file"] = "/etc/m.json"
    config["mapping"] = [
        {"name": "a", "role": "arn:aws:iam::123456789012:role/a", "prefixes": ["s3://b/x/"], "scope_to_prefix": True},
        {"effect": "deny", "users": ["eve"]},
    ]
    parsed = tomllib.loads(to_toml(config))
    assert parsed == config
    assert "require_token" not in parsed["server"]


def test_os_users_run_with_their_own_identity(os_users):
    alice = os_users.alice
    assert "emrfs-analysts" in alice.groups and "emrfs-shared" in alice.groups
    out = os_users.run_as(alice, ["id", "-u"], check=True).stdout
    assert out.strip() == str(alice.uid)
    groups = os_users.run_as(os_users.bob, ["id", "-Gn"], check=True).stdout.split()
    assert "emrfs-engineers" in groups and "emrfs-analysts" not in groups
    # The clients' virtualenv works for a user who cannot enter /root.
    r = os_users.python_as(alice, "import os, boto3, awscli; print(os.getuid())", check=True)
    assert r.stdout.strip() == str(alice.uid)
    assert os_users.run_as(alice, ["ls", "/root"]).returncode != 0


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_test_that_needs_root_fails_under_ci(monkeypatch, ci):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="mounting things needs root"):
        require_root("mounting things")


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_a_test_that_needs_root_is_skipped_saying_so_elsewhere(monkeypatch, ci):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_root("mounting things")
    assert str(skipped.value).startswith(NEEDS_ROOT) and "mounting things" in str(skipped.value)


def test_root_runs_a_test_that_needs_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("CI", "true")
    assert require_root("mounting things") is None


def test_wait_until_returns_what_the_predicate_returned_and_fails_at_its_deadline():
    calls = []

    def third_time():
        calls.append(1)
        return len(calls) >= 3 and {"records": len(calls)}

    assert wait_until(third_time, 5, "three calls", interval=0.01) == {"records": 3}
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0.2s waiting for nothing \(last: \[\]\)"):
        wait_until(lambda: [], 0.2, "nothing", interval=0.01)
    assert time.monotonic() - started >= 0.2
