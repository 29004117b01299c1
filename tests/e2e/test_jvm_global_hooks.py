"""Every S3 client of a JVM asks the agent per request once emrfs-role-agent-hooks.jar is on its class path.

The jar puts RoleAgentGlobalInterceptor (AWS SDK for Java v2) and RoleAgentGlobalRequestHandler (v1) on the SDKs'
global hook lists (SPEC §9), so S3 clients that no Hadoop configuration reaches decide per request too: plain
SDK clients in job code, Iceberg's S3FileIO, and S3A (where S3A's own hook, when also configured, is the one
that decides). A recording proxy in front of moto's S3 (helpers/s3_recorder.py) logs the access key id that
signed each S3 request; each is checked against the key the agent handed out for the request's prefix (joined
through the agent's audit log). The clients' own credentials are moto's admin keys, which the agent never
hands out: a request the hooks missed shows up signed by them.

Runtimes (tests/java/runtimes): jvm-global (no Hadoop: SDK v1 1.12.367, SDK v2 2.57.8, Iceberg 1.12.0), the
Hadoop runtimes of test_s3a_scopes.py, and pyspark 3.5.9 with the Iceberg Spark runtime (spark-3.5-iceberg).
Settings reach the hooks through client.properties (what the bootstrap writes), named by the system property
emrfs-role-agent.client-properties (JAVA_TOOL_OPTIONS), or through the environment.
"""

import json
import os
import pwd
import subprocess

import pytest

from helpers import jvm
from helpers.net import free_port
from test_s3a_scopes import BUCKET, expected_role, keys_by_role, mappings

SDK = "io.emrfsroleagent.e2e.SdkClientsSession"
ICEBERG = "io.emrfsroleagent.e2e.IcebergRoundTrip"
SESSION = "io.emrfsroleagent.e2e.S3aSession"

pytestmark = pytest.mark.moto(
    roles=[{"name": "team-a", "bucket": BUCKET}, {"name": "team-b", "bucket": BUCKET}], enforce_iam=False
)


def parse(out):
    assert "DONE" in out.stdout.splitlines(), f"the driver did not finish:\n{out.stdout}\n{out.stderr[-6000:]}"
    results = {}
    for line in out.stdout.splitlines():
        for status in ("OK", "FAIL"):
            if line.startswith(status + " "):
                op, _, rest = line[len(status) + 1:].partition(": " if status == "FAIL" else " ")
                results[op.strip()] = (status, rest)
    return results


def properties_env(agent, tmp_path, extra_options=""):
    """The JVM finds the agent through a client.properties file, as on a node the bootstrap wired."""
    path = jvm.client_properties(str(tmp_path / "etc"), agent)
    return {"JAVA_TOOL_OPTIONS": f"-Demrfs-role-agent.client-properties={path} {extra_options}".strip()}


def run_sdk(java_build, moto, recorder, ops, env, runtime="jvm-global"):
    admin = moto.admin
    cp = jvm.global_classpath(java_build, runtime)
    out = jvm.run(cp, SDK, [recorder.endpoint, moto.endpoint, admin["access_key_id"], admin["secret_access_key"],
                            *ops], env_extra=env)
    return out, parse(out)


def wrongly_signed(moto, agent, recorder):
    """Requests not signed with the key the agent handed out for their prefix (the fallback's outside them)."""
    roles = keys_by_role(agent)
    return [f"{r}: signed by {roles.get(r.access_key_id, 'a key the agent never handed out')},"
            f" expected {expected_role(moto, r.location) or 'the fallback'}"
            for r in recorder.snapshot()
            if r.access_key_id not in roles or roles[r.access_key_id] != expected_role(moto, r.location)]


def asked(agent, prefix):
    """(access, user, whether the client named the user) of each credentials request for a location under
    `prefix`."""
    return [(r.get("access"), r.get("user"), r.get("asserted")) for r in agent.audit_records()
            if r.get("event") == "credentials" and (r.get("location") or "").startswith(prefix)]


def own_arn(moto):
    return moto.client("sts").get_caller_identity()["Arn"]


