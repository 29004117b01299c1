"""docs/auditing.md, "Querying the fleet", run as written (issue 21): the table and the questions security teams
ask, over audit records an agent really shipped, with Spark SQL (a distributed engine, not a script over one file).

The agent answers a known set of requests (users asserted through a trusted proxy, an allow rule per bucket, a
deny rule, the deny fallback, a wrong token) and ships its log to moto's S3 (helpers/audit_ship.py). The shipped
objects are downloaded into a directory that keeps their cluster_id=/instance_id=/dt= layout, digests included
(Athena reads every object under a partition, and so does Spark here). One extra segment, 40 days old, stands for
an older day of the archive: no "last 7 days" (or 30 days) question may see it.

The table: the doc's CREATE EXTERNAL TABLE (```sql block after `<!-- table: emrfs_role_agent_audit -->`) gives
the columns, their types and the partition columns; Spark reads the directory with exactly that schema (partition
columns as strings, as the Athena table declares them) and registers it as `emrfs_role_agent_audit`. Every shipped
record must come back through it unchanged: a column typed wrongly for what the agent writes reads as null and
fails here. `cloudtrail_logs` is a small table in CloudTrail's record shape (useridentity.accesskeyid, eventname,
eventtime, requestparameters) holding events for the access key ids this test received, and one key it did not.

The queries: every ```sql block after a `<!-- query: NAME -->` marker, run unchanged except for the doc's
example values, replaced textually by the test's (EXAMPLES below; each must occur in the query that uses it, so a
doc that renames its example breaks the test instead of silently matching nothing).
"""

import datetime
import gzip
import json
import os
import pwd
import re
import subprocess

import pytest

from helpers import jvm
from helpers.audit_ship import (Archive, check_everything_shipped, grant_shipping, local_segments, segment_name,
                                ship_config)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(REPO, "docs", "auditing.md")
BUCKET = "audit-archive"
PREFIX = "emrfs-role-agent/"
TABLE = "emrfs_role_agent_audit"
QUERIES = {"who-got-role", "touched-prefix", "denials", "cloudtrail"}
# The doc's example values (SQL literals) -> what stands in for them here (filled in per test).
DOC_ROLE = "'arn:aws:iam::222222222222:role/partner-writer'"
DOC_PREFIX = "'s3://partner-bucket/exports/%'"
UNRELATED_KEY = "ASIAUNRELATED0000000"

pytestmark = pytest.mark.moto(buckets=[BUCKET])

JOB = r"""
import json, sys
from pyspark.sql import SparkSession

job = json.load(open(sys.argv[1]))
spark = (SparkSession.builder.master("local[2]").appName("emrfs-role-agent-audit-queries")
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2")
         .config("spark.sql.session.timeZone", "UTC")
         # The Athena table declares its partition columns as strings: so do we.
         .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
audit = spark.read.schema(job["schema"]).json(job["data"])
audit.createOrReplaceTempView(job["table"])
cloudtrail = spark.read.schema(job["cloudtrail_schema"]).json(job["cloudtrail"])
cloudtrail.createOrReplaceTempView("cloudtrail_logs")
out = {"rows": [json.loads(r) for r in audit.toJSON().collect()], "queries": {}}
for name, sql in job["queries"].items():
    out["queries"][name] = [r.asDict(recursive=True) for r in spark.sql(sql.rstrip().rstrip(";")).collect()]
print("RESULT " + json.dumps(out, default=str))
spark.stop()
"""

CLOUDTRAIL_SCHEMA = ("eventversion string, useridentity struct<type:string, principalid:string, arn:string, "
                     "accountid:string, accesskeyid:string>, eventtime string, eventsource string, eventname string, "
                     "awsregion string, requestparameters string, requestid string, eventid string")


def doc_blocks():
    """{marker: sql} for every ```sql block after `<!-- table: … -->` or `<!-- query: … -->` in the doc."""
    with open(DOC) as f:
        text = f.read()
    found = {}
    for kind, name, sql in re.findall(r"<!-- (table|query): ([\w-]+) -->\n```sql\n(.*?)```", text, re.S):
        key = f"{kind}:{name}"
        assert key not in found, f"docs/auditing.md: two blocks marked {key}"
        found[key] = sql
    return found


