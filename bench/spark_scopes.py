"""Benchmark, not a test (issue 12): a Spark local job over 1,000 objects in 10 prefixes of one bucket, S3A
asking the agent per S3 request (bucket-level provider + RoleAgentRequestHandler) against the bucket-level
provider alone. Run by bench/jvm.sh through pytest, for the tests/e2e fixtures (moto, a running agent):

    PYTHONPATH=tests/e2e python -m pytest -p conftest bench/spark_scopes.py -q -s

Ten rules map p0/ .. p9/ to two roles (alternating), so the per-request side has ten scopes to ask for; with
the provider alone every request carries the bucket-level answer (the fallback: no rule names the bucket
root). Each run gets a fresh agent and a fresh JVM; the two sides alternate for SPARK_ROUNDS rounds (default
2). Per run, one line `SPARK {json}`: side, agent requests (its audit records), S3 requests (a recording
proxy in front of moto, as tests/e2e/test_spark_scopes.py does), the job's own time (read + count, in the
JVM) and the wall time of the whole pyspark process.
"""

import json
import os
import pwd
import subprocess
import time

import pytest

from helpers import jvm
from helpers.s3_recorder import S3Recorder

BUCKET = "bench-bucket"
PREFIXES = [f"p{i}/" for i in range(10)]
OBJECTS_PER_PREFIX = 100
ROUNDS = int(os.environ.get("SPARK_ROUNDS", "2"))
HADOOP_USER = "analyst"
BUCKET_LEVEL = {"fs.s3a.aws.credentials.provider": jvm.SDK_V1_SETTINGS["fs.s3a.aws.credentials.provider"]}
SIDES = {"per-request": jvm.SDK_V1_SETTINGS, "bucket-level": BUCKET_LEVEL}

pytestmark = pytest.mark.moto(
    roles=[{"name": "team-a", "bucket": BUCKET}, {"name": "team-b", "bucket": BUCKET}], enforce_iam=False
)

JOB = r"""
import json, sys, time
from pyspark.sql import SparkSession

spark = (SparkSession.builder.master("local[2]").appName("emrfs-role-agent-bench")
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.ui.enabled", "false")
         .getOrCreate())
started = time.monotonic()
rows = spark.read.text(sys.argv[1:]).count()
print("RESULT " + json.dumps({"rows": rows, "job_s": round(time.monotonic() - started, 3)}))
spark.stop()
"""


def mappings(moto):
    return [{"name": f"prefix-{i}", "role": moto.role("team-a" if i % 2 == 0 else "team-b")["arn"],
             "prefixes": [f"s3://{BUCKET}/{p}"]} for i, p in enumerate(PREFIXES)]


def test_spark_job_over_1000_objects_in_10_prefixes(moto, agent_factory, tmp_path):
    build = jvm.build()
    python = jvm.spark_python()
    s3 = moto.client("s3")
    for p in PREFIXES:
        for i in range(OBJECTS_PER_PREFIX):
            s3.put_object(Bucket=BUCKET, Key=f"{p}part-{i:04d}.txt", Body=f"{p} line {i}\n".encode())
    job = tmp_path / "job.py"
    job.write_text(JOB)
    for rnd in range(ROUNDS):
        for side, wiring in SIDES.items():
            agent = agent_factory(mappings=mappings(moto),
                                  config={"identity": {"trusted_proxy_users": [pwd.getpwuid(os.getuid()).pw_name]}})
            recorder = S3Recorder(moto.endpoint)
            try:
                conf_dir = tmp_path / f"conf-{side}-{rnd}"
                jvm.write_site(str(conf_dir), jvm.s3a_site(recorder.endpoint, agent, wiring))
                env = jvm.env({
                    "HADOOP_USER_NAME": HADOOP_USER,
                    "HADOOP_CONF_DIR": str(conf_dir),
                    "SPARK_LOCAL_IP": "127.0.0.1",
                    "PYSPARK_PYTHON": python,
                    "PYSPARK_SUBMIT_ARGS": f"--driver-class-path {jvm.spark_classpath(build)} pyspark-shell",
                })
                started = time.monotonic()
                run = subprocess.run([python, str(job), *[f"s3a://{BUCKET}/{p}" for p in PREFIXES]],
                                     capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
                wall = time.monotonic() - started
                result = next((line for line in run.stdout.splitlines() if line.startswith("RESULT ")), None)
                assert run.returncode == 0 and result, f"Spark job failed:\n{run.stdout}\n{run.stderr[-8000:]}"
                result = json.loads(result[len("RESULT "):])
                assert result["rows"] == len(PREFIXES) * OBJECTS_PER_PREFIX, result
                agent.stop()
                records = [r for r in agent.audit_records() if r.get("event") == "credentials"]
                requests = recorder.snapshot()
                print("SPARK " + json.dumps({
                    "side": side, "round": rnd + 1, "rows": result["rows"], "job_s": result["job_s"],
                    "wall_s": round(wall, 3), "agent_requests": len(records),
                    "agent_locations": sorted({r["location"] or "-" for r in records}),
                    "s3_requests": len(requests),
                    "s3_signing_keys": len({r.access_key_id for r in requests}),
                }), flush=True)
            finally:
                recorder.stop()
