"""docs/install-on-emr.md and README.md, run as written (SPEC §9), so that the guide cannot drift from the product.

Every fenced block in both files carries a marker in the HTML comment on the line before it:

    <!-- e2e: file NAME -->        the block is a file the operator writes (config.toml, the mappings)
    <!-- e2e: run -->              commands the operator runs on a workstation: run with bash, in order
    <!-- e2e: bootstrap -->        the create-cluster command: its bootstrap action is fetched from S3 and run with
                                   its arguments, in --root mode (the test hooks appended)
    <!-- e2e: config-fragment -->  TOML to add to the config: added to the guide's config and checked
    <!-- e2e: skip (REASON) -->    not run here (IAM policies, commands for a cluster node)

S3 is a moto server, reached by the real AWS CLI (AWS_ENDPOINT_URL), and the bootstrap copies with its default
`aws s3 cp`. `emrfs-role-agent` on the PATH is the agent binary under test; the release tarball is packaged by
scripts/release.sh around it.
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess

import boto3
import pytest

from helpers.agent import agent_binary
from helpers import moto_server as moto_helpers
from test_bootstrap import ancestors, package

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUIDE = os.path.join(REPO, "docs", "install-on-emr.md")
README = os.path.join(REPO, "README.md")
PROG = "emrfs-role-agent"

MARK = re.compile(r"^\s*<!-- e2e: (file|run|bootstrap|config-fragment|skip)(?: (.+?))? -->\s*$")
FENCE = re.compile(r"^(\s*)```(\S*)")


def blocks(path):
    """Every fenced block: (kind, argument, language, text, line number); kind is None when unmarked."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        mark = MARK.match(lines[i - 1]) if i else None
        indent, lang, start = fence.group(1), fence.group(2), i + 1
        body = []
        i += 1
        while not lines[i].strip().startswith("```"):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        kind, arg = (mark.group(1), mark.group(2)) if mark else (None, None)
        out.append((kind, arg, lang, "\n".join(body) + "\n", start))
    return out


def of_kind(path, kind):
    return [b for b in blocks(path) if b[0] == kind]


@pytest.mark.parametrize("path", [GUIDE, README], ids=["install-on-emr.md", "README.md"])
def test_every_block_says_how_the_suite_runs_it(path):
    found = blocks(path)
    assert found
    for kind, arg, lang, _, line in found:
        assert kind, f"{os.path.basename(path)}:{line}: a ```{lang} block without an e2e marker"
        if kind in ("file", "skip"):
            assert arg, f"{os.path.basename(path)}:{line}: e2e: {kind} needs a name or a reason"


class Workstation:
    """The operator's working directory: the repository's bootstrap script, a release in target/dist, the agent
    binary on the PATH, the real AWS CLI against a moto S3."""

    def __init__(self, tmp_path, endpoint):
        self.dir = tmp_path / "ws"
        (self.dir / "bin").mkdir(parents=True)
        binary = agent_binary()
        assert os.access(binary, os.X_OK), f"the agent binary is needed: {binary}"
        os.symlink(binary, self.dir / "bin" / PROG)
        (self.dir / "bootstrap").mkdir()
        shutil.copy(os.path.join(REPO, "bootstrap", "install.sh"), self.dir / "bootstrap" / "install.sh")
        tarball = package(tmp_path / "build", real_binary=True)
        (self.dir / "target" / "dist").mkdir(parents=True)
        for name in os.listdir(os.path.dirname(tarball)):
            shutil.copy(os.path.join(os.path.dirname(tarball), name), self.dir / "target" / "dist" / name)
        with open(tarball, "rb") as f:
            self.sha256 = hashlib.sha256(f.read()).hexdigest()
        path = [str(self.dir / "bin"), os.path.join(moto_helpers.test_venv(), "bin"), os.environ["PATH"]]
        self.env = dict(
            os.environ,
            PATH=os.pathsep.join(path),
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
        )
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip

    def write(self, name, text):
        (self.dir / name).write_text(text)

    def run(self, script, where):
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.dir, env=self.env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
        assert r.returncode == 0, f"{where} failed:\n{script}\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def buckets_for(self, text):
        for bucket in sorted(set(re.findall(r"s3://([a-z0-9.-]+)/", text))):
            try:
                self.s3.create_bucket(Bucket=bucket)
            except self.s3.exceptions.BucketAlreadyOwnedByYou:
                pass

    def bootstrap(self, command, root, where):
        """Runs the bootstrap action of a create-cluster command: the script from its Path, with its Args, plus
        the test hooks that make it install under `root`."""
        path = re.search(r"Path=([^,\]' ]+)", command).group(1)
        args = re.search(r"Args=\[([^\]]*)\]", command).group(1).split(",")
        assert "<sha256 of the tarball>" in args, args
        args = [self.sha256 if a == "<sha256 of the tarball>" else a for a in args]
        script = self.dir / "bootstrap-action.sh"
        self.run(f"aws s3 cp --only-show-errors {path} {script}", f"{where}: fetching {path}")
        r = subprocess.run(["bash", str(script), *args, "--root", str(root), "--systemd-version", "252",
                            "--wire-poll", "0.1"], cwd=self.dir, env=self.env, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
        assert r.returncode == 0, f"{where}: the bootstrap action failed:\n{r.stderr}"
        return args, r.stderr


def stop_waiters(root):
    mine = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"wire-clients.sh") for a in argv) and str(root).encode() in argv:
            mine.append(int(pid))
    for pid in mine:
        if not any(a in mine for a in ancestors(pid)):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.fixture
