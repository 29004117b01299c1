"""The S3 Access Grants stand-in (helpers/access_grants_standin.py), driven by boto3's real s3control client.

boto3's service model and aws-sdk-s3control are generated from the same API definition, so what boto3 sends
is what the agent will send: test_request_shape pins it against the stand-in's expectations.
"""

import datetime
import json
import os
from unittest import mock

import boto3
import botocore
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from helpers.access_grants_standin import DATA_ACCESS_PATH, MotoWithAccessGrants

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

ACCOUNT = "123456789012"
ROLES = [
    {"name": "grants-location", "bucket": "lake"},  # the registered location's role: s3:* on "lake"
    {"name": "reader"},
    {"name": "writer"},
    {"name": "stranger"},
    {"name": "unpermitted"},  # has a grant, but no s3:GetDataAccess in its identity policies
]
GRANTEES = ("reader", "writer", "stranger")


def allow_get_data_access(world, role):
    """What every grantee role needs (the reference: "You must have the s3:GetDataAccess permission")."""
    world.client("iam").put_role_policy(
        RoleName=role, PolicyName="get-data-access",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetDataAccess",
            "Resource": f"arn:aws:s3:{world.region}:{ACCOUNT}:access-grants/default"}]}))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = MotoWithAccessGrants(str(tmp_path_factory.mktemp("grants")))
    yield s
    s.stop()


@pytest.fixture
def world(server):
    w = server.setup(roles=ROLES, buckets=["other-bucket"])
    for role in GRANTEES:
        allow_get_data_access(w, role)
    location = w.role("grants-location")["arn"]
    server.set_grants(location, [
        {"grantee": w.role("reader")["arn"], "scope": "s3://lake/*", "permission": "READ"},
        {"grantee": w.role("reader")["arn"], "scope": "s3://lake/curated/*", "permission": "READWRITE"},
        {"grantee": w.role("writer")["arn"], "scope": "s3://lake/raw/*", "permission": "WRITE"},
        {"grantee": w.role("writer")["arn"], "scope": "s3://lake/raw/manifest.json", "permission": "READ"},
        {"grantee": w.role("unpermitted")["arn"], "scope": "s3://lake/*", "permission": "READ"},
    ])
    server.reset_calls()
    yield w
    server.set_enforcement(False)


def session(world, role):
    sts = boto3.client("sts", endpoint_url=world.endpoint, region_name=world.region,
                       aws_access_key_id=world.user["access_key_id"],
                       aws_secret_access_key=world.user["secret_access_key"])
    return sts.assume_role(RoleArn=world.role(role)["arn"], RoleSessionName=f"{role}-session")["Credentials"]


def s3control(server, creds, proxy=True, host="localhost", **config):
    """boto3's s3control client at the stand-in. Its endpoint rules make the host <account>.localhost,
    which does not resolve: the stand-in is also the client's HTTP proxy (see the helper's doc)."""
    cfg = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": config.pop("attempts", 1)},
                                 proxies={"http": server.grants_endpoint} if proxy else None, **config)
    return boto3.client("s3control", endpoint_url=f"http://{host}:{server.grants_port}", region_name="us-east-1",
                        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds.get("SessionToken"), config=cfg)


def get(client, target, permission="READ", **kw):
    return client.get_data_access(AccountId=ACCOUNT, Target=target, Permission=permission, **kw)


def error(excinfo):
    e = excinfo.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"], e["ResponseMetadata"].get("RequestId")


