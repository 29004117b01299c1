#!/usr/bin/env python3
"""Client settings for emrfs-role-agent on an EMR node, and the edits that apply them.

Used by wire-clients.sh once EMR has written the application configuration files. Every edit
is idempotent: a file that already carries the settings is not rewritten, so running it again
changes nothing. Runs on the python3 of Amazon Linux 2 (3.7) and 2023 (3.9): standard library
only.

    emr_conf.py settings [--port N] [--token-file PATH] [--s3a-sdk v1|v2] [--s3-via-s3a]
                                              # the settings, as EMR Configurations JSON
    emr_conf.py apply KIND FILE [--port N] [--token-file PATH] [--s3a-sdk v1|v2] [--s3-via-s3a]
                                              # KIND: spark-defaults, core-site, emrfs-site
    emr_conf.py s3a-sdk [--root DIR]          # which AWS SDK this node's S3A uses: prints v1 or v2
    emr_conf.py provisioned STATE_FILE        # exit 0 once EMR finished provisioning this node

S3A gets per-request credentials (prefix rules inside a bucket hold request by request) through the
AWS SDK its Hadoop uses: EMR releases up to 7.9 (Hadoop 3.3.x, SDK v1) get the v1 request handler, EMR 7.10 and
later (Hadoop 3.4.x, SDK v2; S3A also serves s3:// there) the v2 execution interceptor. EMRFS stays per bucket;
--s3-via-s3a makes S3A serve s3:// on the releases before 7.10 too (S3A_FOR_S3), as 7.10 does by default.

`apply` prints "changed FILE" or "unchanged FILE".
"""

import argparse
import json
import os
import re
import sys
import tempfile
import xml.etree.ElementTree as ET

DEFAULT_PORT = 9944
DEFAULT_TOKEN_FILE = "/etc/emrfs-role-agent/token"
PROVIDER_CLASS = "io.emrfsroleagent.emrfs.RoleAgentCredentialsProvider"
# S3A per request, by the SDK of the node's Hadoop.
S3A_CLASSES = {
    "v1": {
        "fs.s3a.aws.credentials.provider": PROVIDER_CLASS,
        "fs.s3a.audit.enabled": "true",
        "fs.s3a.audit.request.handlers": "io.emrfsroleagent.emrfs.RoleAgentRequestHandler",
    },
    "v2": {
        "fs.s3a.aws.credentials.provider": "io.emrfsroleagent.sdk2.RoleAgentAwsCredentialsProvider",
        "fs.s3a.audit.enabled": "true",
        "fs.s3a.audit.execution.interceptors": "io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor",
    },
}
# s3:// through S3A (--s3-via-s3a): what EMR 7.10 and later set by default, for the releases before.
S3A_FOR_S3 = {
    "fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
    "fs.AbstractFileSystem.s3.impl": "org.apache.hadoop.fs.s3a.S3A",
}
# The first EMR release whose S3A is Hadoop 3.4 on the AWS SDK for Java v2.
S3A_SDK_V2_SINCE = (7, 10)
# Where EMR records the node's release label, and where its Hadoop jars are.
RELEASE_INFO_FILES = ("mnt/var/lib/info/extraInstanceData.json", "emr/instance-controller/lib/info/extraInstanceData.json")
HADOOP_JAR_DIRS = ("usr/lib/hadoop", "usr/lib/hadoop/lib", "usr/lib/hadoop/client")
# Hadoop keys the provider reads; set only when they differ from the provider's defaults.
PROVIDER_ENDPOINT_KEY = "emrfs-role-agent.endpoint"
PROVIDER_TOKEN_FILE_KEY = "emrfs-role-agent.token-file"


