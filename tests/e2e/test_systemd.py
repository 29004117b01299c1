"""The systemd units: they verify cleanly, the agent's unit is hardened to an exposure of 2.0 or
lower, and it keeps the settings the agent's lifecycle depends on (SPEC §8, §9)."""

import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEMD = os.path.join(REPO, "systemd")
UNIT = os.path.join(SYSTEMD, "emrfs-role-agent.service")
UNITS = sorted(f for f in os.listdir(SYSTEMD) if f.endswith((".service", ".timer")))
EXECUTABLES = [
    "/usr/local/bin/emrfs-role-agent",
    "/usr/local/lib/emrfs-role-agent/mappings-sync.sh",
    "/bin/kill",
]
MAX_EXPOSURE = 2.0


def systemd_analyze():
    path = shutil.which("systemd-analyze")
    assert path, "systemd-analyze is missing (scripts/setup-test-env.sh installs it)"
    return path


def parse_unit(path):
    """[section] -> key -> list of values (systemd allows repeated keys)."""
    sections, current = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), {})
                continue
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture
def unit_root(tmp_path):
    """A root with the system's own units, stand-ins for the executables the units name, and ours:
    `systemd-analyze verify --root` then checks our units as they would be installed."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for exe in EXECUTABLES:
        p = root / exe.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("#!/bin/sh\n")
        p.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    for name in UNITS:
        shutil.copy(os.path.join(SYSTEMD, name), root / "etc/systemd/system" / name)
    return root


def verify(root, name):
    r = subprocess.run(
        [systemd_analyze(), "verify", f"--root={root}", name], capture_output=True, text=True, timeout=120
    )
    return r.returncode, (r.stdout + r.stderr).strip()


def test_all_units_are_present():
    assert UNITS == [
        "emrfs-role-agent-mappings-sync.service",
        "emrfs-role-agent-mappings-sync.timer",
        "emrfs-role-agent.service",
    ]


@pytest.mark.parametrize("name", UNITS)
def test_unit_verifies_without_a_complaint(unit_root, name):
    rc, out = verify(unit_root, name)
    assert rc == 0 and out == "", out


def test_verify_would_catch_a_broken_unit(unit_root):
    # The same check against a unit with a misspelt key and an unparsable value: it must complain.
    path = unit_root / "etc/systemd/system/emrfs-role-agent.service"
    text = path.read_text()
    path.write_text(text.replace("NotifyAccess=main", "NotifyAcess=main").replace("UMask=0077", "UMask=banana"))
    rc, out = verify(unit_root, "emrfs-role-agent.service")
    assert "NotifyAcess" in out and "banana" in out, out


def exposure(path):
    r = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", path],
        capture_output=True,
        text=True,
        timeout=120,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    return float(m.group(1)), r.stdout


def test_agent_unit_exposure_is_at_most_2(tmp_path):
    score, report = exposure(UNIT)
    assert score <= MAX_EXPOSURE, report


def test_exposure_check_measures_the_hardening(tmp_path):
    # Without its sandbox the same unit scores far worse: the figure above comes from the hardening.
    sections = open(UNIT).read().split("# Sandbox.")[0] + "\n[Install]\nWantedBy=multi-user.target\n"
    bare = tmp_path / "emrfs-role-agent.service"
    bare.write_text(sections)
    score, report = exposure(str(bare))
    assert score > 5.0, report


def test_agent_unit_lifecycle_settings():
    unit = parse_unit(UNIT)
    service = unit["Service"]
    one = {k: v[-1] for k, v in service.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert re.fullmatch(r"\d+s?", one["WatchdogSec"]) and int(one["WatchdogSec"].rstrip("s")) >= 10
    assert one["ExecStart"] == "/usr/local/bin/emrfs-role-agent serve --config /etc/emrfs-role-agent/config.toml"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["Restart"] == "on-failure"
    assert one["RestartPreventExitStatus"] == "78"
    assert one["User"] == "emrfs-role-agent"
    assert one["LogsDirectory"] == "emrfs-role-agent"  # /var/log/emrfs-role-agent, the audit log's home
    assert one["UMask"] == "0077"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_agent_unit_leaves_open_what_the_agent_needs():
    service = parse_unit(UNIT)["Service"]
    one = {k: v[-1] for k, v in service.items()}
    # Callers' uids must be seen as they are: a private user namespace would map them to nobody.
    assert one.get("PrivateUsers", "no") == "no"
    assert one.get("DynamicUser", "no") == "no"
    # Loopback TCP, NETLINK_SOCK_DIAG for the peer's uid, AF_UNIX for journald/sd_notify/nss.
    families = set(" ".join(service["RestrictAddressFamilies"]).split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    # STS and the instance metadata service must stay reachable.
    assert "IPAddressDeny" not in service
    assert one.get("PrivateNetwork", "no") == "no"
    # Writes go only to its own directories.
    assert one["ProtectSystem"] == "strict"
    assert "ReadWritePaths" not in service
    # No capability is needed: sock_diag dumps and loopback ports above 1024 need none.
    assert one["CapabilityBoundingSet"] == ""
    assert one["NoNewPrivileges"] == "yes"


def test_timer_runs_the_sync_service():
    timer = parse_unit(os.path.join(SYSTEMD, "emrfs-role-agent-mappings-sync.timer"))
    assert "OnUnitActiveSec" in timer["Timer"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]
    service = parse_unit(os.path.join(SYSTEMD, "emrfs-role-agent-mappings-sync.service"))["Service"]
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == ["/usr/local/lib/emrfs-role-agent/mappings-sync.sh"]
    assert service["EnvironmentFile"] == ["/etc/emrfs-role-agent/mappings-sync.env"]
