"""The systemd units: they verify cleanly, the agent's unit is hardened to an exposure of 2.0 or
lower, and it keeps the settings the agent's lifecycle depends on (SPEC §8, §9). The instance-metadata
units (SPEC §5.1): the socket holds the metadata port for the agent, and the redirect oneshot installs
the rules before the agent starts, inside a sandbox that still lets nft and iptables-legacy work."""

import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEMD = os.path.join(REPO, "systemd")
UNIT = os.path.join(SYSTEMD, "emrfs-role-agent.service")
COMPAT_UNIT = os.path.join(SYSTEMD, "compat", "emrfs-role-agent.service")
SOCKET = os.path.join(SYSTEMD, "emrfs-role-agent.socket")
IMDS_SOCKET = os.path.join(SYSTEMD, "emrfs-role-agent-imds.socket")
REDIRECT_UNIT = os.path.join(SYSTEMD, "emrfs-role-agent-imds-redirect.service")
COMPAT_REDIRECT_UNIT = os.path.join(SYSTEMD, "compat", "emrfs-role-agent-imds-redirect.service")
COMPAT_UNITS = sorted(os.listdir(os.path.join(SYSTEMD, "compat")))
UNITS = sorted(f for f in os.listdir(SYSTEMD) if f.endswith((".service", ".socket", ".timer")))
EXECUTABLES = [
    "/usr/local/bin/emrfs-role-agent",
    "/usr/local/lib/emrfs-role-agent/mappings-sync.sh",
    "/bin/kill",
    "/usr/sbin/logrotate",
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
        "emrfs-role-agent-imds-redirect.service",
        "emrfs-role-agent-imds.socket",
        "emrfs-role-agent-logrotate.service",
        "emrfs-role-agent-logrotate.timer",
        "emrfs-role-agent-mappings-sync.service",
        "emrfs-role-agent-mappings-sync.timer",
        "emrfs-role-agent.service",
        "emrfs-role-agent.socket",
    ]
    assert COMPAT_UNITS == ["emrfs-role-agent-imds-redirect.service", "emrfs-role-agent.service"]


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


@pytest.mark.parametrize("path", [UNIT, REDIRECT_UNIT], ids=["agent", "imds-redirect"])
def test_unit_exposure_is_at_most_2(path):
    # The redirect runs as root with CAP_NET_ADMIN on the host's network (it changes the firewall),
    # and still rates 2.0 or better.
    score, report = exposure(path)
    assert score <= MAX_EXPOSURE, report


def test_exposure_check_measures_the_hardening(tmp_path):
    # Without its sandbox the same unit scores far worse: the figure above comes from the hardening.
    sections = open(UNIT).read().split("# Sandbox.")[0] + "\n[Install]\nWantedBy=multi-user.target\n"
    bare = tmp_path / "emrfs-role-agent.service"
    bare.write_text(sections)
    score, report = exposure(str(bare))
    assert score > 5.0, report


