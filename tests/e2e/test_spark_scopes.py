"""A Spark job reads teamA/ and writes teamB/ of one bucket, each S3 request with its prefix's role (issue 12).

pyspark 3.5.9 from PyPI (Hadoop 3.3.4) with hadoop-aws 3.3.4 and the AWS SDK for Java v1 modules it was built
with (tests/java/runtimes/spark-3.5), S3A wired as on EMR up to 7.9: the bucket-level provider plus
RoleAgentRequestHandler, its settings in core-site.xml (HADOOP_CONF_DIR). The recording proxy in front of moto's
S3 (helpers/s3_recorder.py) shows which key signed each request; the agent's audit log says whose key it is.
"""

import json
import os
import pwd
import subprocess

import pytest

from helpers import jvm
from helpers.s3_recorder import S3Recorder
from test_s3a_scopes import BUCKET, expected_role, keys_by_role, mappings

pytestmark = pytest.mark.moto(
    roles=[{"name": "team-a", "bucket": BUCKET}, {"name": "team-b", "bucket": BUCKET}], enforce_iam=False
)

JOB = r"""
import json, sys
from pyspark.sql import SparkSession

spark = (SparkSession.builder.master("local[2]").appName("emrfs-role-agent-scopes")
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2")
         .getOrCreate())
source, target = sys.argv[1], sys.argv[2]
lines = spark.read.text(source)
lines.selectExpr("upper(value) AS value").write.mode("overwrite").text(target)
back = spark.read.text(target)
print("RESULT " + json.dumps({"rows": back.count(), "user": spark.sparkContext.sparkUser()}))
spark.stop()
"""

HADOOP_USER = "analyst"


@pytest.fixture(scope="module")
def spark_python():
    return jvm.spark_python()


def test_spark_job_reads_team_a_writes_team_b_each_request_signed_by_its_prefix_role(
        java_build, spark_python, moto, agent_factory, tmp_path):
    agent = agent_factory(mappings=mappings(moto),
                          config={"identity": {"trusted_proxy_users": [pwd.getpwuid(os.getuid()).pw_name]}})
    recorder = S3Recorder(moto.endpoint)
    try:
        s3 = moto.client("s3")
        for i in range(3):
            s3.put_object(Bucket=BUCKET, Key=f"teamA/input/part-{i}.txt", Body=f"line {i} of team A\n".encode())
        conf_dir = tmp_path / "hadoop-conf"
        jvm.write_site(str(conf_dir), jvm.s3a_site(recorder.endpoint, agent, jvm.SDK_V1_SETTINGS))
        classpath = jvm.spark_classpath(java_build)
        job = tmp_path / "job.py"
        job.write_text(JOB)
        env = jvm.env({
            "HADOOP_USER_NAME": HADOOP_USER,
            "HADOOP_CONF_DIR": str(conf_dir),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": spark_python,
            "PYSPARK_SUBMIT_ARGS": f"--driver-class-path {classpath} pyspark-shell",
        })
        run = subprocess.run([spark_python, str(job), f"s3a://{BUCKET}/teamA/input/", f"s3a://{BUCKET}/teamB/out"],
                             capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
        result = next((line for line in run.stdout.splitlines() if line.startswith("RESULT ")), None)
        assert run.returncode == 0 and result, f"Spark job failed:\n{run.stdout}\n{run.stderr[-8000:]}"
        assert json.loads(result[len("RESULT "):]) == {"rows": 3, "user": HADOOP_USER}

        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="teamB/out/").get("Contents", [])]
        assert "teamB/out/_SUCCESS" in keys, keys

        roles = keys_by_role(agent)
        requests = recorder.snapshot()
        wrong = [f"{r}: signed by {roles.get(r.access_key_id, 'a key the agent never handed out')}"
                 for r in requests if roles.get(r.access_key_id, "?") != expected_role(moto, r.location)]
        assert not wrong, "requests signed with the wrong credentials:\n" + "\n".join(wrong)
        by_role = {expected_role(moto, r.location) for r in requests}
        assert moto.role("team-a")["arn"] in by_role and moto.role("team-b")["arn"] in by_role, by_role
        for rec in agent.audit_records():
            if rec.get("event") == "credentials":
                assert rec["user"] == HADOOP_USER, rec
    finally:
        recorder.stop()
