"""A network namespace of the test's own, where 169.254.169.254 is a local address.

Instance-metadata tests send traffic to 169.254.169.254 (and to fd00:ec2::254, the service's IPv6 address), and
redirect it with NAT rules. Both happen only in
here, never in the machine's own namespace: a test creates the namespace, puts the metadata address on the
namespace's loopback (this kernel has no `dummy` link type), and fd00:ec2::254 too, and runs every process it needs under
`ip netns exec` (`Netns.wrap`). NAT rules made in the namespace live and die with it.

The test process itself talks to loopback servers in the namespace (readiness probes) inside
`with netns.entered():`, which moves the calling thread alone into the namespace and back (network
namespaces are per thread; a socket stays in the namespace it was made in).

Needs root (ip netns, setns).
"""

import ctypes
import itertools
import os
import subprocess
from contextlib import contextmanager

METADATA_ADDRESS = "169.254.169.254"
# The metadata service's IPv6 address (Nitro instances with the IPv6 endpoint on).
METADATA_ADDRESS_V6 = "fd00:ec2::254"

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_counter = itertools.count()


def _setns(fd):
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _thread_netns_inode():
    return os.stat("/proc/thread-self/ns/net").st_ino


class Netns:
    """`ip netns add` on creation; delete() kills nothing: stop the processes run in it first."""

    def __init__(self, prefix="emrfs-imds"):
        self.name = f"{prefix}-{os.getpid()}-{next(_counter)}"
        self.path = f"/run/netns/{self.name}"
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True, text=True)
        try:
            self.run(["ip", "link", "set", "lo", "up"])
            self.run(["ip", "addr", "add", f"{METADATA_ADDRESS}/32", "dev", "lo"])
            self.run(["ip", "-6", "addr", "add", f"{METADATA_ADDRESS_V6}/128", "dev", "lo", "nodad"])
        except Exception:
            self.delete()
            raise
        self.inode = os.stat(self.path).st_ino

    @property
    def wrap(self):
        """The argv prefix that runs a command in this namespace."""
        return ["ip", "netns", "exec", self.name]

    def run(self, argv, check=True, **kw):
        """Runs argv (as root) in the namespace; returns CompletedProcess (text, output captured)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        out = subprocess.run([*self.wrap, *argv], **kw)
        if check and out.returncode != 0:
            command = " ".join(argv)
            raise AssertionError(f"{command} (in {self.name}) exited {out.returncode}:\n{out.stdout}{out.stderr}")
        return out

    @contextmanager
    def entered(self):
        """The calling thread in this namespace for the block (and back to where it was after)."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                # Never go on talking to 169.254.169.254 from anywhere but here.
                assert _thread_netns_inode() == self.inode, "setns did not move this thread into the namespace"
                yield self
            finally:
                _setns(own)
        finally:
            os.close(target)
            os.close(own)

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