def test_plain_sdk_v1_and_v2_clients_sign_each_s3_request_with_its_prefix_role_and_sts_keeps_its_own(
        java_build, moto, agent_factory, recorder, tmp_path):
    agent = agent_factory(mappings=mappings(moto))
    ops = [f"v1-put:{BUCKET}/teamA/v1/a.txt", f"v1-get:{BUCKET}/teamA/v1/a.txt", f"v1-list:{BUCKET}/teamA/v1/",
           f"v2-put:{BUCKET}/teamB/v2/b.txt", f"v2-get:{BUCKET}/teamB/v2/b.txt", f"v2-list:{BUCKET}/teamB/v2/",
           f"v1-put:{BUCKET}/scratch/v1.txt", f"v2-put:{BUCKET}/scratch/v2.txt", "v1-sts", "v2-sts"]
    out, results = run_sdk(java_build, moto, recorder, ops,
                           properties_env(agent, tmp_path, "-Dorg.slf4j.simpleLogger.log.io.emrfsroleagent=debug"))

    failed = {op: r for op, r in results.items() if r[0] != "OK"}
    assert not failed and len(results) == len(ops), (results, out.stderr[-6000:])
    assert results[ops[1]] == ("OK", "written by v1 to teamA/v1/a.txt")
    assert results[ops[2]] == ("OK", "teamA/v1/a.txt")
    assert results[ops[4]] == ("OK", "written by v2 to teamB/v2/b.txt")
    assert results[ops[5]] == ("OK", "teamB/v2/b.txt")
    # STS is not S3: its clients keep the credentials they were built with.
    assert results["v1-sts"] == ("OK", own_arn(moto)) and results["v2-sts"] == ("OK", own_arn(moto)), results

    wrong = wrongly_signed(moto, agent, recorder)
    assert not wrong, "requests signed with the wrong credentials:\n" + "\n".join(wrong)
    seen = {(r.method, expected_role(moto, r.location)) for r in recorder.snapshot()}
    team_a, team_b = moto.role("team-a")["arn"], moto.role("team-b")["arn"]
    assert {("PUT", team_a), ("GET", team_a), ("PUT", team_b), ("GET", team_b), ("PUT", None)} <= seen, seen
    # One agent request per scope and access: the listing rides on the read's scope. No Hadoop on this class
    # path, so no user= is sent: the agent decides for the OS user.
    me = pwd.getpwuid(os.getuid()).pw_name
    for prefix in (f"s3://{BUCKET}/teamA/", f"s3://{BUCKET}/teamB/"):
        requests = asked(agent, prefix)
        assert sorted(requests) == [("read", me, False), ("write", me, False)], (prefix, requests)

    # No secret in anything the JVM printed, with the clients' debug logging on.
    assert "DEBUG" in out.stderr, "the clients' debug logging is off"
    secrets = [agent.token, moto.admin["secret_access_key"], moto.user["secret_access_key"]]
    for location in (f"s3://{BUCKET}/teamA/v1/a.txt", f"s3://{BUCKET}/teamB/v2/b.txt"):
        creds = agent.credentials(location=location).json()
        secrets += [creds["SecretAccessKey"], creds["Token"]]
    leaked = [s[:4] + "…" for s in secrets if s in out.stdout + out.stderr]
    assert not leaked, f"secrets in the JVM's output: {leaked}"


def test_a_plain_sdk_v2_2_24_client_signs_each_s3_request_with_its_prefix_role(
        java_build, moto, agent_factory, recorder, tmp_path):
    """SDK 2.24.6 (the hadoop-3.4.1 runtime) resolves the client's own identity before any interceptor runs and
    signs with what the hook puts into the chosen auth scheme."""
    agent = agent_factory(mappings=mappings(moto))
    ops = [f"v2-put:{BUCKET}/teamA/old-sdk.txt", f"v2-get:{BUCKET}/teamA/old-sdk.txt", f"v2-put:{BUCKET}/teamB/x.txt",
           f"v2-list:{BUCKET}/teamB/", "v2-sts"]
    out, results = run_sdk(java_build, moto, recorder, ops, properties_env(agent, tmp_path), runtime="hadoop-3.4.1")
    failed = {op: r for op, r in results.items() if r[0] != "OK"}
    assert not failed and len(results) == len(ops), (results, out.stderr[-6000:])
    assert results[ops[1]] == ("OK", "written by v2 to teamA/old-sdk.txt")
    assert results["v2-sts"] == ("OK", own_arn(moto)), results
    assert len(recorder.snapshot()) == 4 and not wrongly_signed(moto, agent, recorder), \
        (wrongly_signed(moto, agent, recorder), [str(r) for r in recorder.snapshot()])


