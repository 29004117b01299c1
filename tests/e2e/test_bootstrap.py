"""The EMR bootstrap action (bootstrap/install.sh), run as a test runs it: `--root DIR` instead of
/, S3 replaced by a local-directory copier (SPEC §9).

A release tarball is packaged by scripts/release.sh around a stand-in binary (the installer is
under test here, not the binary; tests/e2e/test_release.py covers the real one)."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET

import pytest

from helpers.agent import agent_binary
from helpers.net import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSTALL = os.path.join(REPO, "bootstrap", "install.sh")
RELEASE = os.path.join(REPO, "scripts", "release.sh")
MAPPINGS_SYNC = os.path.join(REPO, "bootstrap", "mappings-sync.sh")
sys.path.insert(0, os.path.join(REPO, "bootstrap"))
import emr_conf  # noqa: E402

PROG = "emrfs-role-agent"
BUCKET = "ops-bucket"
PROVIDER = "io.emrfsroleagent.emrfs.RoleAgentCredentialsProvider"
# What the waiter leaves behind and the bootstrap's own logs: not installed files.
NOT_INSTALLED = ("run/", f"var/log/{PROG}-bootstrap/")

CONFIG = """\
mappings_file = "/etc/emrfs-role-agent/mappings"

[server]
listen = ["127.0.0.1:9944"]

[[mapping]]
name = "partner"
role = "arn:aws:iam::222222222222:role/partner-writer"
prefixes = ["s3://partner-bucket/exports/"]
"""

MAPPINGS = json.dumps(
    {
        "AuthorizationConfiguration": {
            "EmrFsConfiguration": {
                "RoleMappings": [
                    {
                        "Role": "arn:aws:iam::123456789012:role/analysts",
                        "IdentifierType": "Group",
                        "Identifiers": ["analysts"],
                    }
                ]
            }
        }
    }
)


class S3Dir:
    """A directory standing in for S3: s3://bucket/key is <dir>/bucket/key."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.copier = os.path.join(path, "copy.sh")
        with open(self.copier, "w") as f:
            f.write('#!/bin/sh\n# copy.sh S3DIR SRC DST\nset -e\nsrc=${2#s3://}\ncp "$1/$src" "$3"\n')
        os.chmod(self.copier, 0o755)
        self.copy_cmd = f"{self.copier} {path}"

    def put(self, key, data):
        p = os.path.join(self.path, BUCKET, key)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(p, mode) as f:
            f.write(data)
        return f"s3://{BUCKET}/{key}"


def package(tmp, version_text="emrfs-role-agent 0.0.0-test", jar=True, real_binary=False, hooks_jar=True):
    """A release tarball around a stand-in binary (and a stand-in provider jar). With `real_binary`, the
    stand-in passes every command but --version to the agent binary under test (the bootstrap asks it
    whether [imds] listen is set)."""
    tmp.mkdir(parents=True, exist_ok=True)
    stub = tmp / "emrfs-role-agent"
    if real_binary:
        binary = agent_binary()
        assert os.access(binary, os.X_OK), f"the agent binary is needed: {binary}"
        body = f'[ "$1" = --version ] && {{ echo \'{version_text}\'; exit 0; }}\nexec {binary} "$@"\n'
    else:
        body = f"echo '{version_text}'\n"
    stub.write_text("#!/bin/sh\n" + body)
    stub.chmod(0o755)
    args = [RELEASE, "--binary", str(stub), "--out", str(tmp / "dist")]
    if jar:
        jar_path = tmp / "emrfs-role-agent-provider.jar"
        jar_path.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
        args += ["--jar", str(jar_path)]
        if hooks_jar:
            hooks_path = tmp / "emrfs-role-agent-hooks.jar"
            hooks_path.write_bytes(b"PK\x05\x06" + b"\0" * 18 + b"hooks")  # a stand-in, told apart by its bytes
            args += ["--hooks-jar", str(hooks_path)]
    else:
        args += ["--no-jar"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    tarball = r.stdout.strip().splitlines()[-1]
    return tarball


def parent_pid(pid):
    """The parent of `pid`, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def ancestors(pid):
    """The parent of `pid`, its parent, … up to init (as far as they are still there)."""
    found = []
    parent = parent_pid(pid)
    while parent and parent not in found:
        found.append(parent)
        parent = parent_pid(parent)
    return found


class Node:
    """One --root install target and the S3 stand-in it installs from."""

    def __init__(self, tmp_path, jar=True, config=CONFIG, real_binary=False, hooks_jar=True):
        self.tmp = tmp_path
        self.root = tmp_path / "root"
        self.s3 = S3Dir(str(tmp_path / "s3"))
        tarball = package(tmp_path / "build", jar=jar, real_binary=real_binary, hooks_jar=hooks_jar)
        with open(tarball, "rb") as f:
            self.tarball_bytes = f.read()
        self.release_uri = self.s3.put(os.path.basename(tarball), self.tarball_bytes)
        self.sha256 = hashlib.sha256(self.tarball_bytes).hexdigest()
        self.config_uri = self.s3.put("agent/config.toml", config)
        self.mappings_uri = self.s3.put("agent/mappings.json", MAPPINGS)

    def install(self, *extra, check=True, mappings=True, systemd_version="252"):
        argv = [
            INSTALL,
            "--root", str(self.root),
            "--s3-copy", self.s3.copy_cmd,
            "--release", self.release_uri,
            "--config", self.config_uri,
            "--sha256", self.sha256,
            "--wire-poll", "0.1",
            "--systemd-version", systemd_version,
        ]  # fmt: skip
        if mappings:
            argv += ["--mappings", self.mappings_uri]
        argv += list(extra)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    def path(self, p):
        return self.root / p.lstrip("/")

    def files(self):
        """Installed files: relative path -> (mode, sha256)."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.root)
                if rel.startswith(NOT_INSTALLED):
                    continue
                st = os.lstat(full)
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                out[rel] = (oct(st.st_mode & 0o7777), digest)
        return out

    def dirs(self):
        return {
            os.path.relpath(d, self.root): oct(os.stat(d).st_mode & 0o7777)
            for d, _, _ in os.walk(self.root)
            if not os.path.relpath(d, self.root).startswith(NOT_INSTALLED)
        }

    def runs(self):
        """The recorded system actions (useradd, chown, systemctl, ...) of each run, in order."""
        with open(self.path(f"/var/log/{PROG}-bootstrap/actions.log")) as f:
            text = f.read()
        return [run.strip().splitlines() for run in text.split("== run\n")[1:]]

    def owners(self, run=-1):
        """Path -> owner:group from the chown actions of a run."""
        out = {}
        for line in self.runs()[run]:
            if line.startswith("chown "):
                _, owner, path = line.split(" ", 2)
                out[path] = owner
        return out

    def waiter_log(self):
        p = self.path(f"/var/log/{PROG}-bootstrap/wire-clients.log")
        return p.read_text() if p.exists() else ""

    def waiters(self):
        """PIDs of wire-clients.sh processes working on this root."""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"wire-clients.sh") for a in argv) and str(self.root).encode() in argv:
                out.append(int(pid))
        # A waiter's own subshells (command substitutions, and pipelines inside them) carry its command
        # line too: not waiters.
        return [pid for pid in out if not any(a in out for a in ancestors(pid))]

    def configure(self, text):
        """Replaces the config in S3 that the next install takes."""
        self.s3.put("agent/config.toml", text)

    def stop_waiters(self):
        for pid in self.waiters():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.fixture
