"""The audit log shipped to S3 (SPEC §7.3), as the tests read it back.

    config = ship_config(proxy.endpoint, "s3://audit-archive/emrfs-role-agent/", max_segment="4KiB")
    agent = agent_factory(mappings=[...], config=config)
    archive = Archive(moto, "audit-archive", "emrfs-role-agent/")
    shipped = archive.segments()      # every .jsonl.gz with its digest, each checked against the other
    records = archive.records()       # every shipped record, in seq order, each exactly once (checked)
    archive.download(directory)       # the objects as files, keeping the cluster_id=/instance_id=/dt= layout
    metric(agent, "emrfs_role_agent_audit_ship_backlog_bytes")
    verify(moto, "s3://audit-archive/emrfs-role-agent/")   # `emrfs-role-agent audit verify` over it
    grant_shipping(moto, "s3://audit-archive/emrfs-role-agent/")  # the docs' IAM statement for the agent's keys

On a machine that is not an EMR node the agent finds neither /mnt/var/lib/info/job-flow.json nor
/var/lib/cloud/data/instance-id: every object lands under cluster_id=unknown/instance_id=unknown/.
"""

import gzip
import hashlib
import json
import os
import re
import subprocess

from .agent import agent_binary, merge

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
NODE = "cluster_id=unknown/instance_id=unknown/"
# docs/auditing.md's IAM statement for shipping names this bucket and prefix.
DOC_BUCKET_URI = "s3://ops-audit/emrfs-role-agent/"
ZERO_CHAIN = "0" * 64
_KEY = re.compile(
    r"^(?P<node>cluster_id=(?P<cluster>[^/]+)/instance_id=(?P<instance>[^/]+)/)dt=(?P<dt>\d{4}-\d\d-\d\d)/"
    r"(?P<name>(?P<time>\d{8}T\d{6}\.\d{3}Z)-(?P<seq>\d+)\.jsonl)\.gz$"
)
_CHAIN_TAIL = re.compile(r',"chain":"([0-9a-f]{64})"\}$')
DIGEST_KEYS = {"v", "object", "cluster_id", "instance_id", "first_seq", "last_seq", "count", "first_time",
               "last_time", "last_chain", "sha256"}
# What SPEC §7.3 itself names (every test relies on these); DIGEST_KEYS is the full shape (test_audit_ship pins it).
DIGEST_CORE = {"object", "first_seq", "last_seq", "count", "last_chain", "sha256"}


def ship_config(endpoint, bucket_uri, interval="1s", max_segment="4KiB", max_backlog="1GiB", **audit):
    """The agent config's [audit] with shipping to `bucket_uri` through `endpoint` (sync durability)."""
    return {"audit": merge({"durability": "sync", "ship": {
        "bucket": bucket_uri, "endpoint_url": endpoint, "interval": interval, "max_segment": max_segment,
        "max_backlog": max_backlog}}, audit)}


def doc_iam_policy(bucket_uri):
    """The instance-profile statement docs/auditing.md gives for shipping (the ```json block after the
    `<!-- ship-iam-policy -->` marker), for `bucket_uri` instead of the doc's example."""
    with open(os.path.join(REPO, "docs", "auditing.md")) as f:
        text = f.read()
    m = re.search(r"<!-- ship-iam-policy -->\s*```json\n(.*?)```", text, re.S)
    assert m, "docs/auditing.md: no ```json block after <!-- ship-iam-policy -->"
    doc = DOC_BUCKET_URI[len("s3://"):]
    assert doc in m.group(1), f"the doc's statement does not name its example {DOC_BUCKET_URI}"
    return json.loads(m.group(1).replace(doc, bucket_uri[len("s3://"):]))


def grant_shipping(world, bucket_uri):
    """Gives the agent's source user (its "instance profile") the docs' statement for shipping to
    `bucket_uri`, and nothing else on S3: with moto's IAM enforcement on, a shipper that needs more fails."""
    world.client("iam").put_user_policy(UserName=world.user["name"], PolicyName="audit-shipping",
                                        PolicyDocument=json.dumps(doc_iam_policy(bucket_uri)))


