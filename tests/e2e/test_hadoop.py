"""Hadoop S3A and the AWS SDK for Java v1 get their credentials from the running agent (SPEC §9, §10).

Real Hadoop code (hadoop-aws 3.3.6 with the AWS SDK for Java v1 1.12.367 modules; for Spark, pyspark 3.5.9 with
hadoop-aws 3.3.4; all resolved by scripts/build-emrfs-provider.sh through Maven, see tests/java/runtimes) writes
to and reads from moto's S3 with credentials that the agent hands out, either through the bucket-level provider
class (clients/) or through the SDK's own container-credentials provider. moto's IAM enforcement rejects the
SDK v1's signatures (see test_s3a_scopes.py), so S3 runs without it and the audit log says which role each
request got. Per-request credentials: test_s3a_scopes.py and test_spark_scopes.py.

Java drivers (tests/java): io.emrfsroleagent.e2e.S3aRoundTrip (write + read back through S3AFileSystem) and
io.emrfsroleagent.e2e.ProviderProbe (one provider instance driven from stdin). The provider against an in-process
fake agent: its unit tests (clients/src/test/java, RoleAgentCredentialsProviderTest), run by the build.
"""

import json
import os
import pwd
import subprocess
import time

import pytest

from helpers import jvm
from helpers.net import free_port

PROVIDER = "io.emrfsroleagent.emrfs.RoleAgentCredentialsProvider"
CONTAINER_PROVIDER = "com.amazonaws.auth.EC2ContainerCredentialsProviderWrapper"
PARTNER_BUCKET = "partner-bucket"
OWN_BUCKET = "own-bucket"
# The Hadoop user the jobs run as. Not the OS user of the JVM (as in a YARN container, where the OS user is
# `yarn`), so the agent must be told to trust the OS user as a proxy.
HADOOP_USER = "analyst-hadoop"
# The OS user the JVMs run as, as the kernel (and so the agent) sees it.
OS_USER = pwd.getpwuid(os.getuid()).pw_name

pytestmark = pytest.mark.moto(
    roles=[{"name": "partner", "bucket": PARTNER_BUCKET}], enforce_iam=False, buckets=[OWN_BUCKET]
)


@pytest.fixture(scope="module")
def java_build():
    """Builds the provider jar and the drivers (fast when the jar cache is warm); returns the build dir."""
    build = jvm.build()
    assert os.path.isfile(os.path.join(build, "emrfs-role-agent-provider.jar"))
    return build


def classpath(build):
    return jvm.classpath(build, "hadoop-3.3.6")


def java_cmd(build, main, args):
    return jvm.command(classpath(build), main, args)


def run_java(build, main, args, env=None, timeout=300):
    return jvm.run(classpath(build), main, args, env, timeout)


def s3a_conf(moto, **provider_conf):
    conf = {
        "fs.s3a.endpoint": moto.endpoint,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        # Fail fast instead of S3A's long default retry schedule when something is wrong.
        "fs.s3a.attempts.maximum": "2",
        "fs.s3a.retry.limit": "2",
    }
    conf.update(provider_conf)
    args = []
    for k, v in conf.items():
        args += ["--conf", f"{k}={v}"]
    return args


def provider_conf(agent, **extra):
    conf = {
        "fs.s3a.aws.credentials.provider": PROVIDER,
        "emrfs-role-agent.endpoint": agent.url,
        "emrfs-role-agent.token-file": agent.token_path,
    }
    conf.update(extra)
    return conf


def roundtrip(build, moto, conf, paths, env=None):
    out = run_java(build, "io.emrfsroleagent.e2e.S3aRoundTrip", s3a_conf(moto, **conf) + list(paths), env=env)
    return out


def assert_roundtrip_ok(out, paths):
    lines = out.stdout.splitlines()
    for p in paths:
        assert any(line.startswith(f"OK {p} ") for line in lines), (
            f"{p} not written and read back:\n{out.stdout}\n{out.stderr[-6000:]}"
        )
    assert out.returncode == 0, out.stdout + out.stderr[-6000:]


