"""The bootstrap action never replaces a good install with a bad one (SPEC §9).

It stages everything (release verified and extracted, config and mappings fetched), checks the staged config
and mappings with the staged agent binary, and only then changes the node; a failure or an interruption after
that (the agent does not start or become ready, SIGTERM, SIGINT) puts every file back as it was, removes what
the run added, and brings the previous agent back. Run with --root and the REAL agent binary inside the
release (the check is the binary's, so a stand-in would prove nothing)."""

import hashlib
import os
import re
import signal
import subprocess

import pytest

from helpers.net import wait_until
from test_bootstrap import CONFIG, IMDS_CONFIG, IMDS_OFF_CONFIG, INSTALL, MAPPINGS, PROG, Node, package

GOOD_ROLE = "arn:aws:iam::222222222222:role/partner-writer"
# A mistyped role ARN (one colon short before the account), the mistake an operator makes.
BAD_CONFIG = CONFIG.replace(GOOD_ROLE, "arn:aws:iam:222222222222:role/partner-writer")
BAD_MAPPINGS = MAPPINGS.replace("arn:aws:iam::123456789012:role/analysts", "arn:aws:iam:123456789012:role/analysts")
CONFIG_V2 = CONFIG + '\n[fallback]\nmode = "deny"\n'
UNIT = f"{PROG}.service"


@pytest.fixture
def node(tmp_path):
    n = Node(tmp_path, real_binary=True)
    yield n
    n.stop_waiters()


def installed(node, *args):
    """A good install, its client waiter stopped (so that a later one would show)."""
    node.install(*args)
    node.stop_waiters()
    wait_until(lambda: not node.waiters(), 20, "the first run's waiter to stop")


def state(node):
    """Everything installed under the root: files with mode, content hash and mtime, and directories."""
    files = {p: (mode, digest, os.stat(node.root / p).st_mtime_ns) for p, (mode, digest) in node.files().items()}
    return files, node.dirs()


def assert_nothing_installed(node):
    assert node.files() == {}, node.files()
    # Only the bootstrap's own log directory (not an installed file) is left.
    assert set(node.dirs()) <= {".", "var", "var/log", f"var/log/{PROG}-bootstrap"}, node.dirs()


def new_release(node, version="0.0.1-test"):
    """A second release (another binary) in S3, used by the next install."""
    tarball = package(node.tmp / f"build-{version}", version_text=f"{PROG} {version}", real_binary=True)
    with open(tarball, "rb") as f:
        data = f.read()
    node.release_uri = node.s3.put(os.path.basename(tarball), data)
    node.sha256 = hashlib.sha256(data).hexdigest()


# ---- checked before anything changes ---------------------------------------------------------


def test_root_mode_checks_the_staged_mappings_for_an_absolute_mappings_file(node):
    # The guide's config names /etc/emrfs-role-agent/mappings; under --root the check must read the
    # mappings this run installs, not the real machine's /etc.
    assert not os.path.exists("/etc/emrfs-role-agent/mappings")
    r = node.install()
    assert "unused" not in r.stderr, r.stderr
    assert node.path("/etc/emrfs-role-agent/mappings").read_text() == MAPPINGS
    assert node.path("/etc/emrfs-role-agent/config.toml").read_text() == CONFIG


def test_a_relative_mappings_file_is_the_installed_mappings(node):
    node.configure(CONFIG.replace('"/etc/emrfs-role-agent/mappings"', '"mappings"'))
    r = node.install()
    assert "warning" not in r.stderr, r.stderr


def test_a_mappings_file_elsewhere_is_warned_about_and_checked_where_it_is(node):
    node.configure(CONFIG.replace("/etc/emrfs-role-agent/mappings", "/etc/emrfs-role-agent/other"))
    r = node.install(check=False)
    assert "the config's mappings_file is /etc/emrfs-role-agent/other" in r.stderr, r.stderr
    # Under --root, that path is read under the root, where nothing put it.
    assert r.returncode != 0 and f"{node.root}/etc/emrfs-role-agent/other: (file): cannot read" in r.stderr, r.stderr
    assert_nothing_installed(node)
    node.path("/etc/emrfs-role-agent").mkdir(parents=True)
    node.path("/etc/emrfs-role-agent/other").write_text(MAPPINGS)
    r = node.install()
    assert "where the agent does not read them" in r.stderr, r.stderr