def node(tmp_path):
    n = Node(tmp_path)
    yield n
    n.stop_waiters()


# ---- install --------------------------------------------------------------------------------


def test_second_run_changes_nothing(node):
    node.install("--mappings-refresh", "10min")
    first = node.files()
    first_dirs = node.dirs()
    time.sleep(1.1)  # the scenario: time passes, so that a rewrite would show in mtimes too
    mtimes = {p: os.stat(node.root / p).st_mtime for p in first}
    node.install("--mappings-refresh", "10min")
    assert node.files() == first
    assert node.dirs() == first_dirs
    assert {p: os.stat(node.root / p).st_mtime for p in first} == mtimes
    # Nothing changed, so nothing is restarted or reloaded.
    second = node.runs()[-1]
    assert not [a for a in second if re.match(r"systemctl (restart|reload|daemon-reload)", a)], second
    assert f"systemctl enable {PROG}.service" in second
    assert f"systemctl start {PROG}.service" not in second


def test_installs_every_file_with_its_mode(node):
    node.install("--mappings-refresh", "10min")
    files = node.files()
    expected = {
        "usr/local/bin/emrfs-role-agent": "0o755",
        "usr/local/lib/emrfs-role-agent/wire-clients.sh": "0o755",
        "usr/local/lib/emrfs-role-agent/mappings-sync.sh": "0o755",
        "usr/local/lib/emrfs-role-agent/emr_conf.py": "0o755",
        "etc/systemd/system/emrfs-role-agent.service": "0o644",
        "etc/systemd/system/emrfs-role-agent-mappings-sync.service": "0o644",
        "etc/systemd/system/emrfs-role-agent-mappings-sync.timer": "0o644",
        "etc/systemd/system/emrfs-role-agent-mappings-sync.timer.d/interval.conf": "0o644",
        "etc/logrotate.d/emrfs-role-agent": "0o644",
        "etc/emrfs-role-agent/config.toml": "0o640",
        "etc/emrfs-role-agent/mappings": "0o640",
        "etc/emrfs-role-agent/mappings-sync.env": "0o640",
        "etc/emrfs-role-agent/token": "0o440",
        "usr/share/aws/emr/emrfs/auxlib/emrfs-role-agent-provider.jar": "0o644",
        "etc/emrfs-role-agent/client.properties": "0o644",
    }
    for path, mode in expected.items():
        assert path in files, path
        assert files[path][0] == mode, (path, files[path][0])
    assert node.dirs()["etc/emrfs-role-agent"] == "0o755"  # job users must reach the token
    assert node.path("/etc/emrfs-role-agent/config.toml").read_text() == CONFIG
    assert node.path("/etc/emrfs-role-agent/mappings").read_text() == MAPPINGS
    with open(os.path.join(REPO, "systemd", "emrfs-role-agent.service"), "rb") as f:
        assert files["etc/systemd/system/emrfs-role-agent.service"][1] == hashlib.sha256(f.read()).hexdigest()