def test_granted_read_returns_matched_target_grantee_and_credentials(server, world):
    client = s3control(server, session(world, "reader"))
    r = get(client, "s3://lake/seed.txt", TargetType="Object", DurationSeconds=900)
    assert r["MatchedGrantTarget"] == "s3://lake/*"
    assert r["Grantee"] == {"GranteeType": "IAM", "GranteeIdentifier": world.role("reader")["arn"]}
    creds = r["Credentials"]
    assert creds["AccessKeyId"] and creds["SecretAccessKey"] and creds["SessionToken"]
    left = creds["Expiration"] - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(seconds=800) < left <= datetime.timedelta(seconds=900)
    # The most specific grant wins (s3://lake/* READ covers this too), and READWRITE covers WRITE.
    assert get(client, "s3://lake/curated/2026/x", "READ")["MatchedGrantTarget"] == "s3://lake/curated/*"
    r = get(client, "s3://lake/curated/2026/", "WRITE")
    assert r["MatchedGrantTarget"] == "s3://lake/curated/*"
    # An object grant is matched exactly.
    writer = s3control(server, session(world, "writer"))
    assert get(writer, "s3://lake/raw/manifest.json", TargetType="Object")["MatchedGrantTarget"] == \
        "s3://lake/raw/manifest.json"
    calls = server.calls()
    assert [(c["grantee"], c["target"], c["permission"], c["status"], c["matched"]) for c in calls] == [
        (world.role("reader")["arn"], "s3://lake/seed.txt", "READ", 200, "s3://lake/*"),
        (world.role("reader")["arn"], "s3://lake/curated/2026/x", "READ", 200, "s3://lake/curated/*"),
        (world.role("reader")["arn"], "s3://lake/curated/2026/", "WRITE", 200, "s3://lake/curated/*"),
        (world.role("writer")["arn"], "s3://lake/raw/manifest.json", "READ", 200, "s3://lake/raw/manifest.json"),
    ]
    assert server.call_count() == 4


def test_request_shape_is_what_the_standin_expects(server, world):
    """The honesty check: boto3 (generated from the same model as aws-sdk-s3control) sends exactly this."""
    client = s3control(server, session(world, "reader"))
    get(client, "s3://lake/a b/c.txt", DurationSeconds=1200, Privilege="Minimal", TargetType="Object")
    (call,) = server.calls()
    host = f"{ACCOUNT}.localhost:{server.grants_port}"
    method, url, _ = call["request_line"].split(" ")
    assert method == "GET"
    assert url.startswith(f"http://{host}{DATA_ACCESS_PATH}?")  # absolute-form: through the proxy door
    assert call["host"] == host  # the endpoint rules' {AccountId}. prefix
    assert dict(call["query"]) == {"target": "s3://lake/a b/c.txt", "permission": "READ",
                                   "durationSeconds": "1200", "privilege": "Minimal", "targetType": "Object"}
    assert "x-amz-account-id" in call["headers"]
    assert {"host", "x-amz-account-id", "x-amz-date", "x-amz-security-token",
            "x-amz-content-sha256"} <= set(call["signed_headers"])
    assert call["account"] == ACCOUNT
    # The model says the same, independent of the wire.
    op = client.meta.service_model.operation_model("GetDataAccess")
    assert (op.http["method"], op.http["requestUri"]) == ("GET", DATA_ACCESS_PATH)
    raw = botocore.session.get_session().get_service_data("s3control")["operations"]["GetDataAccess"]
    assert raw["endpoint"] == {"hostPrefix": "{AccountId}."}
    members = op.input_shape.members
    assert {n: (m.serialization.get("location"), m.serialization.get("name")) for n, m in members.items()} == {
        "AccountId": ("header", "x-amz-account-id"), "Target": ("querystring", "target"),
        "Permission": ("querystring", "permission"), "DurationSeconds": ("querystring", "durationSeconds"),
        "Privilege": ("querystring", "privilege"), "TargetType": ("querystring", "targetType"),
        "AuditContext": ("querystring", "auditContext")}
    assert set(op.input_shape.required_members) == {"AccountId", "Target", "Permission"}
    assert op.output_shape.members.keys() == {"Credentials", "MatchedGrantTarget", "Grantee"}
    assert client.meta.service_model.signing_name == "s3"


def test_write_under_read_only_grant_is_denied(server, world):
    client = s3control(server, session(world, "reader"))
    with pytest.raises(ClientError) as e:
        get(client, "s3://lake/seed.txt", "WRITE")
    status, code, request_id = error(e)
    assert (status, code) == (403, "AccessDenied") and request_id
    with pytest.raises(ClientError) as e:
        get(client, "s3://lake/seed.txt", "READWRITE")
    assert error(e)[:2] == (403, "AccessDenied")
    # and a write-only grant gives no READ
    writer = s3control(server, session(world, "writer"))
    with pytest.raises(ClientError) as e:
        get(writer, "s3://lake/raw/x.csv", "READ")
    assert error(e)[:2] == (403, "AccessDenied")
    assert get(writer, "s3://lake/raw/x.csv", "WRITE")["MatchedGrantTarget"] == "s3://lake/raw/*"