def test_root_mode_without_mappings_reads_the_mappings_file_under_the_root(node):
    node.install()
    # A later run without --mappings: the installed mappings (under the root) are what the config names.
    r = node.install(mappings=False)
    assert r.returncode == 0, r.stderr
    node.path("/etc/emrfs-role-agent/mappings").write_text(BAD_MAPPINGS)
    r = node.install(mappings=False, check=False)
    assert r.returncode != 0
    assert "not an IAM role ARN" in r.stderr and "the configuration is invalid" in r.stderr, r.stderr


def test_root_mode_looks_for_emrs_own_role_mappings_in_the_site_files_under_the_root(node):
    site = node.path("/etc/hadoop/conf/core-site.xml")
    site.parent.mkdir(parents=True)
    site.write_text(
        "<configuration><property><name>fs.s3.authorization.roleMapping</name>"
        "<value>arn:aws:iam::123456789012:role/x:u:alice</value></property></configuration>\n"
    )
    r = node.install()
    assert f"warning: {site}:1: fs.s3.authorization.roleMapping is set" in r.stderr, r.stderr


def test_a_rerun_with_a_bad_config_keeps_the_good_one(node):
    node.install()
    before = state(node)
    node.configure(BAD_CONFIG)
    r = node.install(check=False)
    assert r.returncode != 0
    assert "not an IAM role ARN" in r.stderr and "the configuration is invalid" in r.stderr, r.stderr
    # The mistake is named where the operator made it: the config in S3, line and column.
    assert f"{node.config_uri}:8:8: mapping[0].role" in r.stderr, r.stderr
    assert state(node) == before
    assert node.path("/etc/emrfs-role-agent/config.toml").read_text() == CONFIG
    # Nothing was done to the system: no chown, no reload, no restart.
    assert node.runs()[-1] == [], node.runs()[-1]


def test_a_rerun_with_bad_mappings_keeps_the_good_ones(node):
    node.install()
    before = state(node)
    node.s3.put("agent/mappings.json", BAD_MAPPINGS)
    r = node.install(check=False)
    assert r.returncode != 0
    assert "not an IAM role ARN" in r.stderr and "the configuration is invalid" in r.stderr, r.stderr
    assert state(node) == before
    assert node.path("/etc/emrfs-role-agent/mappings").read_text() == MAPPINGS
    assert node.runs()[-1] == [], node.runs()[-1]


def test_a_first_install_with_a_bad_config_installs_nothing(node):
    node.configure(BAD_CONFIG)
    r = node.install(check=False)
    assert r.returncode != 0
    assert "the configuration is invalid" in r.stderr, r.stderr
    assert_nothing_installed(node)
    assert node.runs() == [[]]  # no user created, nothing enabled or started


def test_a_wrong_sha256_installs_nothing(node):
    r = node.install("--sha256", "0" * 64, check=False)
    assert r.returncode != 0
    assert "SHA-256" in r.stderr
    assert_nothing_installed(node)
    assert node.runs() == [[]]


def test_a_changed_config_keeps_the_previous_one_beside_it(node):
    node.install()
    node.configure(CONFIG_V2)
    node.install()
    assert node.path("/etc/emrfs-role-agent/config.toml").read_text() == CONFIG_V2
    previous = node.path("/etc/emrfs-role-agent/config.toml.previous")
    assert previous.read_text() == CONFIG
    assert oct(previous.stat().st_mode & 0o777) == "0o640"
    assert node.owners()["/etc/emrfs-role-agent/config.toml.previous"] == f"root:{PROG}"
    # Unchanged mappings: no .previous for them.
    assert not node.path("/etc/emrfs-role-agent/mappings.previous").exists()
    changed = MAPPINGS.replace("analysts", "engineers")
    node.s3.put("agent/mappings.json", changed)
    node.install()
    assert node.path("/etc/emrfs-role-agent/mappings.previous").read_text() == MAPPINGS
    assert node.path("/etc/emrfs-role-agent/config.toml.previous").read_text() == CONFIG