def table_schema(ddl):
    """The Spark schema (DDL string) of the doc's CREATE EXTERNAL TABLE: its columns, then its partition
    columns; and the list of column names."""
    m = re.search(rf"CREATE EXTERNAL TABLE {TABLE} \((.*?)\)\s*PARTITIONED BY \((.*?)\)", ddl, re.S)
    assert m, "the table block is not CREATE EXTERNAL TABLE … (…) PARTITIONED BY (…)"
    columns = "\n".join(line.split("--")[0] for line in m.group(1).splitlines()).strip().rstrip(",")
    schema = f"{columns}, {m.group(2).strip()}"
    names = [c.strip().split()[0].strip("`") for c in re.split(r",(?![^<]*>)", schema) if c.strip()]
    return schema, names


def test_the_doc_marks_its_table_and_every_question():
    blocks = doc_blocks()
    assert set(blocks) == {f"table:{TABLE}"} | {f"query:{q}" for q in QUERIES}, sorted(blocks)
    ddl = blocks[f"table:{TABLE}"]
    _, names = table_schema(ddl)
    # Every field of a credentials record (SPEC §7) and the chain (SPEC §7.2) is a column, and the partitions
    # are the path's keys, injected and date-projected as the layout is.
    from test_audit import CREDENTIAL_FIELDS

    assert CREDENTIAL_FIELDS | {"seq", "prev_file", "chain"} <= set(names), sorted(
        (CREDENTIAL_FIELDS | {"seq", "prev_file", "chain"}) - set(names))
    assert names[-3:] == ["cluster_id", "instance_id", "dt"]
    assert len(names) == len(set(names)), names
    for prop in ("'projection.cluster_id.type' = 'injected'", "'projection.instance_id.type' = 'injected'",
                 "'projection.dt.type' = 'date'", "'projection.dt.format' = 'yyyy-MM-dd'",
                 "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'",
                 "cluster_id=${cluster_id}/instance_id=${instance_id}/dt=${dt}/"):
        assert prop in ddl, prop


@pytest.fixture(scope="module")
def spark_python():
    return jvm.pyspark_python()


def ask(agent, location, user, access=None):
    params = {"location": location, "user": user}
    if access:
        params["access"] = access
    return agent.get("/v1/credentials", params=params)


def old_segment(directory, records_like, days_ago=40):
    """A segment from an older day of the archive: copies of real records (an allow of the role under the
    prefix, a denial), their time and ids moved back `days_ago` days, under that day's partition."""
    day = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago)
    time = day.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    old = []
    for i, r in enumerate(records_like):
        r = dict(r, time=time, seq=100000 + i, request_id=f"old-{i}", user=f"old-{r['user']}")
        if r.get("access_key_id"):
            r["access_key_id"] = "ASIAOLD0000000000000"
        old.append(r)
    path = os.path.join(directory, f"cluster_id=j-OLDCLUSTER/instance_id=i-0old/dt={time[:10]}",
                        f"{segment_name(time)}-100000.jsonl.gz")
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(gzip.compress("".join(json.dumps(r) + "\n" for r in old).encode(), mtime=0))
    return old


def cloudtrail_events(handed):
    """Two S3 data events per access key handed out (key -> bucket), and one event of a key the agent
    never handed out."""
    events = []
    for n, (key, bucket) in enumerate(sorted(handed.items())):
        for i, name in enumerate(("GetObject", "PutObject")):
            events.append({
                "eventversion": "1.09",
                "useridentity": {"type": "AssumedRole", "principalid": f"AROA:{n}", "arn": f"arn:aws:sts::x:{n}",
                                 "accountid": "123456789012", "accesskeyid": key},
                "eventtime": f"2026-12-02T10:{n:02d}:{i:02d}Z", "eventsource": "s3.amazonaws.com",
                "eventname": name, "awsregion": "us-east-1",
                "requestparameters": json.dumps({"bucketName": bucket, "key": f"k{n}-{i}"}),
                "requestid": f"REQ{n}{i}", "eventid": f"ev-{n}-{i}",
            })
    events.append(dict(events[0], useridentity=dict(events[0]["useridentity"], accesskeyid=UNRELATED_KEY),
                       eventtime="2026-12-02T11:00:00Z", eventid="ev-unrelated"))
    return events


