"""The bootstrap wires S3A's per-request credentials for the AWS SDK the node's Hadoop uses (issue 12).

EMR up to 7.9 (Hadoop 3.3.x, AWS SDK for Java v1): the v1 provider plus RoleAgentRequestHandler; EMR 7.10 and
later (Hadoop 3.4.x, SDK v2, S3A also behind s3://): the v2 provider plus RoleAgentExecutionInterceptor. The
release comes from EMR's extraInstanceData.json, else from the installed hadoop-aws jar. Run with --root.
"""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "bootstrap"))
import emr_conf  # noqa: E402

V1 = {
    "fs.s3a.aws.credentials.provider": "io.emrfsroleagent.emrfs.RoleAgentCredentialsProvider",
    "fs.s3a.audit.enabled": "true",
    "fs.s3a.audit.request.handlers": "io.emrfsroleagent.emrfs.RoleAgentRequestHandler",
}
V2 = {
    "fs.s3a.aws.credentials.provider": "io.emrfsroleagent.sdk2.RoleAgentAwsCredentialsProvider",
    "fs.s3a.audit.enabled": "true",
    "fs.s3a.audit.execution.interceptors": "io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor",
}


@pytest.mark.parametrize("label,sdk", [
    ("emr-6.9.0", "v1"), ("emr-6.15.0", "v1"), ("emr-7.0.0", "v1"), ("emr-7.9.0", "v1"),
    ("emr-7.10.0", "v2"), ("emr-7.12.1", "v2"), ("emr-8.0.0", "v2"), ("not-a-release", None),
])
def test_sdk_by_release(label, sdk):
    assert emr_conf.s3a_sdk_for_release(label) == sdk


def test_detect_from_release_label_then_hadoop_aws_jar(tmp_path):
    assert emr_conf.detect_s3a_sdk(str(tmp_path))[0] == "v1"
    jars = tmp_path / "usr/lib/hadoop"
    jars.mkdir(parents=True)
    (jars / "hadoop-aws-3.4.1-amzn-2.jar").write_bytes(b"")
    assert emr_conf.detect_s3a_sdk(str(tmp_path)) == ("v2", str(jars / "hadoop-aws-3.4.1-amzn-2.jar"))
    info = tmp_path / "mnt/var/lib/info/extraInstanceData.json"
    info.parent.mkdir(parents=True)
    info.write_text(json.dumps({"releaseLabel": "emr-7.9.0"}))
    sdk, reason = emr_conf.detect_s3a_sdk(str(tmp_path))
    assert sdk == "v1" and "emr-7.9.0" in reason


def test_emr_configurations_files_match_the_wiring():
    with open(os.path.join(REPO, "config", "emr-configurations.json")) as f:
        assert json.load(f) == emr_conf.emr_configurations(s3a_sdk="v1")
    with open(os.path.join(REPO, "config", "emr-configurations-emr-7.10.json")) as f:
        assert json.load(f) == emr_conf.emr_configurations(s3a_sdk="v2")


def props(path):
    out = {}
    for p in ET.parse(path).getroot().findall("property"):
        out[p.findtext("name")] = p.findtext("value")
    return out


@pytest.mark.parametrize("label,expected", [("emr-7.9.0", V1), ("emr-7.10.0", V2)])
def test_wire_clients_root_mode_by_release(tmp_path, label, expected):
    root = tmp_path / "node"
    files = {
        "etc/spark/conf/spark-defaults.conf": "spark.master yarn\n",
        "etc/hadoop/conf/core-site.xml": "<?xml version=\"1.0\"?>\n<configuration>\n"
        "  <property><name>fs.defaultFS</name><value>hdfs://ip-10-0-0-1:8020</value></property>\n</configuration>\n",
        "usr/share/aws/emr/emrfs/conf/emrfs-site.xml": "<configuration>\n</configuration>\n",
        "usr/share/aws/emr/emrfs/auxlib/emrfs-role-agent-provider.jar": "",
        "mnt/var/lib/info/extraInstanceData.json": json.dumps({"releaseLabel": label}),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for _ in range(2):  # the second run changes nothing
        out = subprocess.run([os.path.join(REPO, "bootstrap", "wire-clients.sh"), "--root", str(root),
                              "--poll", "1", "--timeout", "30"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    assert "unchanged" in out.stderr and "changed " not in out.stderr.replace("unchanged", ""), out.stderr
    # Which SDK, and why, is logged (once: nothing changed between the passes).
    why = [line for line in out.stderr.splitlines() if "S3A uses the AWS SDK" in line]
    assert why == [f"wire-clients: S3A uses the AWS SDK for Java {'v2' if expected is V2 else 'v1'}: release {label} "
                   f"({root}/mnt/var/lib/info/extraInstanceData.json)"], out.stderr
    core = props(root / "etc/hadoop/conf/core-site.xml")
    for k, v in expected.items():
        assert core.get(k) == v, (k, core)
    other = V1 if expected is V2 else V2
    assert not (set(other) - set(expected)) & set(core), core
    assert core["fs.defaultFS"] == "hdfs://ip-10-0-0-1:8020"
    emrfs = props(root / "usr/share/aws/emr/emrfs/conf/emrfs-site.xml")
    assert emrfs["fs.s3.customAWSCredentialsProvider"] == "io.emrfsroleagent.emrfs.RoleAgentCredentialsProvider"


def test_wire_clients_logs_the_sdk_choice_once_per_change(tmp_path):
    # EMR installs Hadoop after the waiter starts: the choice changes once, and is logged once per change,
    # not on every pass.
    root = tmp_path / "node"
    for rel, text in {
        "etc/spark/conf/spark-defaults.conf": "spark.master yarn\n",
        "usr/share/aws/emr/emrfs/auxlib/emrfs-role-agent-provider.jar": "",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    p = subprocess.Popen([os.path.join(REPO, "bootstrap", "wire-clients.sh"), "--root", str(root), "--poll", "0.05",
                          "--timeout", "60"], stderr=subprocess.PIPE, text=True)
    lines, passes = [], 0
    try:
        for line in p.stderr:
            lines.append(line.rstrip("\n"))
            if "unchanged" in line:  # one per pass: spark-defaults is there, wired, and left alone
                passes += 1
                if passes == 3:
                    jars = root / "usr/lib/hadoop"
                    jars.mkdir(parents=True)
                    (jars / "hadoop-aws-3.4.1-amzn-2.jar").write_bytes(b"")
                if passes == 8:
                    for rel in ("etc/hadoop/conf/core-site.xml", "usr/share/aws/emr/emrfs/conf/emrfs-site.xml"):
                        (root / rel).parent.mkdir(parents=True, exist_ok=True)
                        (root / rel).write_text("<configuration>\n</configuration>\n")
        assert p.wait(30) == 0, lines
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    why = [line for line in lines if "S3A uses the AWS SDK" in line]
    jar = root / "usr/lib/hadoop/hadoop-aws-3.4.1-amzn-2.jar"
    assert why == [
        "wire-clients: S3A uses the AWS SDK for Java v1: no release label or hadoop-aws jar found",
        f"wire-clients: S3A uses the AWS SDK for Java v2: {jar}",
    ], lines
    assert "wire-clients: all clients wired" in lines
    assert props(root / "etc/hadoop/conf/core-site.xml")["fs.s3a.audit.execution.interceptors"] == V2[
        "fs.s3a.audit.execution.interceptors"]