# ---- rolled back after a later failure -------------------------------------------------------


def rolled_back_part(run):
    """The actions of a run after the rollback began."""
    assert "# rollback" in run, run
    return run[run.index("# rollback") + 1 :]


def test_an_agent_that_does_not_become_ready_is_rolled_back(node):
    node.install()
    before = state(node)
    node.configure(CONFIG_V2)
    new_release(node)
    r = node.install("--jvm-hooks", "--mappings-refresh", "5min", "--fail-at", "started", check=False)
    assert r.returncode != 0
    assert "failing at step started (--fail-at)" in r.stderr, r.stderr
    assert state(node) == before
    assert "0.0.0-test" in node.path(f"/usr/local/bin/{PROG}").read_text()
    assert node.path("/etc/emrfs-role-agent/config.toml").read_text() == CONFIG
    # What was rolled back is logged, file by file.
    assert "rolled back: restored /etc/emrfs-role-agent/config.toml" in r.stderr, r.stderr
    assert f"rolled back: restored /usr/local/bin/{PROG}" in r.stderr, r.stderr
    assert "rolled back: removed /usr/share/aws/emr/emrfs/auxlib/emrfs-role-agent-hooks.jar" in r.stderr, r.stderr
    assert "rolled back: removed /etc/emrfs-role-agent/config.toml.previous" in r.stderr, r.stderr
    assert re.search(r"rolled back \d+ changes", r.stderr), r.stderr
    undo = rolled_back_part(node.runs()[-1])
    # The timer this run added is stopped and disabled; units reloaded; the previous agent restarted.
    sync_timer = f"{PROG}-mappings-sync.timer"
    order = [undo.index(a) for a in (
        f"systemctl stop {sync_timer}",
        f"systemctl disable {sync_timer}",
        "systemctl daemon-reload",
        f"systemctl restart {UNIT}",
    )]  # fmt: skip
    assert order == sorted(order), undo
    assert not [a for a in undo if a.startswith(("userdel", "groupdel"))], undo


def interrupt_at(node, step, sig, *extra):
    """Runs the bootstrap paused at `step`, sends it `sig` once it says so, and returns (returncode, stderr)."""
    argv = [
        INSTALL, "--root", str(node.root), "--s3-copy", node.s3.copy_cmd, "--release", node.release_uri,
        "--config", node.config_uri, "--sha256", node.sha256, "--mappings", node.mappings_uri,
        "--wire-poll", "0.1", "--systemd-version", "252", "--pause-at", step, *extra,
    ]  # fmt: skip
    p = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in p.stderr:
            lines.append(line)
            if f"paused at step {step}" in line:
                p.send_signal(sig)
                break
        lines.extend(p.stderr)
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, "".join(lines)


def test_an_interrupted_rerun_leaves_the_node_as_it_was(node):
    installed(node)
    before = state(node)
    node.configure(CONFIG_V2)
    new_release(node)
    rc, err = interrupt_at(node, "started", signal.SIGTERM, "--jvm-hooks", "--mappings-refresh", "5min")
    assert rc == 128 + signal.SIGTERM, err
    assert "interrupted (SIGTERM)" in err, err
    assert state(node) == before
    run = node.runs()[-1]
    # The run had replaced the binary and restarted the agent before the signal came.
    assert f"systemctl restart {UNIT}" in run[: run.index("# rollback")], run
    undo = rolled_back_part(run)
    assert undo.index("systemctl daemon-reload") < undo.index(f"systemctl restart {UNIT}"), undo
    assert not node.waiters()  # the client waiter is started only once the agent is ready


