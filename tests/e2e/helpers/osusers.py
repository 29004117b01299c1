"""OS users and groups for kernel-identity tests, and running commands as them.

Needs root (useradd, setpriv). Clients run as these users use the system virtualenv
($EMRFS_TEST_SYSTEM_VENV, built from Debian's python by scripts/setup-test-env.sh), because the default
python may live under /root, which other users cannot enter.
"""

import grp
import os
import pwd
import subprocess

import pytest

DEFAULT_SYSTEM_VENV = "/var/cache/emrfs-role-agent-test/venv-system"

# name -> supplementary groups. Each user also gets a primary group of its own name.
USERS = {
    "emrfs-alice": ["emrfs-analysts", "emrfs-shared"],
    "emrfs-bob": ["emrfs-engineers", "emrfs-shared"],
    "emrfs-yarn": [],  # plays YARN's NodeManager: the trusted proxy user
}


# uid and gid of `nobody`: the agent's user in tests where the callers (root) must be someone else.
NOBODY = 65534

# Starts the reason of every skip for want of root; conftest's summary lists those tests by name.
NEEDS_ROOT = "NOT RUN, needs root:"


def in_ci():
    """True when $CI says so (CI=true, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_root(what):
    """Returns when running as root. Otherwise fails the test under CI (where a skip would let a
    whole suite pass without running) and skips it, saying so, elsewhere."""
    if os.geteuid() == 0:
        return
    if in_ci():
        pytest.fail(f"{what} needs root, and CI must run every test: run the suite as root", pytrace=False)
    pytest.skip(f"{NEEDS_ROOT} {what} (run as root; under CI=true this fails instead)")


def system_venv():
    return os.environ.get("EMRFS_TEST_SYSTEM_VENV", DEFAULT_SYSTEM_VENV)


class OsUser:
    def __init__(self, name):
        pw = pwd.getpwnam(name)
        self.name = name
        self.uid = pw.pw_uid
        self.gid = pw.pw_gid
        self.home = pw.pw_dir
        self.groups = sorted(
            {grp.getgrgid(self.gid).gr_name} | {g.gr_name for g in grp.getgrall() if name in g.gr_mem}
        )

    def __repr__(self):
        return f"OsUser({self.name}, uid={self.uid}, groups={self.groups})"


class OsUsers:
    """Creates USERS (idempotent); cleanup() removes what this instance created."""

    def __init__(self):
        self._created_users = []
        self._created_groups = []
        for group in sorted({g for gs in USERS.values() for g in gs}):
            if not _exists(grp.getgrnam, group):
                subprocess.run(["groupadd", group], check=True)
                self._created_groups.append(group)
        for name, groups in USERS.items():
            if not _exists(pwd.getpwnam, name):
                cmd = ["useradd", "--create-home", "--user-group", "--shell", "/bin/sh"]
                if groups:
                    cmd += ["--groups", ",".join(groups)]
                subprocess.run(cmd + [name], check=True)
                self._created_users.append(name)
            elif groups:
                subprocess.run(["usermod", "--append", "--groups", ",".join(groups), name], check=True)
        self.users = {name: OsUser(name) for name in USERS}
        self.alice = self.users["emrfs-alice"]
        self.bob = self.users["emrfs-bob"]
        self.yarn = self.users["emrfs-yarn"]
        self.venv = system_venv()
        self.python = os.path.join(self.venv, "bin", "python")
        self.aws = os.path.join(self.venv, "bin", "aws")

    def run_as(self, user, argv, env=None, timeout=120, wrap=(), **kw):
        """Runs argv as `user` (real and effective uid/gid, its supplementary groups) with a clean
        environment: HOME, USER, PATH (system venv first) plus `env`. Returns CompletedProcess (text).

        `user` is one of USERS (name or OsUser) or another account's OsUser. `wrap` is an argv prefix run
        as root before the switch to the user, e.g. `ip netns exec NS`."""
        if isinstance(user, str):
            user = self.users[user]
        full_env = {
            "HOME": user.home,
            "USER": user.name,
            "LOGNAME": user.name,
            "PATH": f"{self.venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }
        full_env.update(env or {})
        cmd = [*wrap, "setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--", *argv]
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("cwd", "/")
        return subprocess.run(cmd, env=full_env, timeout=timeout, **kw)

    def python_as(self, user, code, env=None, **kw):
        """Runs python code (system venv: boto3, awscli) as `user`."""
        return self.run_as(user, [self.python, "-c", code], env=env, **kw)

    def cleanup(self):
        for name in self._created_users:
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        for group in self._created_groups:
            subprocess.run(["groupdel", group], capture_output=True)


def _exists(lookup, name):
    try:
        lookup(name)
        return True
    except KeyError:
        return False