def read_object(moto, bucket, key):
    return moto.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def credential_records(agent):
    return [r for r in agent.audit_records() if r.get("event") == "credentials"]


def partner_mapping(moto):
    return {"name": "partner-exports", "role": moto.role("partner")["arn"], "prefixes": [f"s3a://{PARTNER_BUCKET}/"]}


def start_agent(agent_factory, moto, trusted_proxy=True, **kw):
    config = kw.pop("config", {})
    if trusted_proxy:
        config = {**config, "identity": {"trusted_proxy_users": [OS_USER]}}
    return agent_factory(mappings=[partner_mapping(moto)], config=config, **kw)


def test_s3a_with_provider_gets_partner_role_and_fallback(java_build, moto, agent_factory):
    agent = start_agent(agent_factory, moto)
    partner_path = f"s3a://{PARTNER_BUCKET}/exports/x.txt"
    own_path = f"s3a://{OWN_BUCKET}/y.txt"

    out = roundtrip(java_build, moto, provider_conf(agent), [partner_path, own_path],
                    env={"HADOOP_USER_NAME": HADOOP_USER})
    assert_roundtrip_ok(out, [partner_path, own_path])
    # What the JVM wrote is in moto's S3.
    assert read_object(moto, PARTNER_BUCKET, "exports/x.txt") == f"written by S3aRoundTrip to {partner_path}\n"
    assert read_object(moto, OWN_BUCKET, "y.txt") == f"written by S3aRoundTrip to {own_path}\n"

    records = credential_records(agent)
    partner = [r for r in records if r["location"] == f"s3://{PARTNER_BUCKET}/"]
    own = [r for r in records if r["location"] == f"s3://{OWN_BUCKET}/"]
    assert partner and own, f"expected records for both buckets, got {[r['location'] for r in records]}"
    assert len(partner) + len(own) == len(records), [r["location"] for r in records]
    for r in partner:
        assert r["outcome"] == "allow" and r["status"] == 200, r
        assert r["role_arn"] == moto.role("partner")["arn"], r
        assert r["rule_name"] == "partner-exports", r
        assert r["source"] in ("sts", "cache"), r
        assert r["access_key_id"].startswith("ASIA"), r
    for r in own:
        assert r["outcome"] == "allow" and r["status"] == 200, r
        assert r["source"] == "instance-profile", r
        assert r["role_arn"] is None and r["rule_index"] is None, r
        assert r["access_key_id"] == moto.user["access_key_id"], r
    for r in records:
        assert r["user"] == HADOOP_USER and r["asserted"] is True, r
        assert r["caller_user"] == OS_USER, r
    # One fetch per filesystem: the provider caches.
    assert len(partner) == 1 and len(own) == 1, [r["location"] for r in records]

    secrets = [moto.user["secret_access_key"]]
    assert not any(s in out.stdout + out.stderr for s in secrets), "the JVM printed a secret"
    agent.assert_no_secrets(secrets)


def test_s3a_provider_user_is_the_os_user_without_hadoop_user_name(java_build, moto, agent_factory):
    agent = start_agent(agent_factory, moto, trusted_proxy=False)
    path = f"s3a://{PARTNER_BUCKET}/plain/z.txt"
    out = roundtrip(java_build, moto, provider_conf(agent), [path])
    assert_roundtrip_ok(out, [path])
    (record,) = credential_records(agent)
    assert record["user"] == OS_USER and record["asserted"] is False, record
    assert record["role_arn"] == moto.role("partner")["arn"], record


def test_agent_error_reaches_the_job_with_code_and_message(java_build, moto, agent_factory):
    # The JVM's OS user is not a trusted proxy: asserting another Hadoop user is refused.
    agent = start_agent(agent_factory, moto, trusted_proxy=False)
    path = f"s3a://{PARTNER_BUCKET}/denied.txt"
    out = roundtrip(java_build, moto, provider_conf(agent), [path], env={"HADOOP_USER_NAME": HADOOP_USER})
    assert out.returncode != 0, out.stdout
    fail = next(line for line in out.stdout.splitlines() if line.startswith(f"FAIL {path}"))
    # The provider asks for the bucket root in the agent's form, s3:// (the agent treats s3a:// alike).
    assert f"emrfs-role-agent at {agent.url} refused credentials for s3://{PARTNER_BUCKET}/" in fail, fail
    assert f"(user {HADOOP_USER})" in fail, fail
    assert "HTTP 403 ImpersonationDenied" in fail, fail
    assert agent.token not in out.stdout + out.stderr
    (record,) = credential_records(agent)
    assert record["status"] == 403 and record["error_code"] == "ImpersonationDenied", record


