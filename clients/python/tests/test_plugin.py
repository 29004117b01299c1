"""The botocore plugin on real botocore clients: which credentials sign each request, what a refusal looks like,
and that other clients are left alone. Requests never leave the process: a ``before-send`` handler records each
signed request and answers it (botocore sends whatever that handler returns instead of going to the network)."""

import io
import logging
import re

import boto3
import botocore
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError, CredentialRetrievalError

import emrfs_role_agent.botocore as plugin
from emrfs_role_agent import resolver as resolver_module
from emrfs_role_agent.resolver import Resolver
from emrfs_role_agent.settings import Settings

OWN_KEY = "AKIACLIENTSOWNKEY"
OWN_SECRET = "client-own-secret-do-not-print"
_CREDENTIAL = re.compile(r"Credential=([^/]+)/")
_BODIES = {
    "CopyObject": b'<CopyObjectResult><ETag>"e"</ETag></CopyObjectResult>',
    "DeleteObjects": b"<DeleteResult></DeleteResult>",
    "ListObjectsV2": b"<ListBucketResult><Name>lake</Name><KeyCount>0</KeyCount></ListBucketResult>",
    "GetCallerIdentity": (b'<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::1:user/u</Arn>'
                          b"</GetCallerIdentityResult></GetCallerIdentityResponse>"),
}


class _Raw(io.BytesIO):
    def stream(self, amt=1024, decode_content=None):
        while True:
            chunk = self.read(amt)
            if not chunk:
                return
            yield chunk


class Wire:
    """Records (operation, access key id, session token) of every request a client sends."""

    def __init__(self):
        self.sent = []

    def attach(self, client):
        client.meta.events.register("before-send", self._send)
        return client

    def _send(self, request, **kwargs):
        operation = request.context.get("emrfs-test-operation") or "?"
        auth = request.headers.get("Authorization", b"")
        auth = auth.decode() if isinstance(auth, bytes) else auth
        m = _CREDENTIAL.search(auth)
        token = request.headers.get("X-Amz-Security-Token")
        token = token.decode() if isinstance(token, bytes) else token
        self.sent.append((operation, m.group(1) if m else None, token))
        return AWSResponse(request.url, 200, {}, _Raw(_BODIES.get(operation, b"")))

    def keys(self):
        return [k for _, k, _ in self.sent]


def _tag_operation(model, context, **kwargs):
    context["emrfs-test-operation"] = model.name


def make_client(service="s3", **kw):
    client = boto3.session.Session().client(
        service, region_name="us-east-1", endpoint_url="http://127.0.0.1:1", aws_access_key_id=OWN_KEY,
        aws_secret_access_key=OWN_SECRET, **kw)
    client.meta.events.register("before-parameter-build", _tag_operation)
    return client


@pytest.fixture
def wire():
    return Wire()


@pytest.fixture
def s3(resolver, wire):
    client = make_client()
    assert plugin.register(client, resolver) is True
    return wire.attach(client)


@pytest.fixture
def two_teams(agent):
    agent.rule("s3://lake/secret/", deny=True)
    agent.rule("s3://lake/teamA/", role="team-a")
    agent.rule("s3://lake/teamB/", role="team-b")
    return agent


def test_each_request_is_signed_by_the_role_of_its_prefix(s3, wire, two_teams):
    s3.put_object(Bucket="lake", Key="teamA/out/part-0", Body=b"a")
    s3.put_object(Bucket="lake", Key="teamB/out/part-0", Body=b"b")
    s3.get_object(Bucket="lake", Key="teamA/in/part-1")["Body"].read()
    s3.list_objects_v2(Bucket="lake", Prefix="teamB/in/")
    assert wire.sent == [
        ("PutObject", "ASIATEAMA0000", "token-team-a-0-do-not-print"),
        ("PutObject", "ASIATEAMB0000", "token-team-b-0-do-not-print"),
        ("GetObject", "ASIATEAMA0000", "token-team-a-0-do-not-print"),
        ("ListObjectsV2", "ASIATEAMB0000", "token-team-b-0-do-not-print"),
    ]
    assert two_teams.asked() == [("s3://lake/teamA/out/part-0", "write"), ("s3://lake/teamB/out/part-0", "write"),
                                 ("s3://lake/teamA/in/part-1", "read"), ("s3://lake/teamB/in/", "read")]


def test_a_scope_hit_costs_no_agent_call(s3, wire, two_teams):
    for i in range(20):
        s3.put_object(Bucket="lake", Key=f"teamA/out/part-{i}", Body=b"a")
    assert wire.keys() == ["ASIATEAMA0000"] * 20
    assert len(two_teams.requests) == 1