def test_the_docs_queries_answer_what_the_agent_shipped(moto, agent_factory, spark_python, tmp_path):
    analytics, engineering = moto.role("analytics"), moto.role("engineering")
    exports = f"s3://{analytics['bucket']}/exports/"
    me = pwd.getpwuid(os.getuid()).pw_name
    grant_shipping(moto, f"s3://{BUCKET}/{PREFIX}")
    config = ship_config(moto.endpoint, f"s3://{BUCKET}/{PREFIX}", max_segment="8KiB")
    config["identity"] = {"trusted_proxy_users": [me]}
    config["fallback"] = {"mode": "deny"}
    agent = agent_factory(mappings=[
        {"name": "no-secrets", "effect": "deny", "prefixes": [f"s3://{analytics['bucket']}/secret/"]},
        {"name": "analytics", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]},
        {"name": "engineering", "role": engineering["arn"], "prefixes": [f"s3://{engineering['bucket']}/"]},
    ], config=config)

    plan = ([("alice", f"{exports}part-{i}", "read") for i in range(4)]
            + [("bob", f"s3://{engineering['bucket']}/data/{i}", None) for i in range(2)]
            + [("bob", f"{exports}from-bob", "write")]
            + [("erin", f"s3://{analytics['bucket']}/elsewhere/x", None)]
            + [("carol", f"s3://{analytics['bucket']}/secret/{i}", None) for i in range(2)]
            + [("dave", "s3://nobody-bucket/x", None)])
    answers = []
    for user, location, access in plan:
        r = ask(agent, location, user, access)
        answers.append((user, location, access, r.status_code, r.json(), r.headers["X-Request-Id"]))
    assert [a[3] for a in answers] == [200] * 8 + [403] * 3, [(a[0], a[3], a[4]) for a in answers]
    assert agent.get("/v1/credentials", params={"location": exports}, token=False).status_code == 401
    assert agent.stop() == 0
    assert not local_segments(agent)

    archive = Archive(moto, BUCKET, PREFIX)
    records = archive.records()
    check_everything_shipped(records, [a[5] for a in answers])
    data = tmp_path / "archive"
    archive.download(str(data))
    by_request = {r["request_id"]: r for r in records if r["event"] == "credentials"}
    denial = next(r for r in records if r["event"] == "credentials" and r["outcome"] == "deny")
    allow = next(r for r in records if r["event"] == "credentials" and r["location"] == f"{exports}part-0")
    old = old_segment(str(data), [allow, denial])

    # Keys handed out (key -> the bucket it was asked for), and who got each.
    handed = {}
    for user, location, _, status, body, rid in answers:
        if status == 200:
            handed[body["AccessKeyId"]] = location[5:].split("/", 1)[0]
            assert by_request[rid]["access_key_id"] == body["AccessKeyId"]
    assert len(handed) == 4  # alice, bob (engineering), bob (analytics), erin: one session each
    events = cloudtrail_events(handed)
    cloudtrail = tmp_path / "cloudtrail"
    cloudtrail.mkdir()
    (cloudtrail / "events.json").write_text("".join(json.dumps(e) + "\n" for e in events))

    blocks = doc_blocks()
    schema, names = table_schema(blocks[f"table:{TABLE}"])
    examples = {DOC_ROLE: f"'{analytics['arn']}'", DOC_PREFIX: f"'{exports}%'"}
    queries = {}
    for name in QUERIES:
        sql = blocks[f"query:{name}"]
        for doc_value, value in examples.items():
            sql = sql.replace(doc_value, value)
        queries[name] = sql
    assert DOC_ROLE not in queries["who-got-role"] and examples[DOC_ROLE] in queries["who-got-role"]
    assert examples[DOC_PREFIX] in queries["touched-prefix"]
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"schema": schema, "data": str(data), "table": TABLE, "queries": queries,
                               "cloudtrail": str(cloudtrail), "cloudtrail_schema": CLOUDTRAIL_SCHEMA}))
    script = tmp_path / "queries.py"
    script.write_text(JOB)
    env = jvm.env({"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": spark_python})
    run = subprocess.run([spark_python, str(script), str(job)], capture_output=True, text=True, env=env,
                         timeout=600, cwd=tmp_path)
    result = next((line for line in run.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert run.returncode == 0 and result, f"Spark failed:\n{run.stdout[-4000:]}\n{run.stderr[-8000:]}"
    result = json.loads(result[len("RESULT "):])

    # The table: every record shipped (and the old ones) comes back with every field the agent wrote, each
    # in a column of the doc's type; the digest objects beside the segments read as rows without an event.
    rows = result["rows"]
    events_read = [r for r in rows if r.get("event")]
    assert len(events_read) == len(records) + len(old), (len(events_read), len(records), len(old))
    assert len([r for r in rows if not r.get("event")]) == len(archive.segment_keys())
    read_back = {r["seq"]: r for r in events_read}
    for record in records + old:
        row = read_back[record["seq"]]
        unmapped = set(record) - set(names)
        assert not unmapped, f"{record['event']} record fields with no column in the doc's table: {unmapped}"
        differs = {k: (v, row.get(k)) for k, v in record.items() if row.get(k) != v}
        assert not differs, f"{record['event']} record read back differently (written, read): {differs}"
        if record in old:
            assert (row["cluster_id"], row["instance_id"]) == ("j-OLDCLUSTER", "i-0old"), row
        else:
            assert (row["cluster_id"], row["instance_id"], row["dt"]) == ("unknown", "unknown", record["time"][:10])

    answers_of = result["queries"]
    # Who obtained the analytics role in the last 7 days, and on which nodes.
    got = {(r["user"], r["cluster_id"], r["instance_id"], r["requests"]) for r in answers_of["who-got-role"]}
    assert got == {("alice", "unknown", "unknown", 4), ("bob", "unknown", "unknown", 1),
                   ("erin", "unknown", "unknown", 1)}, answers_of["who-got-role"]
    for r in answers_of["who-got-role"]:
        times = sorted(by_request[a[5]]["time"] for a in answers if a[0] == r["user"] and a[3] == 200
                       and by_request[a[5]]["role_arn"] == analytics["arn"])
        assert (r["first_seen"], r["last_seen"]) == (times[0], times[-1]), r

    # Which users asked for the exports/ prefix, with what outcome and access.
    touched = {(r["user"], r["outcome"], r["access"], r["requests"]) for r in answers_of["touched-prefix"]}
    assert touched == {("alice", "allow", "read", 4), ("bob", "allow", "write", 1)}, answers_of["touched-prefix"]

    # Every denial in the last 7 days, in time order, and why.
    denials = answers_of["denials"]
    assert [(r["user"], r["rule_name"], r["error_code"]) for r in denials] == [
        ("carol", "no-secrets", "AccessDenied"), ("carol", "no-secrets", "AccessDenied"),
        ("dave", None, "AccessDenied")], denials
    assert [r["time"] for r in denials] == sorted(r["time"] for r in denials)
    assert all(r["caller_user"] == me and r["cluster_id"] == "unknown" for r in denials), denials

    # Every credential joined to CloudTrail by its access key id: each event named by who got the key.
    owner = {}
    for user, location, _, status, body, _ in answers:
        if status == 200:
            role = analytics["arn"] if location.startswith(f"s3://{analytics['bucket']}/") else engineering["arn"]
            owner[body["AccessKeyId"]] = (user, role)
    expected = {(*owner[e["useridentity"]["accesskeyid"]], e["useridentity"]["accesskeyid"], e["eventname"],
                 e["eventtime"]) for e in events if e["useridentity"]["accesskeyid"] in owner}
    joined = answers_of["cloudtrail"]
    assert len(joined) == len(expected) == 8, joined  # one row per event: DISTINCT keeps cache hits out
    assert {(r["user"], r["role_arn"], r["access_key_id"], r["eventname"], r["eventtime"]) for r in joined} == expected
    assert all(r["cluster_id"] == "unknown" and json.loads(r["requestparameters"])["bucketName"] for r in joined)
    assert [r["eventtime"] for r in joined] == sorted(r["eventtime"] for r in joined)
