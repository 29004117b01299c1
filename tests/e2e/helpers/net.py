"""Loopback ports, and waiting for something to happen."""

import socket
import time

import requests


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ok(url, timeout, process=None, describe=lambda: ""):
    """Polls `url` until it answers 200. Fails early if `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode} before answering\n{describe()}")
        try:
            r = requests.get(url, timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            last = repr(e)
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s (last: {last})\n{describe()}")


def tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def wait_until(predicate, timeout=30, what=None, interval=0.05):
    """Calls `predicate` until it returns something true, and returns that.

    Fails the test (AssertionError naming `what` and the last value seen) once `timeout` seconds have
    passed. This is how a test waits for an event it can observe (an audit record, a counter, a file):
    it goes on as soon as the event happens, and the deadline only matters when it never does, so it
    is generous for a busy machine."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or 'the condition'} (last: {last!r})")
        time.sleep(interval)