def test_the_hooks_jar_alone_on_the_class_path_finds_the_provider_jar_beside_it(
        java_build, moto, agent_factory, recorder, tmp_path):
    """Its manifest's Class-Path names emrfs-role-agent-provider.jar in its own directory."""
    agent = agent_factory(mappings=mappings(moto))
    cp = ":".join([os.path.join(java_build, "test-classes"), os.path.join(java_build, "emrfs-role-agent-hooks.jar"),
                   *jvm.runtime_jars(java_build, "jvm-global")])
    ops = [f"v1-put:{BUCKET}/teamA/alone-v1.txt", f"v2-put:{BUCKET}/teamB/alone-v2.txt"]
    admin = moto.admin
    out = jvm.run(cp, SDK, [recorder.endpoint, moto.endpoint, admin["access_key_id"], admin["secret_access_key"],
                            *ops], env_extra=properties_env(agent, tmp_path))
    results = parse(out)
    assert all(results.get(op, ("",))[0] == "OK" for op in ops), (results, out.stderr[-4000:])
    assert len(recorder.snapshot()) == 2 and not wrongly_signed(moto, agent, recorder), \
        [str(r) for r in recorder.snapshot()]


def test_a_denied_prefix_fails_as_access_denied_on_both_sdks_and_nothing_reaches_s3(
        java_build, moto, agent_factory, recorder, tmp_path):
    agent = agent_factory(mappings=mappings(moto))
    ops = [f"v1-put:{BUCKET}/secret/v1.txt", f"v2-put:{BUCKET}/secret/v2.txt", f"v2-get:{BUCKET}/secret/plans.txt",
           f"v2-put:{BUCKET}/teamA/fine.txt"]
    out, results = run_sdk(java_build, moto, recorder, ops, properties_env(agent, tmp_path))

    expect = agent.credentials(location=f"s3://{BUCKET}/secret/v1.txt").json()
    exceptions = {"v1": "com.amazonaws.services.s3.model.AmazonS3Exception status=403 code=AccessDenied",
                  "v2": "software.amazon.awssdk.services.s3.model.S3Exception status=403 code=AccessDenied"}
    for op in ops[:3]:
        status, message = results.get(op, ("missing", ""))
        assert status == "FAIL" and message.startswith(exceptions[op[:2]]), (op, results, out.stderr[-4000:])
        verb = "read" if "-get:" in op else "write"
        assert f"emrfs-role-agent at {agent.url} refused credentials to {verb} s3://{BUCKET}/secret/" in message, \
            message
        assert expect["message"] in message, (message, expect)
    assert results.get(ops[3], ("",))[0] == "OK", (results, out.stderr[-4000:])
    leaked = [str(r) for r in recorder.snapshot() if r.location and "/secret/" in r.location]
    assert not leaked, leaked


@pytest.mark.parametrize("source", ["system-property", "environment"])
def test_settings_a_system_property_beats_the_environment_which_beats_client_properties(
        java_build, moto, agent_factory, recorder, tmp_path, source):
    agent = agent_factory(mappings=mappings(moto))
    nowhere = f"http://127.0.0.1:{free_port()}"
    wrong_file = jvm.client_properties(str(tmp_path / "etc"), agent, endpoint=nowhere)
    options = f"-Demrfs-role-agent.client-properties={wrong_file}"
    env = {}
    if source == "system-property":
        env["EMRFS_ROLE_AGENT_ENDPOINT"] = nowhere
        options += f" -Demrfs-role-agent.endpoint={agent.url}"
    else:
        env["EMRFS_ROLE_AGENT_ENDPOINT"] = agent.url
    env["JAVA_TOOL_OPTIONS"] = options
    op = f"v2-put:{BUCKET}/teamA/settings.txt"
    out, results = run_sdk(java_build, moto, recorder, [op], env)
    assert results.get(op, ("",))[0] == "OK", (results, out.stderr[-4000:])
    assert not wrongly_signed(moto, agent, recorder)