def test_an_interrupted_first_install_leaves_nothing(node):
    rc, err = interrupt_at(node, "started", signal.SIGINT)
    assert rc == 128 + signal.SIGINT, err
    assert "interrupted (SIGINT)" in err, err
    assert_nothing_installed(node)
    run = node.runs()[-1]
    done, undo = run[: run.index("# rollback")], rolled_back_part(run)
    assert f"systemctl start {UNIT}" in done and f"useradd --system --gid {PROG}" in " ".join(done), done
    # Every unit it enabled is stopped and disabled, the user and group it created are removed.
    for unit in (UNIT, f"{PROG}.socket", f"{PROG}-logrotate.timer"):
        assert undo.index(f"systemctl stop {unit}") < undo.index(f"systemctl disable {unit}"), undo
    assert undo[-2:] == [f"userdel {PROG}", f"groupdel {PROG}"], undo
    # The next run installs as if for the first time.
    node.install()
    assert node.path("/etc/emrfs-role-agent/config.toml").read_text() == CONFIG
    assert f"systemctl start {UNIT}" in node.runs()[-1]


def test_an_interruption_before_any_change_changes_nothing(node):
    node.install()
    before = state(node)
    node.configure(CONFIG_V2)
    rc, err = interrupt_at(node, "checked", signal.SIGTERM)
    assert rc == 128 + signal.SIGTERM, err
    assert state(node) == before
    assert node.runs()[-1] == [], node.runs()[-1]
    assert "rolled back" not in err, err


@pytest.mark.parametrize("step", ["staged", "checked", "installed", "started", "ready"])
def test_every_named_step_can_fail_and_leaves_the_node_as_it_was(node, step):
    installed(node)
    before = state(node)
    node.configure(CONFIG_V2)
    r = node.install("--fail-at", step, check=False)
    assert r.returncode != 0
    assert f"failing at step {step} (--fail-at)" in r.stderr, r.stderr
    assert state(node) == before
    assert not node.waiters()


def test_test_hooks_name_known_steps(node):
    r = node.install("--fail-at", "bogus", check=False)
    assert r.returncode != 0 and "--fail-at: no step bogus" in r.stderr, r.stderr
    assert_nothing_installed(node)



# ---- instance-metadata interception, turned on or off by a run that fails --------------------


@pytest.mark.parametrize("turn", ["on", "off"])
def test_a_failed_run_that_turns_imds_interception_on_or_off_is_rolled_back(tmp_path, turn):
    first, then = (IMDS_OFF_CONFIG, IMDS_CONFIG) if turn == "on" else (IMDS_CONFIG, IMDS_OFF_CONFIG)
    node = Node(tmp_path, config=first, real_binary=True)
    try:
        node.install(mappings=False)
        before = state(node)
        node.configure(then)
        r = node.install("--fail-at", "started", mappings=False, check=False)
        assert r.returncode != 0
        assert state(node) == before
        run = node.runs()[-1]
        done, undo = run[: run.index("# rollback")], rolled_back_part(run)
        redirect, socket = f"{PROG}-imds-redirect.service", f"{PROG}-imds.socket"
        if turn == "on":
            # The new units are stopped and disabled and the rules they installed removed, before their files go.
            assert f"systemctl start {redirect}" in done, done
            assert f"systemctl stop {UNIT}" not in undo, undo
            order = [undo.index(a) for a in (
                f"systemctl stop {redirect}",
                f"systemctl disable {redirect}",
                f"/usr/local/bin/{PROG} imds-redirect remove",
                f"systemctl stop {socket}",
                f"systemctl disable {socket}",
                "systemctl daemon-reload",
                f"systemctl restart {UNIT}",
            )]  # fmt: skip
        else:
            # The removed units come back, enabled, and the rules with the redirect's restart; the agent gets its
            # metadata socket back through a restart.
            assert f"/usr/local/bin/{PROG} imds-redirect remove" in done, done
            order = [undo.index(a) for a in (
                "systemctl daemon-reload",
                f"systemctl enable {socket}",
                f"systemctl enable {redirect}",
                f"systemctl stop {UNIT}",
                f"systemctl restart {socket}",
                f"systemctl restart {redirect}",
                f"systemctl restart {UNIT}",
            )]  # fmt: skip
        assert order == sorted(order), undo
    finally:
        node.stop_waiters()