@pytest.mark.parametrize("with_location", [False, True], ids=["no-location", "location-in-uri"])
def test_s3a_with_sdk_container_credentials_provider(java_build, moto, agent_factory, with_location):
    """No provider class: the SDK's EC2ContainerCredentialsProviderWrapper with the container env."""
    agent = start_agent(agent_factory, moto, trusted_proxy=False)
    env = agent.client_env(location=f"s3://{PARTNER_BUCKET}/" if with_location else None)
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:")
    path = f"s3a://{PARTNER_BUCKET}/container/{'loc' if with_location else 'noloc'}.txt"

    out = roundtrip(java_build, moto, {"fs.s3a.aws.credentials.provider": CONTAINER_PROVIDER}, [path], env=env)
    assert_roundtrip_ok(out, [path])
    assert read_object(moto, PARTNER_BUCKET, path.split("/", 3)[3]) == f"written by S3aRoundTrip to {path}\n"

    records = credential_records(agent)
    assert records, "the SDK never asked the agent"
    for r in records:
        assert r["outcome"] == "allow" and r["user"] == OS_USER and r["asserted"] is False, r
        if with_location:
            assert r["location"] == f"s3://{PARTNER_BUCKET}/", r
            assert r["role_arn"] == moto.role("partner")["arn"], r
        else:
            # Without a location only prefix-less rules could match: the fallback decides.
            assert r["location"] is None, r
            assert r["source"] == "instance-profile", r