def workstation(tmp_path, moto_server):
    moto_server.set_enforcement(False)
    ws = Workstation(tmp_path, moto_server.endpoint)
    roots = []
    yield ws, roots
    for root in roots:
        stop_waiters(root)


def test_the_install_guide_runs_as_written(workstation, tmp_path):
    ws, roots = workstation
    files = {b[1]: b[3] for b in of_kind(GUIDE, "file")}
    assert set(files) == {"config.toml", "security-configuration.json"}, set(files)
    for name, text in files.items():
        ws.write(name, text)
    (bootstrap,) = of_kind(GUIDE, "bootstrap")
    ws.buckets_for(bootstrap[3])

    # §1: upload, check, import, explain; in the guide's order.
    outputs = []
    for _, _, _, script, line in of_kind(GUIDE, "run"):
        outputs.append(ws.run(script, f"install-on-emr.md:{line}"))
    upload, check, explain = outputs
    (sha,) = re.findall(r"^([0-9a-f]{64})$", upload, re.M)
    assert sha == ws.sha256
    assert "configuration is valid" in check, check
    assert "mappings_file: /etc/emrfs-role-agent/mappings (checked: security-configuration.json)" in check, check
    assert check.count("[[mapping]]") == 2, check  # the import, after the check
    decisions = re.findall(r"^role:\s+(\S+)", explain, re.M)
    assert decisions == ["arn:aws:iam::222222222222:role/partner-writer",
                         "arn:aws:iam::222222222222:role/analytics-analysts"], explain  # fmt: skip

    # §2: the bootstrap action of the create-cluster command, on a node under `root`.
    root = tmp_path / "node"
    roots.append(root)
    args, err = ws.bootstrap(bootstrap[3], root, f"install-on-emr.md:{bootstrap[4]}")
    assert "installed" in err.splitlines()[-1], err
    assert (root / "etc/emrfs-role-agent/config.toml").read_text() == files["config.toml"]
    assert (root / "etc/emrfs-role-agent/mappings").read_text() == files["security-configuration.json"]
    env = (root / "etc/emrfs-role-agent/mappings-sync.env").read_text()
    assert f"MAPPINGS_URI={args[args.index('--mappings') + 1]}\n" in env, env
    with open(root / "var/log/emrfs-role-agent-bootstrap/actions.log") as f:
        assert f"systemctl start {PROG}.service" in f.read().splitlines()
    configurations = re.search(r"--configurations file://(\S+)", bootstrap[3]).group(1)
    assert os.path.isfile(os.path.join(REPO, configurations)), configurations

    # §9: the [imds] settings, added to the guide's config, turn interception on.
    (fragment,) = of_kind(GUIDE, "config-fragment")
    ws.write("config-imds.toml", files["config.toml"] + "\n" + fragment[3])
    out = ws.run("emrfs-role-agent check --config config-imds.toml --mappings security-configuration.json",
                 f"install-on-emr.md:{fragment[4]}")  # fmt: skip
    assert re.search(r"^imds:\s+127\.0\.0\.1:254,", out, re.M), out

    # The README: its commands in the same working directory, its bootstrap action on another node.
    for _, _, _, script, line in of_kind(README, "run"):
        out = ws.run(script, f"README.md:{line}")
        assert "configuration is valid" in out and "[[mapping]]" in out, out
    (readme_bootstrap,) = of_kind(README, "bootstrap")
    root = tmp_path / "node-readme"
    roots.append(root)
    ws.bootstrap(readme_bootstrap[3], root, f"README.md:{readme_bootstrap[4]}")
    assert (root / "etc/emrfs-role-agent/config.toml").read_text() == files["config.toml"]


def test_the_bootstrap_help_names_every_argument_the_guide_documents():
    r = subprocess.run([os.path.join(REPO, "bootstrap", "install.sh"), "--help"], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 0
    with open(GUIDE, encoding="utf-8") as f:
        guide = f.read()
    with open(os.path.join(REPO, "bootstrap", "install.sh"), encoding="utf-8") as f:
        flags = set(re.findall(r"^\s+(--[a-z0-9-]+)\)", f.read(), re.M))
    documented = set(re.findall(r"^\| `(--[a-z0-9-]+)", guide, re.M))
    assert flags == documented, (flags - documented, documented - flags)
    for flag in flags:
        assert flag in r.stdout, flag
