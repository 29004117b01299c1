"""The agent as a process: writes its TOML config (SPEC §3) and token, starts `serve`, talks to it."""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse

import requests

from .net import free_port, tail, wait_http_ok


def agent_binary():
    """$EMRFS_ROLE_AGENT_BIN, else the debug build in the usual target directory."""
    if os.environ.get("EMRFS_ROLE_AGENT_BIN"):
        return os.environ["EMRFS_ROLE_AGENT_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/emrfs-role-agent/target")
    return os.path.join(target, "debug", "emrfs-role-agent")


# ---- TOML (the config only needs strings, numbers, booleans, arrays and tables) ----

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k):
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(config):
    """Top-level keys, then [tables], then [[arrays of tables]] (e.g. `mapping`)."""
    scalars, tables, arrays = [], [], []
    for k, v in config.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            scalars.append(f"{_key(k)} = {_value(v)}")
    out = scalars[:]
    for k, v in tables:
        out += ["", f"[{_key(k)}]"] + [f"{_key(a)} = {_value(b)}" for a, b in v.items()]
    for k, items in arrays:
        for item in items:
            out += ["", f"[[{_key(k)}]]"] + [f"{_key(a)} = {_value(b)}" for a, b in item.items()]
    return "\n".join(out) + "\n"


def merge(base, override):
    """Deep-merges dicts; `override` wins. A value of None removes the key."""
    out = dict(base)
    for k, v in override.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