def segments_dir(agent):
    """Where the agent keeps closed segments until they are shipped."""
    return agent.audit_path + ".segments"


def local_segments(agent):
    d = segments_dir(agent)
    return sorted(n for n in os.listdir(d) if not n.startswith(".")) if os.path.isdir(d) else []


def metric(agent, name):
    """The value of an unlabelled metric on the agent's /metrics (None when absent)."""
    text = agent.get("/metrics", token=False).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def segment_name(time):
    """`2026-12-02T19:47:24.123Z` -> `20261202T194724.123Z`: the first time in a segment's name."""
    return re.sub(r"[-:]", "", time)


def chain_of(prev_chain, line):
    """SPEC §7.2: hex sha256 of the previous chain (hex ASCII) and the line without its chain key."""
    m = _CHAIN_TAIL.search(line)
    assert m, f"no chain at the end of {line[:120]}…"
    return hashlib.sha256(prev_chain.encode() + (line[: m.start()] + "}").encode()).hexdigest()


class Segment:
    """One shipped segment: its key, its gzip bytes, its lines, and its digest object."""

    def __init__(self, key, node, dt, name, data, digest):
        self.key, self.node, self.dt, self.name, self.data, self.digest = key, node, dt, name, data, digest
        self.lines = gzip.decompress(data).decode().splitlines()
        self.records = [json.loads(line) for line in self.lines]

    def __repr__(self):
        return f"<segment {self.key}: seq {self.records[0]['seq']}..{self.records[-1]['seq']}>"


