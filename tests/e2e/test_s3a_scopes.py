"""Prefix rules inside one bucket hold for Hadoop S3A request by request, on both AWS SDKs for Java (issue 12).

One S3A filesystem instance reads teamA/ and writes teamB/ of one bucket; the agent maps teamA/ and teamB/ to
two roles, denies secret/ and falls back to the node's credentials elsewhere. A recording proxy in front of
moto's S3 (helpers/s3_recorder.py) logs the access key id that signed each S3 request, and each one is checked
against the key the agent handed out for that request's prefix (joined through the agent's audit log).

Runtimes (tests/java/runtimes): Hadoop 3.3.6 with the AWS SDK for Java v1 (RoleAgentRequestHandler, EMR up
to 7.9); Hadoop 3.4.1 with SDK v2 2.24.6, the version it was built with, and with a current SDK v2
(RoleAgentExecutionInterceptor, EMR 7.10 and later).
"""

import json

import pytest

from helpers import jvm

BUCKET = "shared-bucket"
RUNTIMES = ["hadoop-3.3.6", "hadoop-3.4.1", "hadoop-3.4.1-sdk-current"]
SESSION = "io.emrfsroleagent.e2e.S3aSession"

pytestmark = pytest.mark.moto(
    roles=[{"name": "team-a", "bucket": BUCKET}, {"name": "team-b", "bucket": BUCKET}], enforce_iam=False
)


def mappings(moto, **team_options):
    return [
        {"name": "secret-deny", "effect": "deny", "prefixes": [f"s3://{BUCKET}/secret/"]},
        {"name": "team-a", "role": moto.role("team-a")["arn"], "prefixes": [f"s3://{BUCKET}/teamA/"],
         **team_options},
        {"name": "team-b", "role": moto.role("team-b")["arn"], "prefixes": [f"s3://{BUCKET}/teamB/"],
         **team_options},
    ]


def site(runtime, agent, recorder):
    return jvm.s3a_site(recorder.endpoint, agent, jvm.RUNTIME_SETTINGS[runtime],
                        {"fs.s3a.endpoint.region": "us-east-1"})


def run_session(java_build, runtime, agent, recorder, tmp_path, ops):
    conf_dir = str(tmp_path / "conf")
    jvm.write_site(conf_dir, site(runtime, agent, recorder))
    cp = jvm.classpath(java_build, runtime, conf_dir)
    out = jvm.run(cp, SESSION, [f"s3a://{BUCKET}/", *ops])
    assert "DONE" in out.stdout.splitlines(), f"the session did not finish:\n{out.stdout}\n{out.stderr[-6000:]}"
    results = {}
    for line in out.stdout.splitlines():
        for status in ("OK", "FAIL"):
            if line.startswith(status + " "):
                op, _, rest = line[len(status) + 1:].partition(": " if status == "FAIL" else " ")
                results[op.strip()] = (status, rest)
    return out, results


def keys_by_role(agent):
    """access key id -> role ARN (None: the fallback), from the agent's audit log."""
    out = {}
    for r in agent.audit_records():
        if r.get("event") == "credentials" and r.get("access_key_id"):
            out[r["access_key_id"]] = r["role_arn"]
    return out


def expected_role(moto, location):
    if location is None:
        return None
    key = location[len(f"s3://{BUCKET}/"):]
    if key.startswith("teamA/"):
        return moto.role("team-a")["arn"]
    if key.startswith("teamB/"):
        return moto.role("team-b")["arn"]
    return None