@pytest.mark.parametrize("path", [UNIT, COMPAT_UNIT], ids=["main", "compat"])
def test_agent_unit_lifecycle_settings(path):
    unit = parse_unit(path)
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
    if path == UNIT:
        assert one["LogsDirectory"] == "emrfs-role-agent"  # /var/log/emrfs-role-agent, the audit log's home
    assert one["UMask"] == "0077"
    assert one.get("PrivateUsers", "no") == "no"
    families = set(" ".join(service["RestrictAddressFamilies"]).split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
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


def test_api_socket_holds_the_default_listen_address_for_the_agent():
    unit = parse_unit(SOCKET)
    socket_ = {k: v[-1] for k, v in unit["Socket"].items()}
    # server.listen's default; the bootstrap writes a drop-in for any other.
    assert unit["Socket"]["ListenStream"] == ["127.0.0.1:9944"]
    assert socket_.get("Accept", "no") == "no"
    assert unit["Install"]["WantedBy"] == ["sockets.target"]


@pytest.mark.parametrize("name", ["emrfs-role-agent.socket", "emrfs-role-agent-imds.socket"])
def test_socket_with_a_listen_drop_in_verifies(unit_root, name):
    # The drop-in the bootstrap writes for another listen (tests/e2e/test_bootstrap.py checks its text):
    # systemd reads it along with the unit.
    d = unit_root / "etc/systemd/system" / f"{name}.d"
    d.mkdir()
    (d / "listen.conf").write_text("[Socket]\nListenStream=\nListenStream=127.0.0.1:9950\nListenStream=[::1]:9950\n")
    rc, out = verify(unit_root, name)
    assert rc == 0 and out == "", out
    # The same check reads the drop-in: a broken one would not pass.
    (d / "listen.conf").write_text("[Socket]\nListenStream=\nListenStream=banana\n")
    rc, out = verify(unit_root, name)
    assert "banana" in out, out


def test_imds_socket_holds_the_metadata_port_for_the_agent():
    unit = parse_unit(IMDS_SOCKET)
    socket_ = {k: v[-1] for k, v in unit["Socket"].items()}
    # The [imds] listen default of the docs and example, a port only root can bind, and [::1] at the same port
    # (the IPv6 redirect's target); the bootstrap writes a drop-in for another one.
    assert unit["Socket"]["ListenStream"] == ["127.0.0.1:254", "[::1]:254"]
    # Handed to the agent with its API socket; the agent tells them apart by address.
    assert socket_["Service"] == "emrfs-role-agent.service"
    assert socket_.get("Accept", "no") == "no"
    assert unit["Install"]["WantedBy"] == ["sockets.target"]


@pytest.mark.parametrize("path", [REDIRECT_UNIT, COMPAT_REDIRECT_UNIT], ids=["main", "compat"])
def test_imds_redirect_unit(path):
    unit = parse_unit(path)
    service = unit["Service"]
    one = {k: v[-1] for k, v in service.items()}
    assert one["Type"] == "oneshot"
    assert one["RemainAfterExit"] == "yes"
    # The binary and config the bootstrap installs, and the agent's unit names.
    agent = {k: v[-1] for k, v in parse_unit(UNIT)["Service"].items()}
    binary, _, rest = agent["ExecStart"].partition(" serve ")
    assert service["ExecStart"] == [f"{binary} imds-redirect install {rest}"]
    assert service["ExecStart"] == [
        "/usr/local/bin/emrfs-role-agent imds-redirect install --config /etc/emrfs-role-agent/config.toml"
    ]
    # Fail closed: nothing removes the rules when the unit (or the agent) stops.
    assert "ExecStop" not in service and "ExecStopPost" not in service
    # Root, to change the firewall; nothing beyond what nft and iptables-legacy need.
    assert "User" not in service and "DynamicUser" not in service
    assert set(" ".join(service["CapabilityBoundingSet"]).split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert one.get("AmbientCapabilities", "") == ""
    assert one["NoNewPrivileges"] == "yes"
    assert one.get("PrivateNetwork", "no") == "no"  # the host's firewall, not a private one
    assert set(" ".join(service["RestrictAddressFamilies"]).split()) == {"AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"}
    # In place before the agent starts; after the network, and after anything that loads a whole rule set.
    assert "emrfs-role-agent.service" in " ".join(unit["Unit"]["Before"]).split()
    after = " ".join(unit["Unit"]["After"]).split()
    assert {"network-online.target", "nftables.service", "iptables.service"} <= set(after)
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    if path == REDIRECT_UNIT:
        assert one["ProtectSystem"] == "strict"
        assert service["ReadWritePaths"] == ["/run"]  # iptables' lock, /run/xtables.lock


def test_timer_runs_the_sync_service():
    timer = parse_unit(os.path.join(SYSTEMD, "emrfs-role-agent-mappings-sync.timer"))
    assert "OnUnitActiveSec" in timer["Timer"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]
    service = parse_unit(os.path.join(SYSTEMD, "emrfs-role-agent-mappings-sync.service"))["Service"]
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == ["/usr/local/lib/emrfs-role-agent/mappings-sync.sh"]
    assert service["EnvironmentFile"] == ["/etc/emrfs-role-agent/mappings-sync.env"]


# ---- the agent inside the unit's sandbox ------------------------------------------------------
#
# systemd itself does not run here, so the sandbox's process-level parts are rebuilt from the unit
# file and applied to a real agent: the system-call filter (SystemCallFilter=, default action EPERM,
# native architecture only), RestrictAddressFamilies=, MemoryDenyWriteExecute=, NoNewPrivileges=
# and the empty CapabilityBoundingSet=. The agent must then serve credentials from STS, identify
# its caller through netlink, reload on SIGHUP and write its audit log.

LAUNCHER = r'''
"""launcher.py SPEC.json -- ARGV...: load a seccomp filter built from SPEC, then exec ARGV."""
import ctypes, ctypes.util, errno, json, os, sys

spec = json.load(open(sys.argv[1]))
argv = sys.argv[sys.argv.index("--") + 1:]
lib = ctypes.CDLL(ctypes.util.find_library("seccomp"), use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]


class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                       ctypes.POINTER(Cmp)]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ALLOW, EQ, MASKED_EQ = 0x7FFF0000, 4, 7
PROT_WRITE, PROT_EXEC = 2, 4
ctx = lib.seccomp_init(0x00050000 | errno.EPERM)


def allow(name, *cmps):
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:
        return  # not a system call of this architecture
    arr = (Cmp * max(1, len(cmps)))(*[Cmp(*c) for c in cmps])
    lib.seccomp_rule_add_array(ctx, ALLOW, nr, len(cmps), arr)


special = {"socket", "mmap", "mprotect", "pkey_mprotect"}
for name in spec["allow"]:
    if name not in special:
        allow(name)
if "socket" in spec["allow"]:
    for family in spec["families"]:
        allow("socket", (0, EQ, family, 0))
for name in ("mmap", "mprotect", "pkey_mprotect"):
    if name not in spec["allow"]:
        continue
    if not spec["mdwe"]:
        allow(name)
        continue
    allow(name, (2, MASKED_EQ, PROT_EXEC, 0))
    if name == "mmap":
        allow(name, (2, MASKED_EQ, PROT_WRITE, 0))
if lib.seccomp_load(ctx) != 0:
    sys.exit("seccomp_load failed")
os.execv(argv[0], argv)
'''

FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16}


def expand_syscall_group(name, seen=None):
    """The system calls of a systemd group (e.g. @system-service), nested groups included."""
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run([systemd_analyze(), "syscall-filter", name], capture_output=True, text=True, check=True)
    calls = set()
    for line in out.stdout.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        calls |= expand_syscall_group(item, seen) if item.startswith("@") else {item}
    return calls


def sandbox_spec(unit_path):
    service = parse_unit(unit_path)["Service"]
    allowed, denied = set(), set()
    for value in service["SystemCallFilter"]:
        deny = value.startswith("~")
        items = set()
        for item in value.lstrip("~").split():
            items |= expand_syscall_group(item) if item.startswith("@") else {item}
        (denied if deny else allowed).update(items)
    assert service["SystemCallErrorNumber"] == ["EPERM"]
    assert service["SystemCallArchitectures"] == ["native"]
    families = [FAMILIES[f] for f in " ".join(service["RestrictAddressFamilies"]).split()]
    return {
        "allow": sorted(allowed - denied),
        "families": families,
        "mdwe": service["MemoryDenyWriteExecute"] == ["yes"],
    }


@pytest.fixture
def sandbox(tmp_path):
    """A command prefix that runs a program inside the unit's process sandbox."""
    import json
    import sys

    assert shutil.which("setpriv"), "setpriv is missing (util-linux)"
    spec = tmp_path / "sandbox.json"
    spec.write_text(json.dumps(sandbox_spec(UNIT)))
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    return ["setpriv", "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--",
            sys.executable, str(launcher), str(spec), "--"]  # fmt: skip


def test_sandbox_is_real(sandbox):
    # What the filter refuses: a write+execute mapping, CPU pinning (@resources), a packet socket.
    import sys

    code = (
        "import mmap, os, socket\n"
        "def attempt(f):\n"
        "    try:\n"
        "        f(); return 'ok'\n"
        "    except (OSError, PermissionError) as e:\n"
        "        return e.errno\n"
        "print(attempt(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)),\n"
        "      attempt(lambda: os.sched_setaffinity(0, os.sched_getaffinity(0))),\n"
        "      attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),\n"
        "      attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()))\n"
        "print(open('/proc/self/status').read())\n"
    )
    r = subprocess.run(sandbox + [sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    first, status = r.stdout.split("\n", 1)
    assert first.split() == ["1", "1", "1", "ok"], first  # EPERM, EPERM, EPERM, allowed
    assert re.search(r"^Seccomp:\s+2$", status, re.M)
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert re.search(r"^CapEff:\s+0+$", status, re.M)


def test_agent_works_inside_the_units_sandbox(sandbox, moto, agent_factory, tmp_path, monkeypatch):
    import signal

    from helpers.agent import agent_binary
    from helpers.net import wait_until

    wrapper = tmp_path / "sandboxed-agent"
    wrapper.write_text("#!/bin/sh\nexec " + " ".join(sandbox) + f' {agent_binary()} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("EMRFS_ROLE_AGENT_BIN", str(wrapper))

    analytics = moto.role("analytics")
    agent = agent_factory(
        mappings=[{"name": "analytics", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]}],
        config={"fallback": {"mode": "deny"}},
    )
    with open(f"/proc/{agent.pid}/status") as f:
        status = f.read()
    assert re.search(r"^Seccomp:\s+2$", status, re.M), "the agent is not under the filter"
    assert re.search(r"^CapEff:\s+0+$", status, re.M)

    r = agent.credentials(location=f"s3://{analytics['bucket']}/reports/x")
    assert r.status_code == 200, r.text
    assert r.json()["RoleArn"] == analytics["arn"]
    denied = agent.credentials(location="s3://elsewhere/x")
    assert denied.status_code == 403

    records = [x for x in agent.audit_records() if x.get("event") == "credentials"]
    assert [x["outcome"] for x in records] == ["allow", "deny"]
    assert records[0]["caller_uid"] == os.getuid()  # from the kernel, through netlink sock_diag
    assert records[0]["source"] == "sts"
    # A caller other than the agent's own user is named as itself: nobody asks (the system python, which
    # nobody can run), under the filter the agent still tells the uids apart.
    code = ("import sys, urllib.request, urllib.error\n"
            "req = urllib.request.Request(sys.argv[1], headers={'Authorization': sys.argv[2]})\n"
            "try:\n    print(urllib.request.urlopen(req, timeout=30).status)\n"
            "except urllib.error.HTTPError as e:\n    print(e.code)\n")
    url = f"{agent.credentials_url}?location=s3://elsewhere/x"
    other = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                            code, url, agent.token], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert other.stdout.strip() == "403", other.stderr
    records = [x for x in agent.audit_records() if x.get("event") == "credentials"]
    assert (records[2]["caller_uid"], records[2]["caller_user"]) == (65534, "nobody"), records[2]

    loaded = len([x for x in agent.audit_records() if x.get("event") == "config_loaded"])
    agent.send_signal(signal.SIGHUP)
    wait_until(lambda: len([x for x in agent.audit_records() if x.get("event") == "config_loaded"]) > loaded,
               30, "config_loaded after SIGHUP")
    assert agent.credentials(location=f"s3://{analytics['bucket']}/reports/x").status_code == 200
    assert agent.stop() == 0


# Directives (and values) that systemd 219, Amazon Linux 2's, understands. Anything newer in the
# compat unit would be ignored there at best; a system-call filter made of @groups would leave the
# agent no system call at all.
SYSTEMD_219 = {
    "Unit": {"Description", "Documentation", "Wants", "Requires", "After", "Before"},
    "Service": {
        "Type", "NotifyAccess", "WatchdogSec", "ExecStart", "ExecReload", "Restart", "RestartSec",
        "RestartPreventExitStatus", "TimeoutStartSec", "TimeoutStopSec", "KillMode", "User", "Group", "UMask",
        "LimitNOFILE", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
        "RestrictAddressFamilies", "SystemCallArchitectures", "RemainAfterExit", "CapabilityBoundingSet",
    },
    "Install": {"WantedBy"},
}


@pytest.mark.parametrize("name", COMPAT_UNITS)
def test_compat_unit_uses_only_what_systemd_219_knows(name):
    unit = parse_unit(os.path.join(SYSTEMD, "compat", name))
    for section, keys in unit.items():
        unknown = set(keys) - SYSTEMD_219[section]
        assert not unknown, f"[{section}] {sorted(unknown)}"
    service = {k: v[-1] for k, v in unit["Service"].items()}
    assert service["ProtectSystem"] in ("yes", "full")  # "strict" came in 232
    assert service["ProtectHome"] in ("yes", "read-only")
    assert "SystemCallFilter" not in service


@pytest.mark.parametrize("name", COMPAT_UNITS)
def test_compat_unit_verifies_without_a_complaint(unit_root, name):
    shutil.copy(os.path.join(SYSTEMD, "compat", name), unit_root / "etc/systemd/system" / name)
    rc, out = verify(unit_root, name)
    assert rc == 0 and out == "", out


# ---- the redirect inside its unit's sandbox ---------------------------------------------------
#
# As for the agent above: the process-level sandbox of emrfs-role-agent-imds-redirect.service rebuilt
# from the unit (system-call filter, address families, no new privileges, the two capabilities) and
# applied to the real `imds-redirect`, in a network namespace of the test's own: the machine's own
# firewall is never touched.


@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_redirect_works_inside_its_units_sandbox(tmp_path, backend):
    import json
    import sys

    from helpers.agent import agent_binary
    from helpers.osusers import require_root

    require_root("changing firewall rules in a network namespace")
    tool = {"nft": "nft", "iptables": "iptables-legacy"}[backend]
    assert shutil.which(tool) and shutil.which("unshare") and shutil.which("setpriv"), f"{tool}, unshare, setpriv"
    spec = tmp_path / "sandbox.json"
    spec.write_text(json.dumps(sandbox_spec(REDIRECT_UNIT)))
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    config = tmp_path / "config.toml"
    config.write_text('[imds]\nlisten = "127.0.0.1:9945"\nexempt_uids_below = 1000\n')
    caps = ",".join("+" + c.removeprefix("CAP_").lower() for c in
                    " ".join(parse_unit(REDIRECT_UNIT)["Service"]["CapabilityBoundingSet"]).split())  # fmt: skip
    sandboxed = ["setpriv", "--no-new-privs", f"--bounding-set=-all,{caps}", "--inh-caps=-all", "--",
                 sys.executable, str(launcher), str(spec), "--", agent_binary(), "imds-redirect"]  # fmt: skip
    run = " ".join(sandboxed) + " {} --config " + str(config) + " --backend " + backend
    script = "\n".join(
        [
            "set -e",
            run.format("install"),
            run.format("install"),  # idempotent
            run.format("status"),
            run.format("remove"),
            "rc=0; " + run.format("status") + " || rc=$?; test $rc -eq 3",  # not installed: exit 3
        ]
    )
    # A network namespace of its own (unshare -n): the rules exist only there.
    r = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # Two installs and a status (an install says so once more for the IPv6 address where the node has IPv6).
    installed = [line for line in r.stdout.splitlines() if line.startswith("installed (")]
    assert len([line for line in installed if "fd00:ec2::254" not in line]) == 3, r.stdout
    assert "127.0.0.1:9945" in r.stdout and "uids below 1000" in r.stdout, r.stdout
    assert "\nremoved\n" in r.stdout and r.stdout.rstrip().endswith(f"not installed ({backend})"), r.stdout