def test_no_grant_is_access_denied_with_request_id(server, world):
    client = s3control(server, session(world, "stranger"))
    with pytest.raises(ClientError) as e:
        get(client, "s3://lake/seed.txt")
    status, code, request_id = error(e)
    assert (status, code) == (403, "AccessDenied")
    assert request_id and e.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"] == request_id
    # a grant on a bucket does not reach a bucket whose name it prefixes, nor another bucket
    reader = s3control(server, session(world, "reader"))
    for target in ("s3://lake2/x", "s3://other-bucket/x", "s3://lak"):
        with pytest.raises(ClientError) as e:
            get(reader, target)
        assert error(e)[:2] == (403, "AccessDenied"), target
    assert [c["status"] for c in server.calls()] == [403] * 4


def test_caller_needs_s3_get_data_access_in_its_identity_policies(server, world):
    client = s3control(server, session(world, "unpermitted"))
    with pytest.raises(ClientError) as e:
        get(client, "s3://lake/seed.txt")
    assert error(e)[:2] == (403, "AccessDenied")
    assert "not authorized to perform: s3:GetDataAccess" in e.value.response["Error"]["Message"]
    # an explicit Deny wins over the Allow
    world.client("iam").put_role_policy(
        RoleName="reader", PolicyName="deny-get-data-access",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "s3:GetDataAccess", "Resource": "*"}]}))
    with pytest.raises(ClientError) as e:
        get(s3control(server, session(world, "reader")), "s3://lake/seed.txt")
    assert "not authorized to perform: s3:GetDataAccess" in e.value.response["Error"]["Message"]
    # moto's enforcement off: moto authorises nothing, and neither does the stand-in
    server.set_enforcement(False)
    assert get(client, "s3://lake/seed.txt")["MatchedGrantTarget"] == "s3://lake/*"


def test_unsigned_wrong_secret_unknown_key_and_bad_token_are_rejected(server, world):
    creds = session(world, "reader")
    wrong = dict(creds, SecretAccessKey=creds["SecretAccessKey"][:-1] + ("A" if creds["SecretAccessKey"][-1] != "A" else "B"))
    with pytest.raises(ClientError) as e:
        get(s3control(server, wrong), "s3://lake/seed.txt")
    assert error(e)[:2] == (403, "SignatureDoesNotMatch")
    unknown = dict(creds, AccessKeyId="ASIAUNKNOWNUNKNOWN00")
    with pytest.raises(ClientError) as e:
        get(s3control(server, unknown), "s3://lake/seed.txt")
    assert error(e)[:2] == (403, "InvalidAccessKeyId")
    bad_token = dict(creds, SessionToken="not-the-token")
    with pytest.raises(ClientError) as e:
        get(s3control(server, bad_token), "s3://lake/seed.txt")
    assert error(e)[:2] == (400, "InvalidToken")
    unsigned = boto3.client("s3control", endpoint_url=f"http://localhost:{server.grants_port}",
                            region_name="us-east-1",
                            config=botocore.config.Config(signature_version=botocore.UNSIGNED,
                                                          retries={"total_max_attempts": 1},
                                                          proxies={"http": server.grants_endpoint}))
    with pytest.raises(ClientError) as e:
        get(unsigned, "s3://lake/seed.txt")
    assert error(e)[:2] == (403, "AccessDenied")
    r = requests.get(f"{server.grants_endpoint}{DATA_ACCESS_PATH}", params={"target": "s3://lake/x", "permission": "READ"},
                     headers={"x-amz-account-id": ACCOUNT}, timeout=10)
    assert r.status_code == 403 and r.headers["x-amz-request-id"]
    assert r.text.startswith('<?xml') and "<ErrorResponse><Error><Code>AccessDenied</Code>" in r.text
    assert [c["status"] for c in server.calls()] == [403, 403, 400, 403, 403]
    assert all(c["grantee"] is None for c in server.calls())