class Archive:
    """What the agents shipped under s3://bucket/prefix, read straight from moto (not through the proxy)."""

    def __init__(self, world, bucket, prefix=""):
        self.world, self.bucket, self.prefix = world, bucket, prefix
        self.s3 = world.client("s3")

    @property
    def uri(self):
        return f"s3://{self.bucket}/{self.prefix}"

    def keys(self):
        out, token = [], None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": self.prefix}
            if token:
                kw["ContinuationToken"] = token
            page = self.s3.list_objects_v2(**kw)
            out += [o["Key"] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                return sorted(out)

    def get(self, key):
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key, data):
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def delete(self, key):
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def segment_keys(self):
        return [k for k in self.keys() if k.endswith(".jsonl.gz")]

    def segments(self):
        """Every shipped segment, in seq order, each checked against its name and its digest object."""
        keys = self.keys()
        assert all(k.endswith((".jsonl.gz", ".digest.json")) for k in keys), keys
        segments = []
        for key in keys:
            if not key.endswith(".jsonl.gz"):
                continue
            rel = key[len(self.prefix):]
            m = _KEY.match(rel)
            assert m, f"{key}: not <prefix>cluster_id=…/instance_id=…/dt=YYYY-MM-DD/<first time>-<first seq>.jsonl.gz"
            digest_key = key[: -len(".jsonl.gz")] + ".digest.json"
            assert digest_key in keys, f"{key} has no digest object {digest_key}"
            data = self.get(key)
            digest = json.loads(self.get(digest_key))
            seg = Segment(key, m["node"], m["dt"], m["name"], data, digest)
            first, last = seg.records[0], seg.records[-1]
            # The name: first record's time and seq; the partition: its date.
            assert (m["time"], int(m["seq"])) == (segment_name(first["time"]), first["seq"]), (key, first)
            assert m["dt"] == first["time"][:10], (key, first["time"])
            # Deterministic gzip: no time stamp in the header (a re-upload has the same bytes).
            assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0", f"{key}: gzip header has an mtime"
            assert DIGEST_CORE <= set(digest), (digest_key, sorted(DIGEST_CORE - set(digest)))
            expected = {
                "v": 1, "object": key, "cluster_id": m["cluster"], "instance_id": m["instance"],
                "first_seq": first["seq"], "last_seq": last["seq"], "count": len(seg.records),
                "first_time": first["time"], "last_time": last["time"], "last_chain": last["chain"],
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            # (Fields it lacks are pinned by test_audit_ship's digest test, not here.)
            present = {k: v for k, v in expected.items() if k in digest}
            assert {k: digest[k] for k in present} == present, (digest_key, digest, expected)
            segments.append(seg)
        for key in keys:
            if key.endswith(".digest.json"):
                assert key[: -len(".digest.json")] + ".jsonl.gz" in keys, f"{key}: a digest without its segment"
        segments.sort(key=lambda s: s.records[0]["seq"])
        return segments

    def records(self, segments=None):
        """Every shipped record in seq order, after checking that seq runs 1, 2, … through the segments
        with no gap and no record twice, that each line's chain follows from the one before (SPEC §7.2),
        each digest's prev_chain (where it has one) is the chain before its segment, and each segment after the first opens
        with prev_file naming the segment before it."""
        segments = self.segments() if segments is None else segments
        out, prev_chain, prev_name = [], ZERO_CHAIN, None
        for seg in segments:
            if "prev_chain" in seg.digest:
                assert seg.digest["prev_chain"] == prev_chain, (seg.key, seg.digest["prev_chain"], prev_chain)
            if prev_name is not None:
                assert seg.records[0].get("prev_file") == prev_name, (seg.key, seg.records[0], prev_name)
            for line, record in zip(seg.lines, seg.records):
                assert record["seq"] == len(out) + 1, (
                    f"{seg.key}: seq {record['seq']} where {len(out) + 1} was due "
                    f"({'a record twice' if record['seq'] <= len(out) else 'records missing'})")
                assert list(record)[0] == "seq" and list(record)[-1] == "chain", line
                assert record["chain"] == chain_of(prev_chain, line), f"{seg.key}: chain broken at seq {record['seq']}"
                prev_chain = record["chain"]
                out.append(record)
            prev_name = seg.name
        return out

    def download(self, directory):
        """Every shipped object as a file under `directory`, at its key below the prefix (the
        cluster_id=/instance_id=/dt= layout kept); returns the paths of the .jsonl.gz files."""
        paths = []
        for key in self.keys():
            path = os.path.join(directory, key[len(self.prefix):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(self.get(key))
            if key.endswith(".jsonl.gz"):
                paths.append(path)
        return paths


def left_on_disk(agent):
    """What the agent left in its audit file and segments directory: file name -> (records, first seq, last seq)."""
    out = {}
    paths = [agent.audit_path] + [os.path.join(segments_dir(agent), n) for n in local_segments(agent)]
    for path in paths:
        if os.path.exists(path):
            with open(path) as f:
                lines = [json.loads(line) for line in f if line.strip()]
            if lines:
                out[os.path.basename(path)] = (len(lines), lines[0].get("seq"), lines[-1].get("seq"))
    return out


def check_everything_shipped(records, request_ids, stopped=True, agent=None):
    """The shipped records hold every credentials request answered (by X-Request-Id) and, once the agent
    stopped cleanly, end with its `stop` record: nothing the agent wrote is missing. With `agent`, a
    failure says what it left on disk."""
    where = ""
    if agent is not None:
        log = "\n".join(agent.stderr_text().splitlines()[-15:])
        where = f"; left on disk: {left_on_disk(agent)}; the agent's log ends:\n{log}"
    recorded = {r.get("request_id") for r in records if r["event"] == "credentials"}
    missing = [rid for rid in request_ids if rid not in recorded]
    assert not missing, f"{len(missing)} answered request(s) not shipped, e.g. {missing[:3]}{where}"
    assert records[0]["event"] == "start", records[0]
    if stopped:
        assert records[-1]["event"] == "stop", f"the last record shipped is {records[-1]}{where}"


def s3_env(world, endpoint=None, credentials=None):
    """Environment for `audit verify s3://…`: keys (the admin's unless given), region, the S3 endpoint."""
    keys = credentials or world.admin
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": keys["access_key_id"], "AWS_SECRET_ACCESS_KEY": keys["secret_access_key"],
        "AWS_REGION": world.region, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_S3": endpoint or world.endpoint,
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    })
    return env


def verify(world, *targets, endpoint=None, timeout=120):
    """`emrfs-role-agent audit verify TARGET...`; the CompletedProcess."""
    return subprocess.run([agent_binary(), "audit", "verify", *targets], capture_output=True, text=True,
                          env=s3_env(world, endpoint), timeout=timeout)