def test_without_a_reachable_agent_s3_requests_fail_naming_the_settings_and_are_never_sent(
        java_build, moto, agent_factory, recorder, tmp_path):
    """Fail closed: the hooks are on the class path because the node uses the agent, so an S3 request they
    cannot decide fails with where the settings came from, instead of going out with the client's own keys."""
    agent = agent_factory(mappings=mappings(moto))
    nowhere = f"http://127.0.0.1:{free_port()}"
    path = jvm.client_properties(str(tmp_path / "etc"), agent, endpoint=nowhere)
    ops = [f"v1-put:{BUCKET}/teamA/x.txt", f"v2-put:{BUCKET}/teamA/y.txt", "v2-sts"]
    out, results = run_sdk(java_build, moto, recorder, ops,
                           {"JAVA_TOOL_OPTIONS": f"-Demrfs-role-agent.client-properties={path}"})
    for op in ops[:2]:
        status, message = results.get(op, ("missing", ""))
        assert status == "FAIL", (results, out.stderr[-4000:])
        assert f"emrfs-role-agent at {nowhere} could not be reached for credentials to write s3://{BUCKET}/teamA/" \
               in message, message
        assert f"endpoint from {path} (endpoint)" in message, message
    assert results.get("v2-sts") == ("OK", own_arn(moto)), results
    assert not recorder.snapshot(), [str(r) for r in recorder.snapshot()]

    # An endpoint that is no URL: every S3 request fails with the reason; other services are unaffected.
    path = jvm.client_properties(str(tmp_path / "etc2"), agent, endpoint="unix:/run/agent.sock")
    out, results = run_sdk(java_build, moto, recorder, ops[1:],
                           {"JAVA_TOOL_OPTIONS": f"-Demrfs-role-agent.client-properties={path}"})
    status, message = results.get(ops[1], ("missing", ""))
    assert status == "FAIL" and "must be an http:// URL, got unix:/run/agent.sock" in message, results
    assert results.get("v2-sts") == ("OK", own_arn(moto)), results
    assert not recorder.snapshot(), [str(r) for r in recorder.snapshot()]


def test_iceberg_s3fileio_writes_and_reads_tables_under_two_prefixes_each_request_with_its_role(
        java_build, moto, agent_factory, recorder, tmp_path):
    agent = agent_factory(mappings=mappings(moto))
    admin = moto.admin
    tables = {"orders": f"s3://{BUCKET}/teamA/warehouse/db/orders", "events": f"s3://{BUCKET}/teamB/lake/events"}
    denied = f"table:plans=s3://{BUCKET}/secret/db/plans"
    ops = [f"table:{name}={location}" for name, location in tables.items()] + [denied]
    cp = jvm.global_classpath(java_build, "jvm-global")
    out = jvm.run(cp, ICEBERG, [recorder.endpoint, admin["access_key_id"], admin["secret_access_key"],
                                f"jdbc:sqlite:{tmp_path / 'catalog.db'}", *ops],
                  env_extra=properties_env(agent, tmp_path))
    results = parse(out)
    for op, (name, location) in zip(ops, tables.items()):
        status, rest = results.get(op, ("missing", ""))
        assert status == "OK", (results, out.stderr[-6000:])
        assert rest.startswith("rows=3 files=1 metadata=" + location + "/metadata/"), rest
    # A denied prefix: Iceberg gets S3's own AccessDenied, and nothing under it reaches S3.
    status, rest = results.get(denied, ("missing", ""))
    assert status == "FAIL" and "S3Exception status=403 code=AccessDenied" in rest, (rest, out.stderr[-4000:])
    assert f"refused credentials to write s3://{BUCKET}/secret/db/plans/metadata/" in rest, rest

    wrong = wrongly_signed(moto, agent, recorder)
    assert not wrong, "requests signed with the wrong credentials:\n" + "\n".join(wrong)
    requests = recorder.snapshot()
    assert not [str(r) for r in requests if "/secret/" in (r.location or "")]
    for location in tables.values():
        key = location[len(f"s3://{BUCKET}/"):]
        written = {r.key[len(key) + 1:].split("/")[0] for r in requests if r.method == "PUT" and r.key.startswith(key)}
        read = {r.key[len(key) + 1:].split("/")[0] for r in requests if r.method == "GET" and r.key.startswith(key)}
        # Data files and metadata files (metadata JSON, manifest list, manifest) both ways.
        assert written == {"data", "metadata"} and read == {"data", "metadata"}, \
            (location, written, read, [(r.method, r.bucket, r.key) for r in requests])
        kinds = {r.key.rsplit(".", 1)[-1] for r in requests if r.key.startswith(key + "/metadata/")}
        assert {"json", "avro"} <= kinds, kinds
    for prefix in (f"s3://{BUCKET}/teamA/", f"s3://{BUCKET}/teamB/"):
        requests = asked(agent, prefix)
        assert len(requests) == len(set(requests)) and {r[0] for r in requests} == {"read", "write"}, requests