def signed_raw(server, creds, host, query, account=ACCOUNT, region="us-east-1", signed_at=None, body=b"", sent_body=None):
    """A GetDataAccess request signed by botocore's signer and sent straight to the stand-in (Host as given).
    signed_at: the signer's clock; sent_body: a body other than the one signed."""
    url = f"http://{host}{DATA_ACCESS_PATH}"
    headers = {"Host": host}
    if account is not None:
        headers["x-amz-account-id"] = account
    req = AWSRequest(method="GET", url=url, params=query, headers=headers, data=body)
    signer = S3SigV4Auth(Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]), "s3", region)
    with mock.patch("botocore.auth.get_current_datetime",
                    return_value=signed_at or datetime.datetime.now(datetime.timezone.utc)):
        signer.add_auth(req)
    prepared = req.prepare()
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
    return requests.get(f"{server.grants_endpoint}{DATA_ACCESS_PATH}", params=query, headers=headers,
                        data=body if sent_body is None else sent_body, timeout=10)


def test_clock_skew_and_payload_hash_are_checked(server, world):
    creds = session(world, "reader")
    host = f"127.0.0.1:{server.grants_port}"
    query = {"target": "s3://lake/seed.txt", "permission": "READ"}
    now = datetime.datetime.now(datetime.timezone.utc)
    assert signed_raw(server, creds, host, query, signed_at=now - datetime.timedelta(minutes=14)).status_code == 200
    for skew in (datetime.timedelta(minutes=16), -datetime.timedelta(minutes=16)):
        r = signed_raw(server, creds, host, query, signed_at=now - skew)
        assert r.status_code == 403 and "<Code>RequestTimeTooSkewed</Code>" in r.text, r.text
    r = signed_raw(server, creds, host, query, body=b"", sent_body=b"not what was signed")
    assert r.status_code == 400 and "<Code>XAmzContentSHA256Mismatch</Code>" in r.text, r.text