def _policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def enforce_iam(moto, moto_server):
    """Confines each identity to its own prefix, then turns moto's IAM enforcement on.

    team-a's role may only touch teamA/*, team-b's only teamB/*; the fallback (the agent's source user) the
    rest of the bucket but neither team's prefix. So S3 itself refuses any request signed for the wrong prefix.
    (moto evaluates the role's own policies, not session policies, so `scope_to_prefix` would prove nothing.)
    """
    iam = moto.client("iam")
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    for role, prefix in (("team-a", "teamA/"), ("team-b", "teamB/")):
        iam.put_role_policy(RoleName=role, PolicyName=f"{role}-s3", PolicyDocument=_policy(
            {"Effect": "Allow", "Action": "s3:*", "Resource": f"{bucket_arn}/{prefix}*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn}))
    iam.put_user_policy(UserName=moto.user["name"], PolicyName="shared-bucket-rest", PolicyDocument=_policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": [bucket_arn, f"{bucket_arn}/*"]},
        {"Effect": "Deny", "Action": "s3:*", "Resource": [f"{bucket_arn}/teamA/*", f"{bucket_arn}/teamB/*"]}))
    moto_server.set_enforcement(True)


# moto's IAM enforcement rejects every SDK v1 request (see test_moto_rejects_sdk_v1_signatures_and_why), so
# Hadoop 3.3.6 runs with it off; the recording proxy still proves which key signed what.
RUNS = [
    pytest.param("hadoop-3.3.6", False, id="hadoop-3.3.6-iam-off"),
    pytest.param("hadoop-3.4.1", False, id="hadoop-3.4.1-iam-off"),
    pytest.param("hadoop-3.4.1", True, id="hadoop-3.4.1-iam-on"),
    pytest.param("hadoop-3.4.1-sdk-current", True, id="hadoop-3.4.1-sdk-current-iam-on"),
]


@pytest.mark.parametrize("runtime,enforce", RUNS)
def test_one_filesystem_reads_team_a_and_writes_team_b_each_request_signed_by_its_prefix_role(
        java_build, moto, moto_server, agent_factory, recorder, tmp_path, runtime, enforce):
    agent = agent_factory(mappings=mappings(moto))
    s3 = moto.client("s3")
    s3.put_object(Bucket=BUCKET, Key="teamA/input/part-0", Body=b"rows of team A")
    s3.put_object(Bucket=BUCKET, Key="teamA/input/part-1", Body=b"more rows of team A")
    if enforce:
        enforce_iam(moto, moto_server)

    read0, read1 = f"read:s3a://{BUCKET}/teamA/input/part-0", f"read:s3a://{BUCKET}/teamA/input/part-1"
    listing = f"list:s3a://{BUCKET}/teamA/input"
    write = f"write:s3a://{BUCKET}/teamB/output/part-0"
    other = f"write:s3a://{BUCKET}/scratch/tmp-0"
    out, results = run_session(java_build, runtime, agent, recorder, tmp_path, [listing, read0, read1, write, other])

    assert results.get(listing) == ("OK", "part-0 part-1"), (results, out.stderr[-6000:])
    assert results.get(read0) == ("OK", "rows of team A"), (results, out.stderr[-6000:])
    assert results.get(read1) == ("OK", "more rows of team A"), (results, out.stderr[-6000:])
    assert results.get(write, ("",))[0] == "OK", (results, out.stderr[-6000:])
    assert results.get(other, ("",))[0] == "OK", (results, out.stderr[-6000:])
    body = s3.get_object(Bucket=BUCKET, Key="teamB/output/part-0")["Body"].read()
    assert body == f"written to s3a://{BUCKET}/teamB/output/part-0".encode()

    roles = keys_by_role(agent)
    team_a, team_b = moto.role("team-a")["arn"], moto.role("team-b")["arn"]
    fallback_key = moto.user["access_key_id"]
    assert roles.get(fallback_key, "missing") is None, roles

    requests = recorder.snapshot()
    assert requests, "no S3 request reached the recorder"
    wrong = []
    for r in requests:
        want = expected_role(moto, r.location)
        if r.access_key_id not in roles or roles[r.access_key_id] != want:
            wrong.append(f"{r}: signed by {roles.get(r.access_key_id, 'a key the agent never handed out')},"
                         f" expected {want or 'the fallback'}")
    assert not wrong, "requests signed with the wrong credentials:\n" + "\n".join(wrong)
    # Every kind of request was there: team A reads and lists, team B writes, fallback requests.
    seen = {(r.method, expected_role(moto, r.location)) for r in requests}
    assert ("GET", team_a) in seen and ("PUT", team_b) in seen and ("PUT", None) in seen, seen
    assert any(r.location and r.location.startswith(f"s3://{BUCKET}/teamA/input") and "list-type" in r.query
               for r in requests), [str(r) for r in requests]
    # The agent was asked per location, never for a location of the other team's prefix with its role.
    records = [r for r in agent.audit_records() if r.get("event") == "credentials" and r.get("location")]
    for rec in records:
        assert rec["role_arn"] == expected_role(moto, rec["location"]), rec
    # An agent that answers with Scope is asked once for everything the job read under teamA/ (the listing and
    # both reads); one without Scope is asked once per distinct location.
    team_a_asked = [r["location"] for r in records if r["location"].startswith(f"s3://{BUCKET}/teamA/")]
    if "Scope" in agent.credentials(location=f"s3://{BUCKET}/teamA/probe").json():
        assert len(team_a_asked) == 1, team_a_asked
    else:
        assert len(team_a_asked) == len(set(team_a_asked)), team_a_asked


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_denied_prefix_fails_with_the_agents_code_and_message(
        java_build, moto, agent_factory, recorder, tmp_path, runtime):
    agent = agent_factory(mappings=mappings(moto))
    denied = f"write:s3a://{BUCKET}/secret/plans.txt"
    fine = f"write:s3a://{BUCKET}/teamB/ok.txt"
    out, results = run_session(java_build, runtime, agent, recorder, tmp_path, [denied, fine])

    expect = agent.credentials(location=f"s3://{BUCKET}/secret/plans.txt").json()
    status, message = results.get(denied, ("missing", ""))
    assert status == "FAIL", (results, out.stderr[-4000:])
    # S3A's own access-denied error (never retried), with the agent's words; the create's first request reads.
    assert message.startswith("java.nio.file.AccessDeniedException"), message
    assert f"emrfs-role-agent at {agent.url} refused credentials to read s3://{BUCKET}/secret/" in message, message
    assert "HTTP 403 AccessDenied" in message and expect["message"] in message, (message, expect)
    assert results.get(fine, ("",))[0] == "OK", (results, out.stderr[-4000:])
    # Nothing under secret/ reached S3.
    leaked = [str(r) for r in recorder.snapshot() if r.location and "/secret/" in r.location]
    assert not leaked, leaked


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_rename_across_prefixes_of_different_roles_fails_clearly(
        java_build, moto, agent_factory, recorder, tmp_path, runtime):
    agent = agent_factory(mappings=mappings(moto))
    s3 = moto.client("s3")
    s3.put_object(Bucket=BUCKET, Key="teamA/report.csv", Body=b"a,b\n")
    s3.put_object(Bucket=BUCKET, Key="teamA/old/report.csv", Body=b"c,d\n")
    across = f"rename:s3a://{BUCKET}/teamA/report.csv=s3a://{BUCKET}/teamB/report.csv"
    within = f"rename:s3a://{BUCKET}/teamA/old/report.csv=s3a://{BUCKET}/teamA/new/report.csv"
    out, results = run_session(java_build, runtime, agent, recorder, tmp_path, [across, within])

    status, message = results.get(across, ("missing", ""))
    assert status == "FAIL", (results, out.stderr[-4000:])
    assert (f"CopyObject from s3://{BUCKET}/teamA/report.csv to s3://{BUCKET}/teamB/report.csv needs one set of"
            " credentials for both") in message, message
    assert moto.role("team-a")["arn"] in message and moto.role("team-b")["arn"] in message, message
    assert results.get(within, ("",))[0] == "OK", (results, out.stderr[-4000:])
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    assert "teamA/report.csv" in keys and "teamB/report.csv" not in keys, keys
    assert "teamA/new/report.csv" in keys and "teamA/old/report.csv" not in keys, keys


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_secret_in_any_jvm_output_at_debug(java_build, moto, agent_factory, recorder, tmp_path, runtime):
    agent = agent_factory(mappings=mappings(moto))
    ops = [f"write:s3a://{BUCKET}/teamA/x", f"write:s3a://{BUCKET}/teamB/y", f"write:s3a://{BUCKET}/secret/z",
           f"rename:s3a://{BUCKET}/teamA/x=s3a://{BUCKET}/teamB/x"]
    out, results = run_session(java_build, runtime, agent, recorder, tmp_path, ops)
    assert results.get(ops[0], ("",))[0] == "OK", (results, out.stderr[-4000:])
    assert "DEBUG" in out.stderr, "the clients' debug logging is off"
    # The agent's cache hands the same sessions to the test as it did to the JVM.
    secrets = [agent.token, moto.user["secret_access_key"]]
    for location in (f"s3://{BUCKET}/teamA/x", f"s3://{BUCKET}/teamB/y"):
        creds = agent.credentials(location=location).json()
        secrets += [creds["SecretAccessKey"], creds["Token"]]
        assert creds["AccessKeyId"] in out.stderr, "the debug log names the access key id it uses"
    leaked = [s[:4] + "…" for s in secrets if s in out.stdout + out.stderr]
    assert not leaked, f"secrets in the JVM's output: {leaked}"


def test_moto_rejects_sdk_v1_signatures_and_why(java_build, moto, moto_server, agent_factory, recorder, tmp_path):
    """Why Hadoop 3.3.6 (SDK v1) runs with moto's IAM enforcement off.

    The SDK v1 signer (AWS4Signer) signs every header but `connection` and `x-amzn-trace-id`, so its
    SignedHeaders include `user-agent` (and `expect` on uploads). moto verifies a signature by re-signing the
    request with botocore's SigV4Auth, which leaves `user-agent`, `expect` and other hop-by-hop headers out of
    the canonical request whatever SignedHeaders says; the canonical requests differ and moto answers
    SignatureDoesNotMatch to every SDK v1 request. If this test fails, moto has changed: run Hadoop 3.3.6 with
    enforcement on in RUNS above.
    """
    agent = agent_factory(mappings=mappings(moto))
    moto.client("s3").put_object(Bucket=BUCKET, Key="teamA/input/part-0", Body=b"rows of team A")
    enforce_iam(moto, moto_server)
    read = f"read:s3a://{BUCKET}/teamA/input/part-0"
    out, results = run_session(java_build, "hadoop-3.3.6", agent, recorder, tmp_path, [read])
    status, message = results.get(read, ("missing", ""))
    assert status == "FAIL" and ("SignatureDoesNotMatch" in message or "403 Forbidden" in message), results
    requests = recorder.snapshot()
    assert requests and all(r.status == 403 and "user-agent" in r.signed_headers for r in requests), \
        [(str(r), r.signed_headers) for r in requests]
    roles = keys_by_role(agent)
    assert all(roles.get(r.access_key_id) == moto.role("team-a")["arn"] for r in requests), [str(r) for r in requests]
