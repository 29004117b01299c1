"""The release build (scripts/release.sh): a tarball whose binary runs on glibc 2.26 (Amazon Linux 2)
and answers --version, with everything an EMR install needs.

The build takes minutes, so its output is cached per source state under
~/.cache/emrfs-role-agent/release/<commit>[-<hash of uncommitted changes>]/; a run for an unchanged
tree reuses it."""

import hashlib
import os
import re
import shutil
import subprocess
import tarfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("EMRFS_RELEASE_CACHE") or os.path.expanduser("~/.cache/emrfs-role-agent")
GLIBC_MAX = (2, 26)
BUILD_TIMEOUT = 3600
# A cold build (toolchain install included) can outlast the suite's per-test timeout.
pytestmark = pytest.mark.timeout(BUILD_TIMEOUT + 300)


def cargo_version():
    with open(os.path.join(REPO, "Cargo.toml")) as f:
        m = re.search(r'^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', f.read(), re.M | re.S)
    return m.group(1)


def source_state():
    """The commit, plus a hash of uncommitted changes to what the release is built from."""
    git = ["git", "-C", REPO]
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    paths = ["Cargo.toml", "Cargo.lock", "src", "systemd", "bootstrap", "config", "docs", "clients", "scripts"]
    diff = subprocess.run(git + ["diff", "HEAD", "--", *paths], capture_output=True, check=True).stdout
    untracked = subprocess.run(
        git + ["ls-files", "--others", "--exclude-standard", "--", *paths], capture_output=True, check=True
    ).stdout
    if not diff and not untracked:
        return commit
    h = hashlib.sha256(diff + untracked)
    for rel in untracked.decode().split():
        with open(os.path.join(REPO, rel), "rb") as f:
            h.update(f.read())
    return f"{commit}-{h.hexdigest()[:12]}"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    name = f"emrfs-role-agent-{cargo_version()}-x86_64-linux"
    out = os.path.join(CACHE, "release", source_state())
    tarball = os.path.join(out, f"{name}.tar.gz")
    if not (os.path.exists(tarball) and os.path.exists(tarball + ".sha256")):
        os.makedirs(out, exist_ok=True)
        r = subprocess.run(
            [os.path.join(REPO, "scripts", "release.sh"), "--out", out],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-5000:]
        assert r.stdout.strip().splitlines()[-1] == tarball
    extract = tmp_path_factory.mktemp("release")
    with tarfile.open(tarball) as t:
        t.extractall(extract, filter="data")
    return {"name": name, "tarball": tarball, "dir": extract / name}


def glibc_versions(binary):
    out = subprocess.run(["objdump", "-T", str(binary)], capture_output=True, text=True, check=True).stdout
    return sorted({tuple(int(x) for x in v.split(".")) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", out)})


def test_binary_needs_at_most_glibc_2_26(release):
    binary = release["dir"] / "bin" / "emrfs-role-agent"
    versions = glibc_versions(binary)
    assert versions, "no GLIBC_ symbol versions: not a dynamically linked glibc binary?"
    assert max(versions) <= GLIBC_MAX, f"needs GLIBC_{'.'.join(map(str, max(versions)))}"
    elf = subprocess.run(["readelf", "-h", str(binary)], capture_output=True, text=True, check=True).stdout
    assert "X86-64" in elf and ("EXEC" in elf or "DYN" in elf)


def test_release_refuses_a_binary_that_needs_a_newer_glibc(tmp_path):
    # The debug build is linked against this machine's glibc (newer than 2.26): the release script must
    # refuse to package it.
    from helpers.agent import agent_binary

    binary = agent_binary()
    assert max(glibc_versions(binary)) > GLIBC_MAX, "this machine's glibc is too old to make the point"
    r = subprocess.run(
        [os.path.join(REPO, "scripts", "release.sh"), "--binary", binary, "--no-jar", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode != 0
    assert "needs GLIBC_" in r.stderr and "2.26" in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())


def test_binary_runs_version(release):
    binary = release["dir"] / "bin" / "emrfs-role-agent"
    r = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"emrfs-role-agent {cargo_version()}"


def test_binary_checks_a_config(release, tmp_path):
    binary = release["dir"] / "bin" / "emrfs-role-agent"
    example = release["dir"] / "config" / "example.toml"
    assert example.exists()
    r = subprocess.run([str(binary), "check", "--config", str(example)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nlisten = [\"0.0.0.0:9944\"]\n")
    r = subprocess.run([str(binary), "check", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 78


def test_tarball_contents(release):
    with tarfile.open(release["tarball"]) as t:
        members = {m.name: m for m in t.getmembers()}
    name = release["name"]
    expected = [
        "bin/emrfs-role-agent",
        "systemd/emrfs-role-agent.service",
        "systemd/emrfs-role-agent-mappings-sync.service",
        "systemd/emrfs-role-agent-mappings-sync.timer",
        "systemd/compat/emrfs-role-agent.service",
        "systemd/emrfs-role-agent-imds.socket",
        "systemd/emrfs-role-agent-imds-redirect.service",
        "systemd/compat/emrfs-role-agent-imds-redirect.service",
        "bootstrap/install.sh",
        "bootstrap/wire-clients.sh",
        "bootstrap/mappings-sync.sh",
        "bootstrap/emr_conf.py",
        "config/example.toml",
        "config/emr-configurations.json",
        "config/logrotate",
        "docs/install-on-emr.md",
        f"python/emrfs_role_agent-{cargo_version()}-py3-none-any.whl",
        "VERSION",
    ]
    for rel in expected:
        assert f"{name}/{rel}" in members, rel
    for rel in ("bin/emrfs-role-agent", "bootstrap/install.sh"):
        assert members[f"{name}/{rel}"].mode & 0o111, rel
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    assert all(n == name or n.startswith(name + "/") for n in members)
    assert not [n for n in members if "__pycache__" in n or n.endswith(".pyc")]
    if shutil.which("javac"):
        # The provider jar is built whenever a JDK is there (scripts/build-emrfs-provider.sh), the hooks jar
        # beside it.
        assert f"{name}/lib/emrfs-role-agent-provider.jar" in members
        assert f"{name}/lib/emrfs-role-agent-hooks.jar" in members


def test_sha256_file(release):
    with open(release["tarball"] + ".sha256") as f:
        line = f.read()
    with open(release["tarball"], "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert line == f"{digest}  {os.path.basename(release['tarball'])}\n"