def test_host_prefix_is_checked(server, world, monkeypatch):
    creds = session(world, "reader")
    query = {"target": "s3://lake/seed.txt", "permission": "READ"}
    port = server.grants_port
    # without the prefix (a client that leaves it out) and with it: both fine
    assert signed_raw(server, creds, f"127.0.0.1:{port}", query).status_code == 200
    assert signed_raw(server, creds, f"{ACCOUNT}.localhost:{port}", query).status_code == 200
    # a prefix that is not x-amz-account-id; a host that is not the stand-in; another port
    for host in (f"210987654321.localhost:{port}", f"{ACCOUNT}.example.com:{port}", f"{ACCOUNT}.localhost:{port + 1}"):
        r = signed_raw(server, creds, host, query)
        assert r.status_code == 400 and "<Code>InvalidRequest</Code>" in r.text, (host, r.text)
    # boto3 pointed at 127.0.0.1 directly: its endpoint rules still prefix the account, through the proxy
    client = s3control(server, creds, host="127.0.0.1")
    assert get(client, "s3://lake/seed.txt")["MatchedGrantTarget"] == "s3://lake/*"
    assert server.calls()[-1]["host"] == f"{ACCOUNT}.127.0.0.1:{port}"
    # inject_host_prefix=False does not remove it (the endpoint rules add it, not the hostPrefix trait)
    client = s3control(server, creds, inject_host_prefix=False)
    get(client, "s3://lake/seed.txt")
    assert server.calls()[-1]["host"] == f"{ACCOUNT}.localhost:{port}"
    monkeypatch.setenv("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
    get(s3control(server, creds), "s3://lake/seed.txt")
    assert server.calls()[-1]["host"] == f"{ACCOUNT}.localhost:{port}"


def test_parameters_are_validated_as_the_model_says(server, world):
    creds = session(world, "reader")
    host = f"127.0.0.1:{server.grants_port}"
    cases = [
        ({"permission": "READ"}, ACCOUNT, "target"),
        ({"target": "s3://lake/x"}, ACCOUNT, "permission"),
        ({"target": "s3://lake/x", "permission": "FULL"}, ACCOUNT, "permission"),
        ({"target": "s3://lake/x", "permission": "READ", "durationSeconds": "899"}, ACCOUNT, "durationSeconds"),
        ({"target": "s3://lake/x", "permission": "READ", "durationSeconds": "43201"}, ACCOUNT, "durationSeconds"),
        ({"target": "s3://lake/x", "permission": "READ", "durationSeconds": "1h"}, ACCOUNT, "durationSeconds"),
        ({"target": "s3://lake/x", "permission": "READ", "privilege": "Maximal"}, ACCOUNT, "privilege"),
        ({"target": "s3://lake/x", "permission": "READ", "targetType": "Prefix"}, ACCOUNT, "targetType"),
        ({"target": "lake/x", "permission": "READ"}, ACCOUNT, "target"),
        ({"target": "s3://lake/x", "permission": "READ"}, None, "x-amz-account-id"),
    ]
    for query, account, word in cases:
        r = signed_raw(server, creds, host, query, account=account)
        assert r.status_code == 400 and "<Code>InvalidRequest</Code>" in r.text and word in r.text, (query, r.text)
    # the bounds themselves are fine
    for duration in ("900", "43200"):
        q = {"target": "s3://lake/x", "permission": "READ", "durationSeconds": duration}
        assert signed_raw(server, creds, host, q).status_code == 200
    # botocore refuses the same before sending (the model's min/max and required members)
    client = s3control(server, creds)
    with pytest.raises(botocore.exceptions.ParamValidationError):
        get(client, "s3://lake/x", DurationSeconds=899)


@pytest.mark.parametrize("code,status", [("SlowDown", 503), ("TooManyRequestsException", 400)])
def test_injected_throttling_is_seen_by_boto3_as_throttling(server, world, code, status):
    creds = session(world, "reader")
    server.inject(throttle=2, throttle_code=code)
    with pytest.raises(ClientError) as e:
        get(s3control(server, creds), "s3://lake/seed.txt")
    assert error(e)[:2] == (status, code)
    # boto3's standard retry mode classes it as throttling and retries: the next call succeeds on its 2nd try
    r = get(s3control(server, creds, attempts=3), "s3://lake/seed.txt")
    assert r["ResponseMetadata"]["RetryAttempts"] == 1
    assert [c["code"] for c in server.calls()] == [code, code, None]
    assert server.call_count() == 3


def test_injected_internal_error_then_recovery(server, world):
    creds = session(world, "reader")
    server.inject(internal_error=1)
    with pytest.raises(ClientError) as e:
        get(s3control(server, creds), "s3://lake/seed.txt")
    assert error(e)[:2] == (500, "InternalError")
    assert get(s3control(server, creds), "s3://lake/seed.txt")["MatchedGrantTarget"] == "s3://lake/*"


def test_vended_credentials_work_against_moto_s3_within_the_grant(server, world):
    grantee = session(world, "reader")
    client = s3control(server, grantee)
    creds = get(client, "s3://lake/curated/", "READWRITE")["Credentials"]
    # no secret of either session in the call log or the stand-in's own log
    with open(server.log_path, errors="replace") as f:
        logged = json.dumps(server.calls()) + f.read()
    for secret in (grantee["SecretAccessKey"], grantee["SessionToken"], creds["SecretAccessKey"], creds["SessionToken"]):
        assert secret not in logged
    s3 = boto3.client("s3", endpoint_url=world.endpoint, region_name=world.region,
                      aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                      aws_session_token=creds["SessionToken"])
    s3.put_object(Bucket="lake", Key="curated/part-0", Body=b"rows")
    assert s3.get_object(Bucket="lake", Key="curated/part-0")["Body"].read() == b"rows"
    # They are the location role's session (moto's own view of the key) ...
    sts = boto3.client("sts", endpoint_url=world.endpoint, region_name=world.region,
                       aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])
    assert sts.get_caller_identity()["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/grants-location/access-grants-")
    # ... and, with moto's IAM enforcement on, reach nothing the location role may not.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="other-bucket", Key="seed.txt")
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def s3_with(world, creds):
    return boto3.client("s3", endpoint_url=world.endpoint, region_name=world.region,
                        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])