def settings(port=DEFAULT_PORT, token_file=DEFAULT_TOKEN_FILE, s3a_sdk="v1", s3_via_s3a=False):
    """Classification -> {property: value}: what every client on the node needs (S3A per `s3a_sdk`;
    with `s3_via_s3a`, S3A serves s3:// too)."""
    endpoint = "http://127.0.0.1:%d" % port
    uri = endpoint + "/v1/credentials"
    spark = {}
    # Driver (in cluster mode the YARN application master) and executors: the SDKs' container
    # credentials path (boto3, AWS CLI, SDK for Java v2, Rust SDK).
    for prefix in ("spark.yarn.appMasterEnv.", "spark.executorEnv."):
        spark[prefix + "AWS_CONTAINER_CREDENTIALS_FULL_URI"] = uri
        spark[prefix + "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = token_file
    hadoop = {}
    if port != DEFAULT_PORT:
        hadoop[PROVIDER_ENDPOINT_KEY] = endpoint
    if token_file != DEFAULT_TOKEN_FILE:
        hadoop[PROVIDER_TOKEN_FILE_KEY] = token_file
    core = dict(hadoop)
    core.update(S3A_CLASSES[s3a_sdk])
    if s3_via_s3a:
        core.update(S3A_FOR_S3)
    emrfs = dict(hadoop)
    emrfs["fs.s3.customAWSCredentialsProvider"] = PROVIDER_CLASS
    return {"spark-defaults": spark, "core-site": core, "emrfs-site": emrfs}


def emr_configurations(port=DEFAULT_PORT, token_file=DEFAULT_TOKEN_FILE, s3a_sdk="v1", s3_via_s3a=False):
    """The same settings as an EMR `Configurations` document."""
    return [
        {"Classification": name, "Properties": props}
        for name, props in settings(port, token_file, s3a_sdk, s3_via_s3a).items()
    ]


def s3a_sdk_for_release(label):
    """'emr-7.10.0' -> 'v2', 'emr-6.15.0' -> 'v1'; None if the label is not an EMR release."""
    match = re.match(r"^emr-(\d+)\.(\d+)", label or "")
    if not match:
        return None
    return "v2" if (int(match.group(1)), int(match.group(2))) >= S3A_SDK_V2_SINCE else "v1"


def detect_s3a_sdk(root="/"):
    """(sdk, reason): from the node's EMR release label, else from its hadoop-aws jar, else v1."""
    for rel in RELEASE_INFO_FILES:
        path = os.path.join(root, rel)
        try:
            with open(path, encoding="utf-8") as f:
                label = json.load(f).get("releaseLabel")
        except (OSError, ValueError, AttributeError):
            continue
        sdk = s3a_sdk_for_release(label)
        if sdk:
            return sdk, "release %s (%s)" % (label, path)
    for rel in HADOOP_JAR_DIRS:
        directory = os.path.join(root, rel)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            match = re.match(r"^hadoop-aws-(\d+)\.(\d+)", name)
            if match:
                sdk = "v2" if (int(match.group(1)), int(match.group(2))) >= (3, 4) else "v1"
                return sdk, "%s" % os.path.join(directory, name)
    return "v1", "no release label or hadoop-aws jar found"


def write_like(path, text):
    """Replace `path` atomically with `text`, keeping its mode and (when permitted) owner."""
    st = os.stat(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, st.st_mode & 0o7777)
        try:
            os.chown(tmp, st.st_uid, st.st_gid)
        except PermissionError:
            pass
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def apply_spark_defaults(path, props):
    """spark-defaults.conf: `key<whitespace>value` lines; ours replace any earlier value."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    wanted = dict(props)
    out = []
    seen = set()
    for line in lines:
        fields = line.split(None, 1)
        key = fields[0] if fields and not line.lstrip().startswith("#") else None
        if key in wanted:
            if key in seen:
                continue  # drop duplicates: the last one would win in Spark
            seen.add(key)
            out.append("%s %s" % (key, wanted[key]))
        else:
            out.append(line)
    for key, value in wanted.items():
        if key not in seen:
            out.append("%s %s" % (key, value))
    text = "\n".join(out) + "\n"
    with open(path, encoding="utf-8") as f:
        if f.read() == text:
            return False
    write_like(path, text)
    return True


def _parse_xml(text):
    try:  # Python 3.8+: keep comments inside <configuration>
        parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    except TypeError:
        parser = ET.XMLParser()
    parser.feed(text)
    return parser.close()


def apply_hadoop_xml(path, props):
    """core-site.xml / emrfs-site.xml: set <property> values, keeping everything else."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    root = _parse_xml(text)
    if root.tag != "configuration":
        raise ValueError("%s: root element is <%s>, expected <configuration>" % (path, root.tag))
    current = {}
    for prop in root.findall("property"):
        name = (prop.findtext("name") or "").strip()
        current.setdefault(name, []).append(prop)
    if all(
        len(current.get(k, [])) == 1 and (current[k][0].findtext("value") or "").strip() == v
        for k, v in props.items()
    ):
        return False
    for key, value in props.items():
        found = current.get(key, [])
        for extra in found[1:]:
            root.remove(extra)
        if found:
            elem = found[0].find("value")
            if elem is None:
                elem = ET.SubElement(found[0], "value")
            elem.text = value
            continue
        prop = ET.SubElement(root, "property")
        prop.text = "\n    "
        prop.tail = "\n"
        name_el = ET.SubElement(prop, "name")
        name_el.text = key
        name_el.tail = "\n    "
        value_el = ET.SubElement(prop, "value")
        value_el.text = value
        value_el.tail = "\n  "
    # Keep the prolog (XML declaration, stylesheet, comments) as it was.
    match = re.search(r"<configuration[\s>/]", text)
    prolog = text[: match.start()] if match else ""
    if len(root) and not (root.text or "").strip():
        root.text = root.text or "\n  "
    for child in root:
        if child.tail is None or not child.tail.strip():
            child.tail = "\n  "
    if len(root):
        root[-1].tail = "\n"
    write_like(path, prolog + ET.tostring(root, encoding="unicode") + "\n")
    return True


def provisioned(state_file):
    """True once EMR's instance controller recorded this node's provisioning as SUCCESSFUL.

    The file is protobuf text format; the record is at
    localInstance { ... nodeProvisionCheckinRecord { ... status: SUCCESSFUL } }.
    """
    try:
        with open(state_file, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return False
    block = _block(text, "localInstance")
    if block is None:
        return False
    record = _block(block, "nodeProvisionCheckinRecord")
    if record is None:
        return False
    return re.search(r"^\s*status:\s*\"?SUCCESSFUL\"?\s*$", record, re.M) is not None


def _block(text, name):
    match = re.search(r"\b%s\s*\{" % re.escape(name), text)
    if not match:
        return None
    depth = 0
    for i in range(match.end() - 1, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[match.end() : i]
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    for name in ("settings", "apply"):
        p = sub.add_parser(name)
        if name == "apply":
            p.add_argument("kind", choices=["spark-defaults", "core-site", "emrfs-site"])
            p.add_argument("file")
        p.add_argument("--port", type=int, default=DEFAULT_PORT)
        p.add_argument("--token-file", default=DEFAULT_TOKEN_FILE)
        p.add_argument("--s3a-sdk", choices=sorted(S3A_CLASSES), default="v1")
        p.add_argument("--s3-via-s3a", action="store_true")
    p = sub.add_parser("s3a-sdk")
    p.add_argument("--root", default="/")
    p = sub.add_parser("provisioned")
    p.add_argument("state_file")
    args = ap.parse_args(argv)
    if args.cmd == "settings":
        json.dump(emr_configurations(args.port, args.token_file, args.s3a_sdk, args.s3_via_s3a), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.cmd == "apply":
        props = settings(args.port, args.token_file, args.s3a_sdk, args.s3_via_s3a)[args.kind]
        if args.kind == "spark-defaults":
            changed = apply_spark_defaults(args.file, props)
        else:
            changed = apply_hadoop_xml(args.file, props)
        print("%s %s" % ("changed" if changed else "unchanged", args.file))
        return 0
    if args.cmd == "s3a-sdk":
        sdk, reason = detect_s3a_sdk(args.root)
        sys.stderr.write("S3A uses the AWS SDK for Java %s: %s\n" % (sdk, reason))
        print(sdk)
        return 0
    if args.cmd == "provisioned":
        return 0 if provisioned(args.state_file) else 1
    ap.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