@pytest.mark.parametrize("key", ["x%2Fy/secret/f", "100%off.csv", "a+b c", "café/ü", "dt=2026-01-01 00%3A00/p"])
def test_keys_are_decided_literally(s3, wire, agent, key):
    # Only the literal key may match: the decoded forms (x/y/secret/f, a b c, ...) would get the wrong answer.
    agent.rule(f"s3://lake/{key}", role="literal")
    agent.rule("s3://lake/", deny=True, scope=False)
    s3.put_object(Bucket="lake", Key=key, Body=b"")
    assert agent.asked() == [(f"s3://lake/{key}", "write")]
    assert wire.keys() == ["ASIALITERAL0000"]


def test_a_deny_fails_at_once_with_access_denied_and_sends_nothing(s3, wire, two_teams):
    for _ in range(3):
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket="lake", Key="secret/plans.txt")
        err = e.value.response
        assert err["Error"]["Code"] == "AccessDenied" and err["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert err["Error"]["Message"] == (
            f"emrfs-role-agent at {two_teams.endpoint} refused read credentials for s3://lake/secret/plans.txt:"
            " HTTP 403 AccessDenied: deny rule for s3://lake/secret/")
        assert "GetObject operation" in str(e.value)
    assert wire.sent == []
    assert len(two_teams.requests) == 1  # the deny is remembered for its scope


def test_an_unreachable_agent_fails_the_request_instead_of_using_the_clients_own_keys(wire, clock):
    s3 = wire.attach(make_client())
    plugin.register(s3, Resolver(Settings(endpoint="http://127.0.0.1:1", token_file=None), clock,
                                 convert=plugin._Signing))
    with pytest.raises(CredentialRetrievalError) as e:
        s3.put_object(Bucket="lake", Key="teamA/x", Body=b"")
    assert "emrfs-role-agent at http://127.0.0.1:1 could not be reached for write credentials" in str(e.value)
    assert wire.sent == []


def test_a_copy_reads_its_source_and_writes_its_destination_with_one_session(s3, wire, two_teams):
    s3.copy_object(Bucket="lake", Key="teamA/new", CopySource="lake/teamA/old")
    assert two_teams.asked() == [("s3://lake/teamA/new", "write"), ("s3://lake/teamA/old", "read")]
    assert wire.keys() == ["ASIATEAMA0000"]
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="lake", Key="teamB/new", CopySource={"Bucket": "lake", "Key": "teamA/old"})
    message = e.value.response["Error"]["Message"]
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert ("CopyObject from s3://lake/teamA/old to s3://lake/teamB/new needs one set of credentials for both"
            in message)
    assert "role/team-a" in message and "role/team-b" in message
    assert wire.keys() == ["ASIATEAMA0000"]


def test_a_bulk_delete_is_decided_at_the_common_prefix_and_for_every_key(s3, wire, agent):
    agent.rule("s3://lake/teamA/private/", role="private")
    agent.rule("s3://lake/teamA/", role="team-a", scope=False)  # a deeper rule: no scope for teamA/ itself
    agent.rule("s3://lake/teamAB/", role="team-a")
    s3.delete_objects(Bucket="lake", Delete={"Objects": [{"Key": "teamAB/x/1"}, {"Key": "teamAB/y"}]})
    assert agent.asked() == [("s3://lake/teamAB/", "write")]
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket="lake", Delete={"Objects": [{"Key": "teamA/x"}, {"Key": "teamA/private/y"}]})
    assert agent.asked()[1:] == [("s3://lake/teamA/", "write"), ("s3://lake/teamA/x", "write"),
                                 ("s3://lake/teamA/private/y", "write")]
    message = e.value.response["Error"]["Message"]
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert ("DeleteObjects of 2 objects under s3://lake/teamA/ needs one set of credentials for all, but"
            " emrfs-role-agent maps s3://lake/teamA/private/y to ASIAPRIVATE0000") in message, message
    # Keys whose common prefix no rule allows are refused there.
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket="lake", Delete={"Objects": [{"Key": "teamAB/x"}, {"Key": "teamB/y"}]})
    assert "refused write credentials for s3://lake/team:" in e.value.response["Error"]["Message"]
    assert wire.keys() == ["ASIATEAMA0000"]


def test_presigned_urls_are_signed_for_their_key(s3, two_teams):
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "lake", "Key": "teamB/report.csv"})
    assert "ASIATEAMB0000" in url
    assert two_teams.asked() == [("s3://lake/teamB/report.csv", "read")]
    post = s3.generate_presigned_post("lake", "teamA/uploads/${filename}")
    assert post["fields"].get("AWSAccessKeyId", post["fields"].get("x-amz-credential", "")).startswith("ASIATEAMA0000")
    assert two_teams.asked()[-1] == ("s3://lake/teamA/uploads/", "write")