# S3A with its own per-request hook and the JVM-wide one: S3A's decides, the agent is asked once per scope.
@pytest.mark.parametrize("runtime", ["hadoop-3.3.6", "hadoop-3.4.1", "hadoop-3.4.1-sdk-current"])
def test_s3a_with_its_own_hook_and_the_jvm_wide_one_asks_the_agent_once_per_scope(
        java_build, moto, agent_factory, recorder, tmp_path, runtime):
    agent = agent_factory(mappings=mappings(moto))
    s3 = moto.client("s3")
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key=f"teamA/input/part-{i}", Body=f"rows {i} of team A".encode())
    conf_dir = str(tmp_path / "conf")
    jvm.write_site(conf_dir, jvm.s3a_site(recorder.endpoint, agent, jvm.RUNTIME_SETTINGS[runtime],
                                          {"fs.s3a.endpoint.region": "us-east-1"}))
    cp = jvm.global_classpath(java_build, runtime, conf_dir)
    ops = [f"list:s3a://{BUCKET}/teamA/input", *(f"read:s3a://{BUCKET}/teamA/input/part-{i}" for i in range(3)),
           f"write:s3a://{BUCKET}/teamB/out/part-0", f"write:s3a://{BUCKET}/teamB/out/part-1"]
    # The JVM-wide hooks would reach the agent through these settings too, were they to decide anything.
    out = jvm.run(cp, SESSION, [f"s3a://{BUCKET}/", *ops], env_extra=properties_env(agent, tmp_path))
    results = parse(out)
    failed = {op: r for op, r in results.items() if r[0] != "OK"}
    assert not failed and len(results) == len(ops), (results, out.stderr[-6000:])

    wrong = wrongly_signed(moto, agent, recorder)
    assert not wrong, "requests signed with the wrong credentials:\n" + "\n".join(wrong)
    # Both hooks would send the same user and access; two decisions would show as a second request.
    for prefix in (f"s3://{BUCKET}/teamA/", f"s3://{BUCKET}/teamB/"):
        requests = asked(agent, prefix)
        assert len(requests) == len(set(requests)), (prefix, requests)
    assert {r[0] for r in asked(agent, f"s3://{BUCKET}/teamA/")} == {"read"}


@pytest.mark.parametrize("runtime", ["hadoop-3.3.6", "hadoop-3.4.1", "hadoop-3.4.1-sdk-current"])
def test_s3a_with_only_the_bucket_level_provider_gets_per_request_decisions_from_the_jvm_wide_hook(
        java_build, moto, agent_factory, recorder, tmp_path, runtime):
    """S3A wired per bucket only (EMR 6.x style), the hooks jar on the class path: the JVM-wide hook decides
    each request, for the Hadoop user that built S3A's client; on SDK 2.24.6 too, which signs with what the hook
    puts into the chosen auth scheme."""
    me = pwd.getpwuid(os.getuid()).pw_name
    agent = agent_factory(mappings=mappings(moto), config={"identity": {"trusted_proxy_users": [me]}})
    moto.client("s3").put_object(Bucket=BUCKET, Key="teamA/input/part-0", Body=b"rows of team A")
    provider = jvm.RUNTIME_SETTINGS[runtime]["fs.s3a.aws.credentials.provider"]
    conf_dir = str(tmp_path / "conf")
    jvm.write_site(conf_dir, jvm.s3a_site(recorder.endpoint, agent, {"fs.s3a.aws.credentials.provider": provider},
                                          {"fs.s3a.endpoint.region": "us-east-1"}))
    cp = jvm.global_classpath(java_build, runtime, conf_dir)
    ops = [f"read:s3a://{BUCKET}/teamA/input/part-0", f"write:s3a://{BUCKET}/teamB/out/part-0"]
    out = jvm.run(cp, SESSION, [f"s3a://{BUCKET}/", *ops],
                  env_extra={**properties_env(agent, tmp_path), "HADOOP_USER_NAME": "analyst"})
    results = parse(out)
    assert results.get(ops[0]) == ("OK", "rows of team A"), (results, out.stderr[-6000:])
    assert results.get(ops[1], ("",))[0] == "OK", (results, out.stderr[-6000:])
    wrong = wrongly_signed(moto, agent, recorder)
    assert not wrong, "requests signed with the wrong credentials:\n" + "\n".join(wrong)
    assert asked(agent, f"s3://{BUCKET}/teamA/") == [("read", "analyst", True)], agent.audit_records()