def test_provider_agent_down_names_endpoint_and_recovers(java_build, moto, agent_factory):
    agent = start_agent(agent_factory, moto)
    port = agent.port
    probe = subprocess.Popen(
        java_cmd(java_build, "io.emrfsroleagent.e2e.ProviderProbe", [
            f"s3a://{PARTNER_BUCKET}/",
            "--conf", f"emrfs-role-agent.endpoint={agent.url}",
            "--conf", f"emrfs-role-agent.token-file={agent.token_path}",
            "--conf", "emrfs-role-agent.connect-timeout=2s",
        ]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=jvm.env({"HADOOP_USER_NAME": HADOOP_USER}),
    )

    def ask(command):
        probe.stdin.write(command + "\n")
        probe.stdin.flush()
        line = probe.stdout.readline()
        assert line, f"the probe exited ({probe.poll()})"
        return line.strip()

    try:
        first = ask("get")
        assert first.startswith("OK ASIA"), first

        assert agent.stop() == 0
        # Still-valid cached credentials are served while the agent is away.
        assert ask("get") == first
        assert ask("refresh") == "REFRESHED"
        down = ask("get")
        assert down.startswith("ERROR com.amazonaws.SdkClientException: "), down
        assert f"emrfs-role-agent at {agent.url} could not be reached" in down, down
        assert "Connection refused" in down, down
        assert agent.token not in down

        # The agent comes back on the same address with the same token: the same provider recovers.
        back = agent_factory(
            mappings=[partner_mapping(moto)],
            config={
                "server": {"listen": [f"127.0.0.1:{port}"], "token_file": agent.token_path},
                "identity": {"trusted_proxy_users": [OS_USER]},
            },
            token=agent.token,
        )
        recovered = ask("get")
        assert recovered.startswith("OK ASIA"), recovered
    finally:
        probe.stdin.close()
        try:
            probe.wait(30)
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.wait()

    (record,) = credential_records(back)
    assert record["user"] == HADOOP_USER and record["role_arn"] == moto.role("partner")["arn"], record


def test_s3a_job_fails_with_endpoint_when_agent_is_down(java_build, moto):
    port = free_port()  # nothing listens here
    endpoint = f"http://127.0.0.1:{port}"
    path = f"s3a://{OWN_BUCKET}/never.txt"
    started = time.monotonic()
    out = roundtrip(java_build, moto, {
        "fs.s3a.aws.credentials.provider": PROVIDER,
        "emrfs-role-agent.endpoint": endpoint,
        "emrfs-role-agent.token-file": "",
    }, [path])
    assert out.returncode != 0
    fail = next(line for line in out.stdout.splitlines() if line.startswith(f"FAIL {path}"))
    assert f"emrfs-role-agent at {endpoint} could not be reached" in fail, fail
    assert "Connection refused" in fail, fail
    assert time.monotonic() - started < 120, "S3A kept retrying a refused connection"


# ---- Spark ----

# The DataFrame is made in the JVM (spark.range), so nothing here depends on pickling Python objects.
SPARK_JOB = r"""
import json, os, sys
from pyspark.sql import SparkSession

spark = (SparkSession.builder.master("local[2]").appName("emrfs-role-agent-e2e")
         .config("spark.driver.extraClassPath", os.environ["JOB_CLASSPATH"])
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2")
         .config("spark.hadoop.fs.s3a.endpoint", os.environ["JOB_S3_ENDPOINT"])
         .config("spark.hadoop.fs.s3a.path.style.access", "true")
         .config("spark.hadoop.fs.s3a.connection.ssl.enabled", "false")
         .config("spark.hadoop.fs.s3a.aws.credentials.provider", "io.emrfsroleagent.emrfs.RoleAgentCredentialsProvider")
         .config("spark.hadoop.emrfs-role-agent.endpoint", os.environ["JOB_AGENT"])
         .config("spark.hadoop.emrfs-role-agent.token-file", os.environ["JOB_TOKEN_FILE"])
         .getOrCreate())
target = sys.argv[1]
df = spark.range(100).selectExpr("id", "concat('row-', id) AS name")
df.write.mode("overwrite").parquet(target)
back = spark.read.parquet(target)
print("RESULT " + json.dumps({"rows": back.count(), "sum": back.groupBy().sum("id").first()[0],
                             "user": spark.sparkContext.sparkUser()}))
spark.stop()
"""


def test_pyspark_local_job_writes_dataframe_through_agent(java_build, moto, agent_factory, tmp_path):
    spark_python = jvm.spark_python()
    agent = start_agent(agent_factory, moto)
    # Spark brings its own Hadoop client and logging; it needs hadoop-aws, the SDK and the provider.
    job_classpath = jvm.spark_classpath(java_build)
    job = tmp_path / "job.py"
    job.write_text(SPARK_JOB)
    target = f"s3a://{PARTNER_BUCKET}/spark/table"
    env = jvm.env({
        "HADOOP_USER_NAME": HADOOP_USER,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": spark_python,
        "JOB_CLASSPATH": job_classpath,
        "JOB_S3_ENDPOINT": moto.endpoint,
        "JOB_AGENT": agent.url,
        "JOB_TOKEN_FILE": agent.token_path,
    })
    run = subprocess.run([spark_python, str(job), target], capture_output=True, text=True, env=env,
                         timeout=600, cwd=tmp_path)
    result_line = next((line for line in run.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert run.returncode == 0 and result_line, f"Spark job failed:\n{run.stdout}\n{run.stderr[-8000:]}"
    result = json.loads(result_line[len("RESULT "):])
    assert result == {"rows": 100, "sum": sum(range(100)), "user": HADOOP_USER}, result

    keys = [o["Key"] for o in moto.client("s3").list_objects_v2(
        Bucket=PARTNER_BUCKET, Prefix="spark/table/").get("Contents", [])]
    assert "spark/table/_SUCCESS" in keys, keys
    assert any(k.endswith(".parquet") for k in keys), keys

    records = credential_records(agent)
    assert records, "Spark never asked the agent"
    for r in records:
        assert r["location"] == f"s3://{PARTNER_BUCKET}/", r
        assert r["role_arn"] == moto.role("partner")["arn"], r
        assert r["user"] == HADOOP_USER and r["outcome"] == "allow", r