def test_unsigned_clients_are_not_given_credentials(resolver, wire, two_teams):
    s3 = wire.attach(make_client(config=Config(signature_version=botocore.UNSIGNED)))
    plugin.register(s3, resolver)
    s3.put_object(Bucket="lake", Key="teamA/x", Body=b"")
    assert wire.keys() == [None] and two_teams.requests == []


def test_other_services_keep_their_own_credentials(resolver, wire, two_teams):
    sts = wire.attach(make_client("sts"))
    assert plugin.register(sts, resolver) is False
    sts.get_caller_identity()
    assert wire.keys() == [OWN_KEY] and two_teams.requests == []


@pytest.fixture
def plugin_env(monkeypatch, agent, token_file):
    monkeypatch.setenv("BOTOCORE_EXPERIMENTAL__PLUGINS", "emrfs-role-agent=emrfs_role_agent.botocore")
    monkeypatch.setenv("EMRFS_ROLE_AGENT_ENDPOINT", agent.endpoint)
    monkeypatch.setenv("EMRFS_ROLE_AGENT_TOKEN_FILE", token_file)
    monkeypatch.setattr(resolver_module, "_default", None)


def test_the_environment_variable_hooks_every_s3_client_of_a_session_and_nothing_else(plugin_env, wire, two_teams):
    session = botocore.session.get_session()
    kw = dict(region_name="us-east-1", endpoint_url="http://127.0.0.1:1", aws_access_key_id=OWN_KEY,
              aws_secret_access_key=OWN_SECRET)
    s3 = wire.attach(session.create_client("s3", **kw))
    sts = wire.attach(session.create_client("sts", **kw))
    for c in (s3, sts):
        c.meta.events.register("before-parameter-build", _tag_operation)
    s3.put_object(Bucket="lake", Key="teamB/x", Body=b"")
    sts.get_caller_identity()
    assert wire.keys() == ["ASIATEAMB0000", OWN_KEY]
    # An explicit register on a client the plugin already hooked adds nothing: one agent call, one signature.
    plugin.register(s3)
    s3.put_object(Bucket="lake", Key="teamA/y", Body=b"")
    assert two_teams.asked() == [("s3://lake/teamB/x", "write"), ("s3://lake/teamA/y", "write")]


def test_bad_settings_fail_each_request_clearly(plugin_env, monkeypatch, wire):
    monkeypatch.setenv("EMRFS_ROLE_AGENT_ENDPOINT", "127.0.0.1:9944")
    s3 = wire.attach(botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", aws_access_key_id=OWN_KEY, aws_secret_access_key=OWN_SECRET))
    with pytest.raises(CredentialRetrievalError) as e:
        s3.put_object(Bucket="lake", Key="k", Body=b"")
    assert "EMRFS_ROLE_AGENT_ENDPOINT must be an http:// URL" in str(e.value)
    assert wire.sent == []


def test_no_secret_in_any_log_record_repr_or_exception(s3, wire, two_teams, resolver, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="emrfs_role_agent")
    caplog.set_level(logging.INFO)
    texts = []
    s3.put_object(Bucket="lake", Key="teamA/x", Body=b"")
    s3.get_object(Bucket="lake", Key="teamB/y")
    for call in (lambda: s3.get_object(Bucket="lake", Key="secret/z"),
                 lambda: s3.copy_object(Bucket="lake", Key="teamB/z", CopySource="lake/teamA/x")):
        with pytest.raises(ClientError) as e:
            call()
        texts += [str(e.value), repr(e.value), repr(e.value.response)]
    # A failed refresh logs a warning naming the credentials it keeps serving.
    two_teams.answer = lambda loc, acc: (503, {"code": "CredentialsUnavailable", "message": "STS down"})
    clock.advance(3600 - 900 + 1)
    s3.put_object(Bucket="lake", Key="teamA/x2", Body=b"")
    entries = [e for slot in resolver.cache._slots.values() for e in slot]
    texts += [repr(e) + str(e.credentials) + repr(e.value) + repr(e.value.aio) for e in entries if e.credentials]
    assert "serving the cached ASIATEAMA0000" in caplog.text
    texts.append(caplog.text)
    texts += [r.getMessage() + repr(r.args) for r in caplog.records]
    assert any("ASIATEAMA0000" in t for t in texts)  # the key id is named, so the search is not vacuous
    leaked = [s[:6] for s in two_teams.secrets() + [OWN_SECRET] if any(s in t for t in texts)]
    assert not leaked, leaked


def test_a_botocore_that_would_ignore_per_request_credentials_is_refused(resolver, monkeypatch):
    monkeypatch.setattr(botocore, "__version__", "1.34.69")
    with pytest.raises(RuntimeError) as e:
        plugin.register(make_client(), resolver)
    assert "botocore 1.34.70 or later, not 1.34.69" in str(e.value)