SPARK_JOB = r"""
import json, sys
from pyspark.sql import SparkSession

endpoint, key_id, secret, catalog_db, orders, events = sys.argv[1:7]
lake = "spark.sql.catalog.lake"
spark = (SparkSession.builder.master("local[2]").appName("emrfs-role-agent-iceberg")
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2")
         .config(lake, "org.apache.iceberg.spark.SparkCatalog")
         .config(lake + ".type", "jdbc")
         .config(lake + ".uri", "jdbc:sqlite:" + catalog_db)
         .config(lake + ".warehouse", "s3://unused-warehouse/")
         .config(lake + ".io-impl", "org.apache.iceberg.aws.s3.S3FileIO")
         .config(lake + ".http-client.type", "urlconnection")
         .config(lake + ".client.region", "us-east-1")
         .config(lake + ".s3.endpoint", endpoint)
         .config(lake + ".s3.path-style-access", "true")
         .config(lake + ".s3.access-key-id", key_id)
         .config(lake + ".s3.secret-access-key", secret)
         .getOrCreate())
spark.sql("CREATE NAMESPACE lake.db")
spark.sql(f"CREATE TABLE lake.db.orders (id INT, item STRING) USING iceberg LOCATION '{orders}'")
spark.sql(f"CREATE TABLE lake.db.events (id INT, item STRING) USING iceberg LOCATION '{events}'")
spark.sql("INSERT INTO lake.db.orders VALUES (1, 'apple'), (2, 'pear'), (3, 'plum')")
spark.sql("INSERT INTO lake.db.events SELECT id, upper(item) FROM lake.db.orders")
items = sorted(r.item for r in spark.table("lake.db.events").collect())
print("RESULT " + json.dumps({"events": items, "orders": spark.table("lake.db.orders").count(),
                              "user": spark.sparkContext.sparkUser()}))
spark.stop()
"""


def test_spark_job_writes_and_reads_iceberg_tables_through_s3fileio_each_request_with_its_prefix_role(
        java_build, moto, agent_factory, recorder, tmp_path):
    """pyspark 3.5.9 (Hadoop 3.3.4) with the Iceberg 1.12.0 Spark runtime and SDK v2 modules; the hooks jar on
    the driver's class path, as the bootstrap puts it on spark.driver/executor.extraClassPath. Tables on a JDBC
    (SQLite) catalog with S3FileIO, one under teamA/ and one under teamB/; the job runs as Hadoop user analyst."""
    python = jvm.spark_python()
    me = pwd.getpwuid(os.getuid()).pw_name
    agent = agent_factory(mappings=mappings(moto), config={"identity": {"trusted_proxy_users": [me]}})
    classpath = ":".join([os.path.join(java_build, "emrfs-role-agent-hooks.jar"),
                          os.path.join(java_build, "emrfs-role-agent-provider.jar"),
                          *jvm.runtime_jars(java_build, "spark-3.5-iceberg")])
    job = tmp_path / "job.py"
    job.write_text(SPARK_JOB)
    orders, events = f"s3://{BUCKET}/teamA/warehouse/orders", f"s3://{BUCKET}/teamB/lake/events"
    env = jvm.env({
        **properties_env(agent, tmp_path),
        "HADOOP_USER_NAME": "analyst",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": python,
        "PYSPARK_SUBMIT_ARGS": f"--driver-class-path {classpath} pyspark-shell",
    })
    admin = moto.admin
    run = subprocess.run([python, str(job), recorder.endpoint, admin["access_key_id"], admin["secret_access_key"],
                          str(tmp_path / "catalog.db"), orders, events],
                         capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    (tmp_path / "spark.stderr").write_text(run.stderr)
    result = next((line for line in run.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert run.returncode == 0 and result, f"Spark job failed:\n{run.stdout}\n{run.stderr[-8000:]}"
    assert json.loads(result[len("RESULT "):]) == {"events": ["APPLE", "PEAR", "PLUM"], "orders": 3,
                                                   "user": "analyst"}

    wrong = wrongly_signed(moto, agent, recorder)
    assert not wrong, "requests signed with the wrong credentials:\n" + "\n".join(wrong)
    requests = recorder.snapshot()
    for location in (orders, events):
        key = location[len(f"s3://{BUCKET}/"):]
        for method in ("PUT", "GET"):
            parts = {r.key[len(key) + 1:].split("/")[0] for r in requests
                     if r.method == method and r.key.startswith(key + "/")}
            assert parts == {"data", "metadata"}, (location, method, [str(r) for r in requests])
    for prefix in (f"s3://{BUCKET}/teamA/", f"s3://{BUCKET}/teamB/"):
        asked_for = asked(agent, prefix)
        assert asked_for and {(u, a) for _, u, a in asked_for} == {("analyst", True)}, asked_for