def test_client_properties_tell_the_hooks_where_the_agent_is(node):
    node.install("--port", "9955")
    props = dict(
        line.split("=", 1)
        for line in node.path("/etc/emrfs-role-agent/client.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert props == {"endpoint": "http://127.0.0.1:9955", "token-file": "/etc/emrfs-role-agent/token"}
    assert node.owners()["/etc/emrfs-role-agent/client.properties"] == "root:root"


def test_jvm_hooks_are_installed_on_request_and_removed_without_it(node):
    hooks = "usr/share/aws/emr/emrfs/auxlib/emrfs-role-agent-hooks.jar"
    node.install()
    assert hooks not in node.files()
    r = node.install("--jvm-hooks")
    assert node.files()[hooks][0] == "0o644"
    assert node.path("/" + hooks).read_bytes().endswith(b"hooks")
    assert "JVM hooks" in r.stderr
    node.install()
    assert hooks not in node.files()


def test_jvm_hooks_need_the_jar_in_the_release(tmp_path):
    n = Node(tmp_path, hooks_jar=False)
    try:
        r = n.install("--jvm-hooks", check=False)
        assert r.returncode != 0
        assert "--jvm-hooks: the release has no lib/emrfs-role-agent-hooks.jar" in r.stderr
    finally:
        n.stop_waiters()


def test_owners_and_system_changes(node):
    node.install()
    owners = node.owners()
    assert owners["/etc/emrfs-role-agent/token"] == "emrfs-role-agent:hadoop"
    assert owners["/etc/emrfs-role-agent/config.toml"] == "root:emrfs-role-agent"
    assert owners["/etc/emrfs-role-agent/mappings"] == "root:emrfs-role-agent"
    for p in ("/usr/local/bin/emrfs-role-agent", "/etc/systemd/system/emrfs-role-agent.service", "/etc/emrfs-role-agent"):
        assert owners[p] == "root:root", p
    first = node.runs()[0]
    assert "groupadd --system emrfs-role-agent" in first
    assert any(a.startswith("useradd --system --gid emrfs-role-agent") and a.endswith(" emrfs-role-agent") for a in first)
    assert first.index("systemctl daemon-reload") < first.index(f"systemctl enable {PROG}.service")
    assert first.index(f"systemctl enable {PROG}.service") < first.index(f"systemctl start {PROG}.service")
    # The socket unit holds the port before the agent first starts, and across every restart after.
    assert node.path(f"/etc/systemd/system/{PROG}.socket").is_file()
    assert first.index(f"systemctl start {PROG}.socket") < first.index(f"systemctl start {PROG}.service")
    assert f"systemctl enable {PROG}.socket" in first
    # The audit log is rotated by size every few minutes: its disk budget holds.
    assert node.path(f"/etc/systemd/system/{PROG}-logrotate.timer").is_file()
    assert f"systemctl start {PROG}-logrotate.timer" in first
    assert not [a for a in first if re.match(r"systemctl (restart|reload) ", a)]  # first install: start only
    assert owners["/var/log/emrfs-role-agent"] == "emrfs-role-agent:emrfs-role-agent"
    assert oct(node.path("/var/log/emrfs-role-agent").stat().st_mode & 0o777) == "0o750"


def test_old_systemd_gets_the_compat_unit(node):
    # Amazon Linux 2 has systemd 219: the sandboxed unit would not work there.
    r = node.install(systemd_version="219")
    assert "compat unit" in r.stderr
    with open(os.path.join(REPO, "systemd", "compat", "emrfs-role-agent.service")) as f:
        assert node.path("/etc/systemd/system/emrfs-role-agent.service").read_text() == f.read()
    assert not [a for a in node.runs()[-1] if "--now" in a or "--collect" in a]  # not in systemd 219
    # Moving to a newer systemd (same node, new AMI) swaps the unit and restarts the agent.
    node.install(systemd_version="252")
    with open(os.path.join(REPO, "systemd", "emrfs-role-agent.service")) as f:
        assert node.path("/etc/systemd/system/emrfs-role-agent.service").read_text() == f.read()
    assert f"systemctl restart {PROG}.service" in node.runs()[-1]


def test_token_group_is_a_choice(node):
    node.install("--token-group", "analysts", "--token-mode", "0444")
    assert node.owners()["/etc/emrfs-role-agent/token"] == "emrfs-role-agent:analysts"
    assert oct(node.path("/etc/emrfs-role-agent/token").stat().st_mode & 0o777) == "0o444"


def test_token_is_random_has_no_newline_and_is_kept(node, tmp_path):
    node.install()
    token = node.path("/etc/emrfs-role-agent/token").read_bytes()
    assert re.fullmatch(rb"[0-9a-f]{64}", token), token
    node.install()
    assert node.path("/etc/emrfs-role-agent/token").read_bytes() == token
    other = Node(tmp_path / "other")
    other.install()
    assert other.path("/etc/emrfs-role-agent/token").read_bytes() != token
    other.stop_waiters()


def test_token_with_a_newline_is_replaced(node):
    node.install()
    node.path("/etc/emrfs-role-agent/token").chmod(0o600)
    node.path("/etc/emrfs-role-agent/token").write_text("abc\n")
    node.install()
    token = node.path("/etc/emrfs-role-agent/token").read_bytes()
    assert b"\n" not in token and len(token) == 64


def test_config_change_reloads_binary_change_restarts(node):
    node.install()
    node.configure(CONFIG + "\n[fallback]\nmode = \"deny\"\n")
    node.install()
    run = node.runs()[-1]
    assert f"systemctl reload {PROG}.service" in run and f"systemctl restart {PROG}.service" not in run, run
    assert "deny" in node.path("/etc/emrfs-role-agent/config.toml").read_text()

    new = package(node.tmp / "build2", version_text="emrfs-role-agent 0.0.1-test")
    with open(new, "rb") as f:
        data = f.read()
    node.release_uri = node.s3.put(os.path.basename(new), data)
    node.sha256 = hashlib.sha256(data).hexdigest()
    node.install()
    run = node.runs()[-1]
    assert f"systemctl restart {PROG}.service" in run, run
    assert "0.0.1-test" in node.path("/usr/local/bin/emrfs-role-agent").read_text()


def test_wrong_sha256_installs_nothing(node):
    r = node.install("--sha256", "0" * 64, check=False)
    assert r.returncode != 0
    assert "SHA-256" in r.stderr
    assert not node.path("/usr/local/bin/emrfs-role-agent").exists()
    assert not node.path("/etc/emrfs-role-agent").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "--release is required"),
        (["--release", "s3://b/x.tar.gz"], "--config is required"),
        (["--release", "s3://b/x", "--config", "s3://b/c", "--port", "99999"], "not a port"),
        (["--release", "s3://b/x", "--config", "s3://b/c", "--mappings-refresh", "5min"], "needs --mappings"),
        (["--release", "s3://b/x", "--config", "s3://b/c", "--bogus"], "unknown argument"),
        (["--release", "s3://b/x", "--config", "s3://b/c", "--audit-bucket", "ops-audit"], "not an s3://bucket/prefix/"),
        (["--release", "s3://b/x", "--config", "s3://b/c", "--audit-bucket", 's3://ops-audit/a"b/'],
         "not an s3://bucket/prefix/"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, args, message):
    r = subprocess.run([INSTALL, "--root", str(tmp_path), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert message in r.stderr


def test_help_documents_every_flag():
    r = subprocess.run([INSTALL, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    with open(INSTALL) as f:
        flags = set(re.findall(r"^\s+(--[a-z0-9-]+)\)", f.read(), re.M))
    assert flags >= {"--release", "--config", "--mappings", "--sha256", "--port", "--root", "--s3-copy"}
    for flag in flags:
        assert flag in r.stdout, flag


def test_mappings_refresh_can_be_turned_off(node):
    node.install("--mappings-refresh", "2min")
    interval = node.path("/etc/systemd/system/emrfs-role-agent-mappings-sync.timer.d/interval.conf").read_text()
    assert "OnUnitActiveSec=2min" in interval and "OnBootSec=2min" in interval
    env = node.path("/etc/emrfs-role-agent/mappings-sync.env").read_text()
    assert f"MAPPINGS_URI={node.mappings_uri}\n" in env
    assert f"S3_COPY={node.s3.copy_cmd}\n" in env
    assert "systemctl enable emrfs-role-agent-mappings-sync.timer" in node.runs()[-1]
    assert "systemctl restart emrfs-role-agent-mappings-sync.timer" in node.runs()[-1]
    node.install("--mappings-refresh", "2min")
    assert "systemctl start emrfs-role-agent-mappings-sync.timer" in node.runs()[-1]
    assert "systemctl restart emrfs-role-agent-mappings-sync.timer" not in node.runs()[-1]

    node.install()
    run = node.runs()[-1]
    assert run.index("systemctl stop emrfs-role-agent-mappings-sync.timer") < run.index(
        "systemctl disable emrfs-role-agent-mappings-sync.timer"
    )
    for p in (
        "/etc/systemd/system/emrfs-role-agent-mappings-sync.timer",
        "/etc/systemd/system/emrfs-role-agent-mappings-sync.service",
        "/etc/systemd/system/emrfs-role-agent-mappings-sync.timer.d",
        "/etc/emrfs-role-agent/mappings-sync.env",
    ):
        assert not node.path(p).exists(), p


# ---- instance-metadata interception (SPEC §5.1) ------------------------------------------------
#
# Installed exactly when the config sets [imds] listen, as the agent binary reads the config: these
# nodes package a stand-in that passes `check` to the real binary, and configs it can check on any
# machine (no mappings file).

IMDS_OFF_CONFIG = """\
[server]
listen = ["127.0.0.1:9944"]

[imds]
listen = ""                          # empty: off
exempt_uids_below = 1000

[[mapping]]
name = "analysts"
role = "arn:aws:iam::222222222222:role/analysts"
groups = ["analysts"]
"""
IMDS_CONFIG = IMDS_OFF_CONFIG.replace('listen = ""                          # empty: off', 'listen = "127.0.0.1:254"')
IMDS_SOCKET = f"/etc/systemd/system/{PROG}-imds.socket"
IMDS_REDIRECT = f"/etc/systemd/system/{PROG}-imds-redirect.service"
IMDS_DROPIN = f"/etc/systemd/system/{PROG}-imds.socket.d/listen.conf"


@pytest.fixture
def imds_node(tmp_path):
    n = Node(tmp_path, config=IMDS_OFF_CONFIG, real_binary=True)
    yield n
    n.stop_waiters()


def systemctl(run):
    return [a for a in run if a.startswith("systemctl ")]


def test_imds_units_are_installed_only_when_listen_is_set(imds_node):
    node = imds_node
    r = node.install(mappings=False)
    assert "instance-metadata interception: off" in r.stderr, r.stderr
    for p in (IMDS_SOCKET, IMDS_REDIRECT, os.path.dirname(IMDS_DROPIN)):
        assert not node.path(p).exists(), p
    assert not [a for a in node.runs()[-1] if "imds" in a], node.runs()[-1]

    node.configure(IMDS_CONFIG)
    r = node.install(mappings=False)
    assert "instance-metadata interception: on, listener 127.0.0.1:254" in r.stderr, r.stderr
    assert "any local user may bind" not in r.stderr, r.stderr
    installed = {IMDS_SOCKET: "emrfs-role-agent-imds.socket", IMDS_REDIRECT: "emrfs-role-agent-imds-redirect.service"}
    for p, unit in installed.items():
        with open(os.path.join(REPO, "systemd", unit)) as f:
            assert node.path(p).read_text() == f.read(), p
        assert oct(node.path(p).stat().st_mode & 0o777) == "0o644"
        assert node.owners()[p] == "root:root"
    assert not node.path(IMDS_DROPIN).exists()  # the unit's own addresses are imds.listen and [::1] at its port
    run = node.runs()[-1]
    for unit in ("emrfs-role-agent-imds.socket", "emrfs-role-agent-imds-redirect.service"):
        assert f"systemctl enable {unit}" in run, run
    # The units are loaded, then: the metadata socket (so that the agent is handed it), the redirect,
    # and the agent, which restarts to take the new socket.
    order = [run.index(a) for a in (
        "systemctl daemon-reload",
        "systemctl start emrfs-role-agent-imds.socket",
        "systemctl start emrfs-role-agent-imds-redirect.service",
        f"systemctl restart {PROG}.service",
    )]  # fmt: skip
    assert order == sorted(order), run


def test_imds_redirect_unit_runs_the_installed_binary_with_the_installed_config(imds_node):
    node = imds_node
    node.configure(IMDS_CONFIG)
    node.install(mappings=False)
    unit = node.path(IMDS_REDIRECT).read_text()
    execs = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    assert execs == [f"/usr/local/bin/{PROG} imds-redirect install --config /etc/{PROG}/config.toml"]
    binary, _, rest = execs[0].partition(" ")
    assert rest.split()[-1] == f"/etc/{PROG}/config.toml"
    # Those are the files this run installed: the binary of the release, the config from S3.
    assert node.path(binary).read_bytes() == node.path(f"/usr/local/bin/{PROG}").read_bytes()
    assert os.access(node.path(binary), os.X_OK)
    assert node.path(rest.split()[-1]).read_text() == IMDS_CONFIG
    # The agent's own unit names the same binary and config.
    agent = node.path(f"/etc/systemd/system/{PROG}.service").read_text()
    assert f"ExecStart={binary} serve --config /etc/{PROG}/config.toml" in agent
    assert not re.search(r"^ExecStop", unit, re.M)  # fail closed: the rules stay when the agent stops


def test_imds_first_install_starts_without_restarting(imds_node):
    node = imds_node
    node.configure(IMDS_CONFIG)
    node.install(mappings=False)
    first = node.runs()[0]
    assert not [a for a in first if re.match(r"systemctl (restart|reload|stop) ", a)], first
    assert first.index("systemctl start emrfs-role-agent-imds.socket") < first.index(
        "systemctl start emrfs-role-agent-imds-redirect.service"
    ) < first.index(f"systemctl start {PROG}.service")


def test_imds_second_run_changes_nothing(imds_node):
    node = imds_node
    node.configure(IMDS_CONFIG)
    node.install(mappings=False)
    files, dirs = node.files(), node.dirs()
    node.install(mappings=False)
    assert node.files() == files and node.dirs() == dirs
    run = node.runs()[-1]
    assert not [a for a in run if re.match(r"systemctl (restart|reload|stop|daemon-reload)", a)], run
    assert "systemctl start emrfs-role-agent-imds-redirect.service" in run  # a no-op while it is active


def test_imds_config_change_reinstalls_the_rules(imds_node):
    node = imds_node
    node.configure(IMDS_CONFIG)
    node.install(mappings=False)
    node.configure(IMDS_CONFIG.replace("exempt_uids_below = 1000", 'exempt_users = ["presto"]'))
    node.install(mappings=False)
    run = node.runs()[-1]
    assert "systemctl restart emrfs-role-agent-imds-redirect.service" in run, run
    assert f"systemctl reload {PROG}.service" in run and f"systemctl restart {PROG}.service" not in run, run


def test_imds_listener_elsewhere_gets_a_socket_drop_in(imds_node):
    node = imds_node
    node.configure(IMDS_CONFIG)
    node.install(mappings=False)
    node.configure(IMDS_CONFIG.replace("127.0.0.1:254", "127.0.0.1:950"))
    node.install(mappings=False)
    # The agent takes a handed socket as its metadata listener only when its address is imds.listen (or
    # [::1] at its port, where the IPv6 redirect goes).
    assert node.path(IMDS_DROPIN).read_text() == (
        "[Socket]\nListenStream=\nListenStream=127.0.0.1:950\nListenStream=[::1]:950\n"
    )
    run = node.runs()[-1]
    # The running agent holds the old socket: it stops, the socket moves, the agent starts again.
    order = [run.index(a) for a in (
        f"systemctl stop {PROG}.service",
        "systemctl restart emrfs-role-agent-imds.socket",
        "systemctl restart emrfs-role-agent-imds-redirect.service",
        f"systemctl start {PROG}.service",
    )]  # fmt: skip
    assert order == sorted(order), run
    node.configure(IMDS_CONFIG)
    node.install(mappings=False)
    assert not node.path(os.path.dirname(IMDS_DROPIN)).exists()


def test_imds_turned_off_removes_units_and_rules(imds_node):
    node = imds_node
    node.configure(IMDS_CONFIG)
    node.install(mappings=False)
    node.configure(IMDS_OFF_CONFIG)
    r = node.install(mappings=False)
    assert "instance-metadata interception: off" in r.stderr
    run = node.runs()[-1]
    # The rules go first (they would send metadata traffic to a port nobody serves), then the socket;
    # the agent restarts without it.
    order = [run.index(a) for a in (
        "systemctl disable emrfs-role-agent-imds-redirect.service",
        f"/usr/local/bin/{PROG} imds-redirect remove",
        "systemctl stop emrfs-role-agent-imds.socket",
        "systemctl disable emrfs-role-agent-imds.socket",
        "systemctl daemon-reload",
        f"systemctl restart {PROG}.service",
    )]  # fmt: skip
    assert order == sorted(order), run
    for p in (IMDS_SOCKET, IMDS_REDIRECT):
        assert not node.path(p).exists(), p
    node.install(mappings=False)
    assert not [a for a in node.runs()[-1] if "imds" in a]


def test_imds_with_an_inline_table_is_on_too(imds_node):
    # The binary reads the config, so every TOML spelling of the key counts.
    node = imds_node
    node.configure('imds = { listen = "127.0.0.1:9945" }\n')
    node.install(mappings=False)
    assert node.path(IMDS_REDIRECT).exists()


def test_imds_on_old_systemd_gets_the_compat_redirect(imds_node):
    node = imds_node
    node.configure(IMDS_CONFIG)
    node.install(mappings=False, systemd_version="219")
    with open(os.path.join(REPO, "systemd", "compat", "emrfs-role-agent-imds-redirect.service")) as f:
        assert node.path(IMDS_REDIRECT).read_text() == f.read()
    with open(os.path.join(REPO, "systemd", "emrfs-role-agent-imds.socket")) as f:
        assert node.path(IMDS_SOCKET).read_text() == f.read()


SQUATTABLE = "any local user may bind port 9945"


def without_imds_socket_unit(node):
    """Repackages the node's release without systemd/emrfs-role-agent-imds.socket."""
    work = node.tmp / "repack"
    work.mkdir()
    tarball = work / "release.tar.gz"
    tarball.write_bytes(node.tarball_bytes)
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(work)], check=True)
    tarball.unlink()
    units = [p for p in work.rglob(f"systemd/{PROG}-imds.socket")]
    assert len(units) == 1, units
    units[0].unlink()
    top = [p.name for p in work.iterdir()]
    subprocess.run(["tar", "-czf", str(tarball), "-C", str(work), *top], check=True)
    node.tarball_bytes = tarball.read_bytes()
    node.release_uri = node.s3.put("release-without-imds-socket.tar.gz", node.tarball_bytes)
    node.sha256 = hashlib.sha256(node.tarball_bytes).hexdigest()


def test_imds_on_a_port_anyone_may_bind_needs_its_socket_unit(imds_node):
    """Interception on, a port any user may bind, and no socket unit to hold it: refused, with why, and
    nothing installed. With the socket unit it goes on, with a warning; the default port needs neither."""
    node = imds_node
    node.configure(IMDS_CONFIG.replace("127.0.0.1:254", "127.0.0.1:9945"))
    r = node.install(mappings=False)
    assert SQUATTABLE in r.stderr and "warning" in r.stderr and "safe only while" in r.stderr, r.stderr
    assert node.path(IMDS_SOCKET).exists()

    without_imds_socket_unit(node)
    before = node.files()
    r = node.install(mappings=False, check=False)
    assert r.returncode != 0, r.stderr
    assert SQUATTABLE in r.stderr and f"no systemd/{PROG}-imds.socket to hold it" in r.stderr, r.stderr
    assert "127.0.0.1:254" in r.stderr, r.stderr
    assert node.files() == before, "a refused run changes nothing"


def test_an_invalid_imds_config_fails_the_bootstrap(imds_node):
    node = imds_node
    node.configure(IMDS_CONFIG.replace("127.0.0.1:254", "0.0.0.0:254"))
    r = node.install(mappings=False, check=False)
    assert r.returncode != 0
    assert "imds.listen" in r.stderr and "the configuration is invalid" in r.stderr, r.stderr
    assert not node.path(IMDS_REDIRECT).exists()


# ---- shipping the audit log to S3 (--audit-bucket, SPEC §7.3) ----------------------------------

AUDIT_BUCKET = "s3://ops-audit/emrfs-role-agent/"
LOGROTATE_FILES = (f"/etc/logrotate.d/{PROG}", f"/etc/systemd/system/{PROG}-logrotate.timer",
                   f"/etc/systemd/system/{PROG}-logrotate.service")


def installed_config(node):
    return node.path("/etc/emrfs-role-agent/config.toml").read_text()


def test_audit_bucket_writes_the_ship_table_and_leaves_out_logrotate(node):
    r = node.install("--audit-bucket", AUDIT_BUCKET)
    text = installed_config(node)
    config = tomllib.loads(text)
    assert config["audit"]["ship"] == {"bucket": AUDIT_BUCKET}
    # Everything else as the operator wrote it.
    assert text.startswith(CONFIG)
    del config["audit"]
    assert config == tomllib.loads(CONFIG)
    for p in LOGROTATE_FILES:
        assert not node.path(p).exists(), p
    assert not [a for a in node.runs()[-1] if "logrotate" in a], node.runs()[-1]
    assert "audit shipping to S3: on" in r.stderr
    # Idempotent: the same run again changes nothing and reloads nothing.
    files = node.files()
    node.install("--audit-bucket", AUDIT_BUCKET)
    assert node.files() == files
    assert not [a for a in node.runs()[-1] if re.match(r"systemctl (restart|reload) ", a)], node.runs()[-1]


def test_audit_bucket_on_a_node_with_logrotate_removes_it_and_without_it_puts_it_back(node):
    node.install()
    for p in LOGROTATE_FILES:
        assert node.path(p).is_file(), p
    node.install("--audit-bucket", AUDIT_BUCKET)
    run = node.runs()[-1]
    timer = f"{PROG}-logrotate.timer"
    assert run.index(f"systemctl stop {timer}") < run.index(f"systemctl disable {timer}"), run
    for p in LOGROTATE_FILES:
        assert not node.path(p).exists(), p
    assert "systemctl daemon-reload" in run and f"systemctl reload {PROG}.service" in run, run
    assert tomllib.loads(installed_config(node))["audit"]["ship"]["bucket"] == AUDIT_BUCKET
    # The config it replaced is kept, as for any config change.
    assert node.path("/etc/emrfs-role-agent/config.toml.previous").read_text() == CONFIG

    node.install()
    assert installed_config(node) == CONFIG
    for p in LOGROTATE_FILES:
        assert node.path(p).is_file(), p
    assert f"systemctl start {timer}" in node.runs()[-1]


def test_audit_bucket_goes_into_the_configs_own_ship_table(tmp_path):
    config = CONFIG.replace('[server]\n', '[audit.ship]\nbucket = "s3://old-bucket/"\ninterval = "1m"\n\n[server]\n')
    assert config != CONFIG
    n = Node(tmp_path, config=config)
    try:
        r = n.install("--audit-bucket", AUDIT_BUCKET)
        text = installed_config(n)
        assert text.count("bucket =") == 1, text
        assert tomllib.loads(text)["audit"]["ship"] == {"bucket": AUDIT_BUCKET, "interval": "1m"}
        assert "replaces the config's [audit.ship] bucket" in r.stderr
    finally:
        n.stop_waiters()


def test_a_config_that_ships_by_itself_gets_no_logrotate_either(tmp_path):
    n = Node(tmp_path, config=CONFIG + f'\n[audit.ship]\nbucket = "{AUDIT_BUCKET}"\n')
    try:
        n.install()
        for p in LOGROTATE_FILES:
            assert not n.path(p).exists(), p
    finally:
        n.stop_waiters()


@pytest.mark.parametrize("fragment", ['[audit]\nship = { bucket = "s3://old-bucket/" }\n',
                                      '[audit]\nship.interval = "1m"\n'], ids=["inline-table", "dotted-keys"])
def test_audit_bucket_refuses_a_ship_table_it_cannot_extend(tmp_path, fragment):
    n = Node(tmp_path, config=CONFIG + "\n" + fragment)
    try:
        r = n.install("--audit-bucket", AUDIT_BUCKET, check=False)
        assert r.returncode != 0
        assert "--audit-bucket" in r.stderr and "dotted keys or an inline table" in r.stderr
        assert not n.path("/etc/emrfs-role-agent").exists()
    finally:
        n.stop_waiters()


def test_audit_bucket_rollback_puts_logrotate_back(node):
    node.install()
    before = node.files()
    r = node.install("--audit-bucket", AUDIT_BUCKET, "--fail-at", "installed", check=False)
    assert r.returncode != 0
    assert node.files() == before
    run = node.runs()[-1]
    undo = run[run.index("# rollback") + 1:]
    timer = f"{PROG}-logrotate.timer"
    assert f"systemctl enable {timer}" in undo and f"systemctl start {timer}" in undo, undo


def test_audit_bucket_config_passes_the_agents_check(tmp_path):
    """The real binary checks the config the bootstrap wrote (a binary without [audit.ship] refuses it)."""
    n = Node(tmp_path, config=IMDS_OFF_CONFIG, real_binary=True)
    try:
        r = n.install("--audit-bucket", AUDIT_BUCKET, mappings=False, check=False)
        assert r.returncode == 0, r.stderr
        assert tomllib.loads(installed_config(n))["audit"]["ship"]["bucket"] == AUDIT_BUCKET
        # The table as assembled is what the agent checks: a bad value beside the bucket fails the run
        # before anything changes.
        bad = IMDS_OFF_CONFIG.replace("[imds]", '[audit.ship]\ninterval = "soon"\n\n[imds]')
        other = Node(tmp_path / "bad", config=bad, real_binary=True)
        try:
            r = other.install("--audit-bucket", AUDIT_BUCKET, mappings=False, check=False)
            assert r.returncode != 0 and "the configuration is invalid" in r.stderr, r.stderr
            assert "audit.ship.interval" in r.stderr and "--audit-bucket" in r.stderr, r.stderr
            assert not other.path("/etc/emrfs-role-agent").exists()
        finally:
            other.stop_waiters()
    finally:
        n.stop_waiters()


# ---- the API socket (SPEC §8) ------------------------------------------------------------------
#
# systemd hands the agent the socket the unit binds, and the agent serves that instead of binding
# [server] listen: the unit must listen where the config says, or clients wired to --port (and the
# readiness check) find nobody there. Like [imds] listen, the address is the agent binary's reading of
# the config (`check` prints "listen:").

API_CONFIG = """\
[server]
listen = ["127.0.0.1:9944"]

[[mapping]]
name = "analysts"
role = "arn:aws:iam::222222222222:role/analysts"
groups = ["analysts"]
"""
API_SOCKET = f"/etc/systemd/system/{PROG}.socket"
API_DROPIN = f"/etc/systemd/system/{PROG}.socket.d/listen.conf"
PORT_WARNING = "warning: the config's [server] listen"


@pytest.fixture
def api_node(tmp_path):
    n = Node(tmp_path, config=API_CONFIG, real_binary=True)
    yield n
    n.stop_waiters()


def test_api_socket_keeps_its_own_address_for_the_default_listen(api_node):
    node = api_node
    r = node.install(mappings=False)
    assert "API socket: 127.0.0.1:9944" in r.stderr, r.stderr
    assert PORT_WARNING not in r.stderr, r.stderr
    with open(os.path.join(REPO, "systemd", f"{PROG}.socket")) as f:
        assert node.path(API_SOCKET).read_text() == f.read()
    assert not node.path(os.path.dirname(API_DROPIN)).exists()


def test_api_listener_on_another_port_gets_a_socket_drop_in(api_node):
    node = api_node
    node.configure(API_CONFIG.replace("127.0.0.1:9944", "127.0.0.1:9950"))
    r = node.install("--port", "9950", mappings=False)
    assert PORT_WARNING not in r.stderr, r.stderr
    assert node.path(API_DROPIN).read_text() == "[Socket]\nListenStream=\nListenStream=127.0.0.1:9950\n"
    assert oct(node.path(API_DROPIN).stat().st_mode & 0o777) == "0o644"
    assert oct(node.path(os.path.dirname(API_DROPIN)).stat().st_mode & 0o777) == "0o755"
    owners = node.owners()
    assert owners[API_DROPIN] == owners[os.path.dirname(API_DROPIN)] == "root:root"
    # A first install: the drop-in is loaded before the socket starts; nothing is restarted.
    run = node.runs()[-1]
    order = [run.index(a) for a in (
        "systemctl daemon-reload",
        f"systemctl start {PROG}.socket",
        f"systemctl start {PROG}.service",
    )]  # fmt: skip
    assert order == sorted(order), run
    assert not [a for a in run if re.match(r"systemctl (restart|reload|stop) ", a)], run

    # Again with the same inputs: nothing changes, nothing restarts.
    files, dirs = node.files(), node.dirs()
    node.install("--port", "9950", mappings=False)
    assert node.files() == files and node.dirs() == dirs
    run = node.runs()[-1]
    assert not [a for a in run if re.match(r"systemctl (restart|reload|stop|daemon-reload)", a)], run


def test_api_listener_moved_on_an_installed_node_moves_the_socket(api_node):
    node = api_node
    node.install(mappings=False)
    node.configure(API_CONFIG.replace("127.0.0.1:9944", "127.0.0.1:9950"))
    node.install("--port", "9950", mappings=False)
    assert node.path(API_DROPIN).read_text() == "[Socket]\nListenStream=\nListenStream=127.0.0.1:9950\n"
    # The running agent holds the old socket: it stops, the socket moves, the agent starts again.
    run = node.runs()[-1]
    order = [run.index(a) for a in (
        "systemctl daemon-reload",
        f"systemctl stop {PROG}.service",
        f"systemctl restart {PROG}.socket",
        f"systemctl start {PROG}.service",
    )]  # fmt: skip
    assert order == sorted(order), run
    assert f"systemctl restart {PROG}.service" not in run, run

    # Back to the unit's own address: the drop-in goes, and the socket moves back the same way.
    node.configure(API_CONFIG)
    node.install(mappings=False)
    assert not node.path(os.path.dirname(API_DROPIN)).exists()
    run = node.runs()[-1]
    order = [run.index(a) for a in (
        "systemctl daemon-reload",
        f"systemctl stop {PROG}.service",
        f"systemctl restart {PROG}.socket",
        f"systemctl start {PROG}.service",
    )]  # fmt: skip
    assert order == sorted(order), run


def test_api_socket_listens_on_every_listen_address(api_node):
    node = api_node
    node.configure(API_CONFIG.replace('["127.0.0.1:9944"]', '["127.0.0.1:9950", "[::1]:9950"]'))
    r = node.install("--port", "9950", mappings=False)
    assert PORT_WARNING not in r.stderr, r.stderr
    assert node.path(API_DROPIN).read_text() == (
        "[Socket]\nListenStream=\nListenStream=127.0.0.1:9950\nListenStream=[::1]:9950\n"
    )


def test_api_and_metadata_sockets_each_get_their_drop_in(api_node):
    node = api_node
    node.configure(API_CONFIG.replace("127.0.0.1:9944", "127.0.0.1:9950") + '\n[imds]\nlisten = "127.0.0.1:9951"\n')
    node.install("--port", "9950", mappings=False)
    assert node.path(API_DROPIN).read_text() == "[Socket]\nListenStream=\nListenStream=127.0.0.1:9950\n"
    assert node.path(IMDS_DROPIN).read_text() == (
        "[Socket]\nListenStream=\nListenStream=127.0.0.1:9951\nListenStream=[::1]:9951\n"
    )


@pytest.mark.parametrize(
    "config,port,warned",
    [
        # No [server] listen (so 127.0.0.1:9944) and a metadata listener on another port.
        ('[imds]\nlisten = "127.0.0.1:9945"\n', "9944", False),
        (API_CONFIG + '\n[imds]\nlisten = "127.0.0.1:9945"\n', "9944", False),
        # The port is the metadata listener's, not the API's: clients wired to it would get no credentials.
        (API_CONFIG + '\n[imds]\nlisten = "127.0.0.1:9950"\n', "9950", True),
        (API_CONFIG, "9950", True),
        ("", "9950", True),
        # Clients are wired to 127.0.0.1.
        (API_CONFIG.replace("127.0.0.1:9944", "[::1]:9944"), "9944", True),
    ],
    ids=["imds-only", "imds-elsewhere", "port-is-imds", "other-port", "no-listen", "ipv6-only"],
)
def test_port_warning_looks_at_server_listen_only(api_node, config, port, warned):
    node = api_node
    node.configure(config)
    r = node.install("--port", port, mappings=False)
    assert (PORT_WARNING in r.stderr) == warned, r.stderr
    if warned:
        assert f"does not include 127.0.0.1:{port}" in r.stderr, r.stderr


def test_a_check_that_names_no_listen_address_leaves_the_socket_to_port(node):
    # A binary whose `check` prints no "listen:" line (the stand-in here): --port is all there is to go on.
    node.install("--port", "9955")
    assert node.path(API_DROPIN).read_text() == "[Socket]\nListenStream=\nListenStream=127.0.0.1:9955\n"
    node.install()
    assert not node.path(os.path.dirname(API_DROPIN)).exists()


# ---- client wiring ----------------------------------------------------------------------------

SPARK_DEFAULTS = """\
spark.master                     yarn
spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI http://169.254.170.2/old
spark.driver.extraClassPath      /usr/lib/hadoop-lzo/lib/*:/usr/share/aws/emr/emrfs/auxlib/*
"""

CORE_SITE = """\
<?xml version="1.0"?>
<?xml-stylesheet type="text/xsl" href="configuration.xsl"?>
<!-- Put site-specific property overrides in this file. -->
<configuration>
  <property>
    <name>fs.defaultFS</name>
    <value>hdfs://ip-10-0-0-1.ec2.internal:8020</value>
  </property>
  <property><name>fs.s3a.aws.credentials.provider</name><value>some.Other</value></property>
</configuration>
"""

EMRFS_SITE = """\
<?xml version="1.0"?>
<configuration>
  <property>
    <name>fs.s3.consistent</name>
    <value>false</value>
  </property>
</configuration>
"""

CLIENT_FILES = {
    "spark-defaults": "/etc/spark/conf/spark-defaults.conf",
    "core-site": "/etc/hadoop/conf/core-site.xml",
    "emrfs-site": "/usr/share/aws/emr/emrfs/conf/emrfs-site.xml",
}


def write_client_files(node):
    for kind, text in (("spark-defaults", SPARK_DEFAULTS), ("core-site", CORE_SITE), ("emrfs-site", EMRFS_SITE)):
        p = node.path(CLIENT_FILES[kind])
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.rename(p)


def spark_props(path):
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, _, v = line.partition(" ")
            out.setdefault(k, []).append(v.strip())
    return out


def xml_props(path):
    root = ET.parse(path).getroot()
    out = {}
    for p in root.findall("property"):
        out.setdefault(p.findtext("name"), []).append(p.findtext("value"))
    return out


def assert_wired(node, port=9944):
    want = emr_conf.settings(port=port)
    spark = spark_props(node.path(CLIENT_FILES["spark-defaults"]))
    for k, v in want["spark-defaults"].items():
        assert spark[k] == [v], k
    assert spark["spark.master"] == ["yarn"]
    assert spark["spark.driver.extraClassPath"] == ["/usr/lib/hadoop-lzo/lib/*:/usr/share/aws/emr/emrfs/auxlib/*"]
    core = xml_props(node.path(CLIENT_FILES["core-site"]))
    assert core["fs.s3a.aws.credentials.provider"] == [PROVIDER]
    assert core["fs.defaultFS"] == ["hdfs://ip-10-0-0-1.ec2.internal:8020"]
    emrfs = xml_props(node.path(CLIENT_FILES["emrfs-site"]))
    assert emrfs["fs.s3.customAWSCredentialsProvider"] == [PROVIDER]
    assert emrfs["fs.s3.consistent"] == ["false"]
    for props in (core, emrfs):
        if port == 9944:
            assert "emrfs-role-agent.endpoint" not in props
        else:
            assert props["emrfs-role-agent.endpoint"] == [f"http://127.0.0.1:{port}"]


def test_waiter_wires_clients_when_their_files_appear(node):
    node.install()
    wait_until(lambda: node.waiters(), 10, "the waiter to start")
    time.sleep(0.5)  # the scenario: time passes with nothing there, and the waiter keeps polling
    assert node.waiters(), node.waiter_log()
    write_client_files(node)
    wait_until(lambda: not node.waiters(), 20, "the waiter to finish")
    assert "all clients wired" in node.waiter_log(), node.waiter_log()
    assert_wired(node)
    head = node.path(CLIENT_FILES["core-site"]).read_text().splitlines()[:3]
    assert head == CORE_SITE.splitlines()[:3]  # declaration, stylesheet and comment kept

    # Idempotent: another bootstrap run (and its waiter) leaves the wired files as they are.
    before = node.files()
    node.install()
    wait_until(lambda: not node.waiters(), 20, "the second waiter to finish")
    assert node.files() == before


def test_waiter_with_another_port(node):
    node.install("--port", "9955")
    write_client_files(node)
    wait_until(lambda: "all clients wired" in node.waiter_log(), 20, "the wiring")
    assert_wired(node, port=9955)
    spark = spark_props(node.path(CLIENT_FILES["spark-defaults"]))
    assert spark["spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"] == ["http://127.0.0.1:9955/v1/credentials"]


def test_s3_via_s3a_makes_s3a_serve_s3_uris(node):
    node.install("--s3-via-s3a")
    write_client_files(node)
    wait_until(lambda: "all clients wired" in node.waiter_log(), 20, "the wiring")
    assert_wired(node)
    core = xml_props(node.path(CLIENT_FILES["core-site"]))
    assert core["fs.s3.impl"] == ["org.apache.hadoop.fs.s3a.S3AFileSystem"]
    assert core["fs.AbstractFileSystem.s3.impl"] == ["org.apache.hadoop.fs.s3a.S3A"]
    # Without the flag, s3:// stays with EMRFS.
    assert "fs.s3.impl" not in emr_conf.settings()["core-site"]


def test_the_waiter_gives_up_after_its_timeout(node):
    # Under --root no node ever finishes provisioning: the waiter must not linger for two hours.
    node.install()
    waiter = [a for a in node.runs()[-1] if a.startswith("start-waiter ")]
    assert len(waiter) == 1 and waiter[0].endswith(" --timeout 60"), waiter
    node.stop_waiters()
    wait_until(lambda: not node.waiters(), 20, "the first waiter to stop")
    node.install("--wire-timeout", "1")
    wait_until(lambda: "gave up after 1s" in node.waiter_log(), 30, "the waiter to give up")
    wait_until(lambda: not node.waiters(), 20, "the waiter to exit")


def test_only_one_waiter_at_a_time(node):
    node.install()
    wait_until(lambda: len(node.waiters()) == 1, 10, "one waiter")
    first = node.waiters()
    node.install()
    wait_until(lambda: "another waiter is already running" in node.waiter_log(), 20, "the second waiter to give way")
    wait_until(lambda: node.waiters() == first, 30, "only the first waiter to remain")


def test_without_the_provider_jar_hadoop_is_left_alone(tmp_path):
    n = Node(tmp_path, jar=False)
    try:
        r = n.install()
        assert "no emrfs-role-agent-provider.jar" in r.stderr
        write_client_files(n)
        wait_until(lambda: "all clients wired" in n.waiter_log(), 20, "the wiring")
        assert n.path(CLIENT_FILES["core-site"]).read_text() == CORE_SITE
        assert n.path(CLIENT_FILES["emrfs-site"]).read_text() == EMRFS_SITE
        spark = spark_props(n.path(CLIENT_FILES["spark-defaults"]))
        assert spark["spark.executorEnv.AWS_CONTAINER_CREDENTIALS_FULL_URI"] == ["http://127.0.0.1:9944/v1/credentials"]
    finally:
        n.stop_waiters()


def test_waiter_on_emr_waits_for_node_provisioning(node):
    state = node.path("/emr/instance-controller/lib/info/job-flow-state.txt")
    state.parent.mkdir(parents=True)
    record = "localInstance {\n  instanceId: \"i-0\"\n  nodeProvisionCheckinRecord {\n    status: %s\n  }\n}\n"
    state.write_text(record % "PENDING")
    node.install()
    write_client_files(node)
    wait_until(lambda: "changed" in node.waiter_log() and "emrfs-site" in node.waiter_log(), 20, "the first wiring")
    assert_wired(node)
    # EMR may still rewrite a file before provisioning ends: the waiter wires it again.
    node.path(CLIENT_FILES["core-site"]).write_text(CORE_SITE)
    core_site = node.path(CLIENT_FILES["core-site"])
    wait_until(lambda: xml_props(core_site).get("fs.s3a.aws.credentials.provider") == [PROVIDER], 20, "the rewiring")
    assert node.waiters()
    state.write_text(record % "SUCCESSFUL")
    wait_until(lambda: not node.waiters(), 20, "the waiter to finish")
    assert "node provisioned" in node.waiter_log()
    assert_wired(node)


def test_emr_configurations_json_matches_the_wiring():
    with open(os.path.join(REPO, "config", "emr-configurations.json")) as f:
        doc = json.load(f)
    assert doc == emr_conf.emr_configurations()
    assert {c["Classification"] for c in doc} == {"spark-defaults", "core-site", "emrfs-site"}


def test_provisioned_reads_only_the_local_instance():
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(
            "jobFlowId: \"j-1\"\n"
            "masterInstance {\n  nodeProvisionCheckinRecord {\n    status: SUCCESSFUL\n  }\n}\n"
            "localInstance {\n  nodeProvisionCheckinRecord {\n    status: RUNNING\n  }\n}\n"
        )
    try:
        assert not emr_conf.provisioned(f.name)
        with open(f.name) as g:
            text = g.read().replace("status: RUNNING", "status: SUCCESSFUL")
        with open(f.name, "w") as g:
            g.write(text)
        assert emr_conf.provisioned(f.name)
        assert not emr_conf.provisioned(f.name + ".absent")
    finally:
        os.unlink(f.name)


# ---- central mapping updates ----------------------------------------------------------------


@pytest.fixture
def sync_env(tmp_path):
    binary = agent_binary()
    assert os.access(binary, os.X_OK), f"the agent binary is needed to check mappings: {binary}"
    etc = tmp_path / "etc"
    etc.mkdir()
    mappings = etc / "mappings"
    mappings.write_text(MAPPINGS)
    mappings.chmod(0o640)
    config = etc / "config.toml"
    config.write_text(CONFIG.replace("/etc/emrfs-role-agent/mappings", str(mappings)))
    s3 = S3Dir(str(tmp_path / "s3"))
    reloads = tmp_path / "reloads"
    reload_cmd = tmp_path / "reload.sh"
    reload_cmd.write_text(f"#!/bin/sh\necho reload >> {reloads}\n")
    reload_cmd.chmod(0o755)

    def run(uri):
        r = subprocess.run(
            [MAPPINGS_SYNC, "--uri", uri, "--dest", str(mappings), "--config", str(config), "--binary", binary,
             "--s3-copy", s3.copy_cmd, "--reload-cmd", str(reload_cmd)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        count = len(reloads.read_text().splitlines()) if reloads.exists() else 0
        return r, count

    return s3, mappings, run


def test_mappings_sync_reloads_only_on_change(sync_env):
    s3, mappings, run = sync_env
    uri = s3.put("agent/mappings.json", MAPPINGS)
    r, reloads = run(uri)
    assert r.returncode == 0 and "unchanged" in r.stderr and reloads == 0, r.stderr

    changed = MAPPINGS.replace("analysts", "engineers")
    s3.put("agent/mappings.json", changed)
    r, reloads = run(uri)
    assert r.returncode == 0, r.stderr
    assert reloads == 1
    assert mappings.read_text() == changed
    assert oct(mappings.stat().st_mode & 0o777) == "0o640"

    r, reloads = run(uri)
    assert r.returncode == 0 and reloads == 1
    assert not [p for p in os.listdir(mappings.parent) if p.startswith(".")]  # no temporary files left


def test_mappings_sync_keeps_the_old_mappings_when_the_new_ones_are_invalid(sync_env):
    s3, mappings, run = sync_env
    bad = MAPPINGS.replace("arn:aws:iam::123456789012:role/analysts", "not-a-role-arn")
    uri = s3.put("agent/mappings.json", bad)
    r, reloads = run(uri)
    assert r.returncode != 0
    assert "rejected" in r.stderr and "not-a-role-arn" in r.stderr, r.stderr
    assert f"{uri}:" in r.stderr and ".mappings.new" not in r.stderr, r.stderr  # named by where it came from
    assert reloads == 0
    assert mappings.read_text() == MAPPINGS
    assert not [p for p in os.listdir(mappings.parent) if p.startswith(".")]


# ---- shell scripts --------------------------------------------------------------------------


def shell_scripts():
    out = []
    for d in ("bootstrap", "scripts"):
        for name in sorted(os.listdir(os.path.join(REPO, d))):
            path = os.path.join(REPO, d, name)
            if not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                first = f.readline()
            if name.endswith(".sh") or re.match(rb"#!.*\b(ba)?sh\b", first):
                out.append(os.path.relpath(path, REPO))
    return out


def test_shell_scripts_are_shellcheck_clean():
    scripts = shell_scripts()
    assert "bootstrap/install.sh" in scripts and "scripts/release.sh" in scripts
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing (scripts/setup-test-env.sh installs it)"
    r = subprocess.run([shellcheck, "--severity=style", *scripts], cwd=REPO, capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


# ---- logrotate --------------------------------------------------------------------------------


def test_logrotate_rotates_the_audit_log_and_signals_the_agent(tmp_path):
    # config/logrotate, run by the real logrotate on a copy whose paths point into tmp_path.
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    assert os.access(logrotate, os.X_OK), "logrotate is missing (scripts/setup-test-env.sh installs it)"
    with open(os.path.join(REPO, "config", "logrotate")) as f:
        text = f.read()
    logs = tmp_path / "log"
    logs.mkdir(mode=0o750)
    signalled = tmp_path / "signalled"
    kill = tmp_path / "systemctl"
    kill.write_text(f'#!/bin/sh\necho "$*" >> {signalled}\n')
    kill.chmod(0o755)
    replacements = {
        "/var/log/emrfs-role-agent/audit.log": str(logs / "audit.log"),
        "create 0600 emrfs-role-agent emrfs-role-agent": "create 0600 root root",
        "/bin/systemctl": str(kill),
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    conf = tmp_path / "logrotate.conf"
    conf.write_text(text)
    record = '{"v":1,"event":"credentials"}\n'
    (logs / "audit.log").write_text(record)

    r = subprocess.run([logrotate, "--force", "-s", str(tmp_path / "state"), str(conf)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    rotated = [p for p in os.listdir(logs) if p != "audit.log"]
    assert len(rotated) == 1 and re.fullmatch(r"audit\.log-\d{8}-\d+", rotated[0]), rotated
    assert (logs / rotated[0]).read_text() == record  # kept whole; compressed on the next rotation
    assert (logs / "audit.log").read_text() == ""
    assert oct((logs / "audit.log").stat().st_mode & 0o777) == "0o600"
    # SIGHUP to the agent's main process only: it reopens the file.
    assert signalled.read_text().split() == ["kill", "--signal=HUP", "--kill-who=main", "emrfs-role-agent.service"]