# argv: the inherited sockets' fds (comma-separated), then the command to exec with them as fds 3, 4, …
# (sd_listen_fds(3)).
_ACTIVATE = """
import fcntl, os, sys
fds = [int(fd) for fd in sys.argv[1].split(",")]
# Out of the way first (a target fd may be one of the sources), then into place.
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
    os.close(fd)
os.environ["LISTEN_FDS"] = str(len(fds))
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


class Agent:
    """A running `emrfs-role-agent serve` (see AgentFactory.start)."""

    def __init__(self, directory, config, token, env, args=(), listen_socket=None, wrap=()):
        self.dir = directory
        self.config = config
        self.token = token
        self.env = env
        self.args = tuple(args)
        self.config_path = os.path.join(directory, "config.toml")
        self.token_path = config["server"]["token_file"]
        self.audit_path = config["audit"]["path"]
        self.stderr_path = os.path.join(directory, "stderr.log")
        self.stdout_path = os.path.join(directory, "stdout.log")
        listen = config["server"]["listen"][0]
        self.port = int(listen.rsplit(":", 1)[1])
        self.url = f"http://{listen}"
        self.credentials_url = f"{self.url}/v1/credentials"
        self.write_config(config)
        with open(self.token_path, "w") as f:
            f.write(token)  # no trailing newline: SDKs reject one
        self._stdout = open(self.stdout_path, "ab")
        self._stderr = open(self.stderr_path, "ab")
        command = [agent_binary(), "serve", "--config", self.config_path, *args]
        pass_fds = ()
        if listen_socket is not None:
            # Socket activation as systemd does it: the listening sockets as fds 3, 4, …, LISTEN_FDS
            # their number and LISTEN_PID naming the agent's own pid (the wrapper's, which exec keeps).
            sockets = listen_socket if isinstance(listen_socket, (list, tuple)) else [listen_socket]
            pass_fds = tuple(s.fileno() for s in sockets)
            command = [sys.executable, "-c", _ACTIVATE, ",".join(map(str, pass_fds)), *command]
        # A prefix that execs what follows (e.g. `ip netns exec NS`) keeps the agent's pid.
        command = [*wrap, *command]
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            cwd=directory,
            pass_fds=pass_fds,
        )
        self.pid = self.process.pid

    def write_config(self, config):
        """(Re)writes the config file; send SIGHUP to make a running agent reload it."""
        self.config = config
        with open(self.config_path, "w") as f:
            f.write(to_toml(config))

    def wait_ready(self, timeout=30):
        wait_http_ok(f"{self.url}/readyz", timeout, self.process, lambda: tail(self.stderr_path))

    # ---- requests ----

    def get(self, path="/v1/credentials", params=None, headers=None, token=True, timeout=30):
        """GET with the token in Authorization (unless token=False, or headers set their own)."""
        h = {"Authorization": self.token} if token else {}
        h.update(headers or {})
        return requests.get(f"{self.url}{path}", params=params, headers=h, timeout=timeout)

    def credentials(self, location=None, user=None, **kw):
        params = {k: v for k, v in (("location", location), ("user", user)) if v is not None}
        return self.get("/v1/credentials", params=params, **kw)

    def client_env(self, location=None, user=None, token_file=False):
        """The environment an SDK client needs to fetch credentials from this agent.

        The token goes in AWS_CONTAINER_AUTHORIZATION_TOKEN unless token_file=True (the token file lives
        in a directory other OS users cannot read)."""
        params = {k: v for k, v in (("location", location), ("user", user)) if v is not None}
        uri = self.credentials_url + ("?" + urllib.parse.urlencode(params) if params else "")
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
        if token_file:
            env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = self.token_path
        else:
            env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = self.token
        return env

    # ---- process ----

    def send_signal(self, sig):
        self.process.send_signal(sig)

    def kill(self):
        """SIGKILL, as a crash or the OOM killer would end it; waits for it to be gone."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        return self.stop()

    def stop(self, timeout=20):
        """SIGTERM, wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stdout.close()
        self._stderr.close()
        return self.process.returncode

    # ---- what it wrote ----

    def audit_records(self):
        """Every JSON line of the audit file (or of stdout when audit.path is "-")."""
        path = self.stdout_path if self.audit_path == "-" else self.audit_path
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stderr_text(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def written_text(self):
        """Everything the agent wrote: stderr, stdout and the audit file (rotated copies included)."""
        parts = [self.stderr_text()]
        paths = [self.stdout_path]
        if self.audit_path != "-":
            d, base = os.path.split(self.audit_path)
            paths += [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.startswith(base)]
        for p in paths:
            with open(p, errors="replace") as f:
                parts.append(f.read())
        return "\n".join(parts)

    def assert_no_secrets(self, secret_values):
        """Fails if any secret key or session token appears in anything the agent wrote."""
        text = self.written_text()
        leaked = [s[:4] + "…" for s in secret_values if s and s in text]
        assert not leaked, f"{len(leaked)} secret(s) found in the agent's output: {leaked}"


class AgentFactory:
    """Starts agents against a moto World; stops them all at teardown.

    start(mappings=[...], config={...section overrides...}, ...) writes
        [server] listen = ["127.0.0.1:<free port>"], token_file = <dir>/token
        [sts]    region = "us-east-1", endpoint_url = <moto endpoint>
        [audit]  path = <dir>/audit.log
        [[mapping]] ... (the given mappings, in order)
    deep-merged with `config` (None removes a key), and runs the agent with the world's source user's
    keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (source_env=False: no source credentials).
    listen_socket=<a listening socket, or a list of them>: hands it (them, in order) to the agent as systemd's
    socket activation does; the first one is the API's unless the config says otherwise.
    restart(agent): the same agent started again (same directory, config, token and environment).
    wrap=[argv prefix]: runs the agent under it, e.g. `ip netns exec NS` (it must exec what follows, so that
    signals reach the agent); readiness is then polled from the calling thread, which must be able to reach
    the agent's address (see helpers/netns.py), or pass wait_ready=False.
    env: added to the agent's environment; a value of None removes that variable (e.g. the
    AWS_EC2_METADATA_DISABLED every agent gets otherwise).
    user=(uid, gid): runs the agent as that user (setpriv, after `wrap`; needs root), in a directory it
    owns under /tmp, so that the agent and its callers (this process) are different users: a record that
    names the agent's own uid instead of its caller's cannot pass. `agent.uid` is the uid it runs as."""

    def __init__(self, tmp_path_factory, world):
        self._tmp = tmp_path_factory
        self.world = world
        self.agents = []
        self._own_dirs = []

    def config_for(self, directory, mappings=(), config=None):
        base = {
            "server": {"listen": [f"127.0.0.1:{free_port()}"], "token_file": os.path.join(directory, "token")},
            "sts": {"region": "us-east-1"},
            "audit": {"path": os.path.join(directory, "audit.log")},
        }
        if self.world is not None:
            base["sts"]["endpoint_url"] = self.world.endpoint
        cfg = merge(base, config or {})
        if mappings:
            cfg["mapping"] = list(mappings)
        return cfg

    def start(self, mappings=(), config=None, token=None, env=None, source_env=True, args=(), wait_ready=True,
              ready_timeout=30, listen_socket=None, wrap=(), user=None):
        if user is None:
            directory = str(self._tmp.mktemp("agent"))
        else:
            # pytest's own temporary directories are root's alone; /tmp can be entered by anyone.
            directory = tempfile.mkdtemp(prefix="emrfs-agent-")
            os.chown(directory, *user)
            self._own_dirs.append(directory)
            wrap = [*wrap, "setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", "--"]
        cfg = self.config_for(directory, mappings, config)
        proc_env = {
            k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "EMRFS_ROLE_AGENT_CONFIG"
        }
        # Keep the SDK's default chain to what the test gives it.
        proc_env["AWS_CONFIG_FILE"] = os.path.join(directory, "no-aws-config")
        proc_env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(directory, "no-aws-credentials")
        proc_env["AWS_EC2_METADATA_DISABLED"] = "true"
        proc_env["AWS_REGION"] = "us-east-1"
        if source_env and self.world is not None:
            proc_env.update(self.world.source_env())
        for k, v in (env or {}).items():
            if v is None:
                proc_env.pop(k, None)
            else:
                proc_env[k] = v
        if listen_socket is not None and "listen" not in (config or {}).get("server", {}):
            first = listen_socket[0] if isinstance(listen_socket, (list, tuple)) else listen_socket
            host, port = first.getsockname()[:2]
            cfg = merge(cfg, {"server": {"listen": [f"{host}:{port}"]}})
        agent = Agent(directory, cfg, token or secrets.token_hex(24), proc_env, args, listen_socket, wrap)
        agent.uid = os.geteuid() if user is None else user[0]
        self.agents.append(agent)
        if wait_ready:
            agent.wait_ready(ready_timeout)
        return agent

    __call__ = start

    def restart(self, agent, wait_ready=True, ready_timeout=30):
        """`serve` again in `agent`'s directory, with its config, token, environment and arguments (what
        a restart by systemd does); `agent` must have ended. Returns the new Agent."""
        assert agent.process.poll() is not None, "the agent is still running: stop or kill it first"
        again = Agent(agent.dir, agent.config, agent.token, agent.env, agent.args)
        again.uid = agent.uid
        self.agents.append(again)
        if wait_ready:
            again.wait_ready(ready_timeout)
        return again

    def stop_all(self):
        for agent in self.agents:
            agent.stop()
        for directory in self._own_dirs:
            shutil.rmtree(directory, ignore_errors=True)