def denied(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"] == "AccessDenied"


def test_vended_credentials_are_confined_to_the_grant_by_its_session_policy(server, world):
    """The location role may do s3:* on the whole bucket; the vended session only what its grant says."""
    reader = s3control(server, session(world, "reader"))
    read = s3_with(world, get(reader, "s3://lake/seed.txt")["Credentials"])  # READ on s3://lake/*
    assert read.get_object(Bucket="lake", Key="seed.txt")["Body"].read()
    assert read.list_objects_v2(Bucket="lake", Prefix="")["KeyCount"] >= 1
    assert denied(lambda: read.put_object(Bucket="lake", Key="x", Body=b"x"))
    assert denied(lambda: read.delete_object(Bucket="lake", Key="seed.txt"))

    curated = s3_with(world, get(reader, "s3://lake/curated/", "READWRITE")["Credentials"])
    curated.put_object(Bucket="lake", Key="curated/a", Body=b"a")
    assert curated.list_objects_v2(Bucket="lake", Prefix="curated/")["KeyCount"] == 1
    assert denied(lambda: curated.put_object(Bucket="lake", Key="raw/a", Body=b"a"))
    assert denied(lambda: curated.get_object(Bucket="lake", Key="seed.txt"))
    assert denied(lambda: curated.list_objects_v2(Bucket="lake", Prefix=""))

    # privilege Minimal: the target, not the grant
    minimal = s3_with(world, get(reader, "s3://lake/curated/2026/", "WRITE", Privilege="Minimal")["Credentials"])
    minimal.put_object(Bucket="lake", Key="curated/2026/b", Body=b"b")
    assert denied(lambda: minimal.put_object(Bucket="lake", Key="curated/2025/b", Body=b"b"))

    writer = s3control(server, session(world, "writer"))
    write = s3_with(world, get(writer, "s3://lake/raw/", "WRITE")["Credentials"])
    write.put_object(Bucket="lake", Key="raw/x.csv", Body=b"1,2")
    mpu = write.create_multipart_upload(Bucket="lake", Key="raw/big.bin")
    part = write.upload_part(Bucket="lake", Key="raw/big.bin", UploadId=mpu["UploadId"], PartNumber=1, Body=b"z" * 10)
    write.complete_multipart_upload(Bucket="lake", Key="raw/big.bin", UploadId=mpu["UploadId"],
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert denied(lambda: write.get_object(Bucket="lake", Key="raw/x.csv"))
    assert denied(lambda: write.list_objects_v2(Bucket="lake", Prefix="raw/"))
    # an object grant: that key only
    manifest = s3_with(world, get(writer, "s3://lake/raw/manifest.json", TargetType="Object")["Credentials"])
    assert denied(lambda: manifest.get_object(Bucket="lake", Key="raw/x.csv"))


def test_grant_table_is_validated(server, world):
    location = world.role("grants-location")["arn"]
    reader = world.role("reader")["arn"]
    bad = [
        ("arn:aws:iam::123456789012:role/no-such-role", [{"grantee": reader, "scope": "s3://lake/*", "permission": "READ"}]),
        (location, [{"grantee": reader, "scope": "lake/*", "permission": "READ"}]),
        (location, [{"grantee": reader, "scope": "s3://lake/*/x", "permission": "READ"}]),
        (location, [{"grantee": reader, "scope": "s3://lake/*", "permission": "FULL"}]),
        (location, [{"grantee": reader, "scope": "s3://lake/*", "permission": "READ", "typo": 1}]),
    ]
    for role, grants in bad:
        with pytest.raises(RuntimeError, match="400"):
            server.set_grants(role, grants)


def test_grants_file_at_startup_and_a_location_role_that_is_gone(tmp_path):
    grants = {"location_role": f"arn:aws:iam::{ACCOUNT}:role/grants-location",
              "grants": [{"grantee": f"arn:aws:iam::{ACCOUNT}:role/reader", "scope": "s3://lake/*", "permission": "READ"},
                         {"grantee": f"arn:aws:iam::{ACCOUNT}:role/reader", "scope": "s3://gone/*", "permission": "READ",
                          "location_role": f"arn:aws:iam::{ACCOUNT}:role/gone-location"}]}
    path = tmp_path / "grants.json"
    path.write_text(json.dumps(grants))
    other = MotoWithAccessGrants(str(tmp_path), grants_file=str(path))
    try:
        w = other.setup(roles=ROLES)
        allow_get_data_access(w, "reader")
        client = s3control(other, session(w, "reader"))
        assert get(client, "s3://lake/seed.txt")["MatchedGrantTarget"] == "s3://lake/*"
        with pytest.raises(ClientError) as e:
            get(client, "s3://gone/x")
        assert error(e)[:2] == (403, "AccessDenied")
    finally:
        other.stop()
