"""Socket activation (SPEC §8): the agent serves the listening socket it is handed (LISTEN_FDS, as
systemd's emrfs-role-agent.socket hands it over) instead of binding its own, so the port stays bound
while the agent restarts. The test holds the socket the way the socket unit does.

The attack it closes: after a stop, any local user could bind 127.0.0.1:9944 first, collect the token
that clients send and hand them credentials of its own, and the agent's restart failed with "Address
already in use" for as long as the port was held. The metadata listener's port is closed to that twice over:
its default is a port only root can bind, and the agent will not bind one that any user could itself."""

import errno
import socket
import threading

import pytest
import requests

from helpers.imds_world import packaged_imds_listen
from helpers.netns import Netns
from helpers.osusers import OsUser, require_root


def listening_socket():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    return s


def squat(port):
    """What a local user tries: bind the agent's port. Returns the socket, or the errno."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return s
    except OSError as e:
        s.close()
        return e.errno


# Run as an unprivileged user: bind the metadata listener's addresses (argv[1] = port); prints each outcome.
BIND_AS_USER = r"""
import errno, socket, sys
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(family)
    try:
        s.bind((host, int(sys.argv[1])))
        print(host, "bound")
    except OSError as e:
        print(host, errno.errorcode.get(e.errno, e.errno))
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_the_agent_will_not_bind_a_metadata_port_anyone_could_take(moto, agent_factory):
    """Without a socket unit, the agent binds [imds] listen itself, and while it is down anyone could bind a port
    above net.ipv4.ip_unprivileged_port_start and answer the users the redirect sends there. So it refuses to
    (exit 78: systemd does not restart it), and says why and what to use instead. Handed over by the socket unit,
    the same port is served (test_the_handed_socket_on_imds_listen_is_the_metadata_listener)."""
    port = free_port()
    assert port >= 1024
    agent = agent_factory(wait_ready=False, config={"imds": {"listen": f"127.0.0.1:{port}"}})
    assert agent.process.wait(30) == 78, agent.stderr_text()
    said = agent.stderr_text()
    assert "imds.listen" in said and f"any local user may bind port {port}" in said, said
    assert "ip_unprivileged_port_start = " in said and "127.0.0.1:254, the default" in said, said


def test_the_default_metadata_port_is_root_only_and_the_agent_asks_the_kernel(moto, agent_factory, os_users):
    """The packaged metadata listener (the socket unit's addresses, which the docs and the bootstrap use) is on a
    port only root can bind: the agent binds it itself, and once it is stopped no other user can take it, on
    either address. The limit is the kernel's (per network namespace), not a constant: where users may bind every
    port, the agent refuses the default too. In a network namespace of the test's own (port 254 on this machine's
    loopback is not the test's to take)."""
    require_root("a network namespace, and a client as another user")
    v4, v6 = packaged_imds_listen()
    port = int(v4.rsplit(":", 1)[1])
    ns = Netns(prefix="emrfs-sock")
    try:
        config = {"server": {"listen": ["127.0.0.1:9944"]}, "imds": {"listen": v4}}
        agent = agent_factory(config=config, wrap=ns.wrap, wait_ready=False)
        with ns.entered():
            agent.wait_ready()
            for host in ("127.0.0.1", "::1"):
                socket.create_connection((host, port), timeout=10).close()  # listening on both
        assert agent.stop() == 0

        nobody = OsUser("nobody")
        out = os_users.run_as(nobody, [os_users.python, "-c", BIND_AS_USER, str(port)], wrap=ns.wrap)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["127.0.0.1 EACCES", "::1 EACCES"], f"{v4}, {v6}: {out.stdout}"

        # A node that lets users bind low ports (some container runtimes set 0).
        ns.run(["sysctl", "-w", "net.ipv4.ip_unprivileged_port_start=0"])
        refused = agent_factory(config=config, wrap=ns.wrap, wait_ready=False)
        assert refused.process.wait(30) == 78, refused.stderr_text()
        said = refused.stderr_text()
        assert f"any local user may bind port {port} (net.ipv4.ip_unprivileged_port_start = 0)" in said, said
    finally:
        ns.delete()


def test_a_handed_socket_keeps_the_port_across_a_restart_and_queued_clients_are_served(moto, agent_factory):
    analytics = moto.role("analytics")
    mapping = {"name": "analytics", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]}
    holder = listening_socket()
    port = holder.getsockname()[1]
    try:
        first = agent_factory(mappings=[mapping], listen_socket=holder)
        assert first.credentials(location=f"s3://{analytics['bucket']}/x").status_code == 200
        assert "serving a socket handed over by systemd" in first.stderr_text()
        token = first.token
        first.stop()

        # Nobody can take the port while the agent is down.
        assert squat(port) == errno.EADDRINUSE

        # A client asking meanwhile waits in the socket's queue, and the restarted agent answers it.
        answer = {}

        def ask():
            c = socket.create_connection(("127.0.0.1", port), timeout=60)
            c.sendall(f"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            answer["head"] = c.recv(64)
            c.close()

        waiting = threading.Thread(target=ask)
        waiting.start()
        second = agent_factory(mappings=[mapping], listen_socket=holder, token=token)
        waiting.join(60)
        assert answer.get("head", b"").startswith(b"HTTP/1.1 200"), answer
        assert second.credentials(location=f"s3://{analytics['bucket']}/y").status_code == 200
        assert second.port == port
    finally:
        holder.close()


def test_a_handed_socket_that_is_not_loopback_is_refused(moto, agent_factory):
    wide = socket.socket()
    wide.bind(("0.0.0.0", 0))
    wide.listen(1)
    try:
        agent = agent_factory(listen_socket=wide, wait_ready=False, config={"server": {"listen": ["127.0.0.1:1"]}})
        assert agent.process.wait(30) == 1
        assert "is not a loopback address" in agent.stderr_text()
    finally:
        wide.close()


def metadata_sockets():
    """The imds socket unit's pair: 127.0.0.1:P and [::1]:P, one port (here one any user could bind: the socket
    unit holding it is what makes it safe)."""
    for _ in range(20):
        v4 = listening_socket()
        v6 = socket.socket(socket.AF_INET6)
        v6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            v6.bind(("::1", v4.getsockname()[1]))
            v6.listen(128)
            return v4, v6
        except OSError:
            v4.close()
            v6.close()
    raise AssertionError("no port free on both 127.0.0.1 and [::1]")


def test_the_handed_socket_on_imds_listen_is_the_metadata_listener(moto, agent_factory):
    """With the imds socket unit, systemd hands the agent three sockets (in no promised order); the ones on
    [imds] listen and on [::1] at its port (where the IPv6 redirect goes) serve instance metadata, the other the
    API. A port any user could bind is served when handed over (the agent would not bind it itself); the
    metadata port, too, stays bound while the agent is down."""
    api = listening_socket()
    imds, imds6 = metadata_sockets()
    imds_port = imds.getsockname()[1]
    try:
        for handed in ([imds, api, imds6], [api, imds6, imds]):
            agent = agent_factory(
                listen_socket=handed,
                config={"server": {"listen": [f"127.0.0.1:{api.getsockname()[1]}"]},
                        "imds": {"listen": f"127.0.0.1:{imds_port}"}},
            )  # fmt: skip
            assert agent.get("/healthz", token=False).status_code == 200
            for host in ("127.0.0.1", "[::1]"):
                metadata = requests.get(f"http://{host}:{imds_port}/latest/meta-data/", timeout=30)
                # The metadata listener: the test runs as the agent's own user, which must be exempt from the
                # redirect, and is told so (508) rather than served. The API knows no such path.
                assert metadata.status_code == 508, (host, metadata.text)
            assert agent.get("/latest/meta-data/", token=False).status_code == 404
            assert agent.stderr_text().count("serving a socket handed over by systemd") == 3
            agent.stop()
            assert squat(imds_port) == errno.EADDRINUSE
    finally:
        api.close()
        imds.close()
        imds6.close()


def test_without_ipv6_the_agent_serves_ipv4_and_says_the_ipv6_redirect_is_refused(moto, agent_factory):
    """A node without IPv6 on its loopback (no [::1]): the metadata listener serves 127.0.0.1 at its port and says
    that IPv6-redirected connections are refused; it does not fail to start. In a network namespace of its own."""
    require_root("a network namespace")
    v4, v6 = packaged_imds_listen()
    port = int(v4.rsplit(":", 1)[1])
    ns = Netns(prefix="emrfs-sock")
    try:
        ns.run(["sysctl", "-w", "net.ipv6.conf.lo.disable_ipv6=1"])
        agent = agent_factory(config={"server": {"listen": ["127.0.0.1:9944"]}, "imds": {"listen": v4}},
                              wrap=ns.wrap, wait_ready=False)  # fmt: skip
        with ns.entered():
            agent.wait_ready()
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        said = agent.stderr_text()
        assert "no metadata listener for the IPv6 redirect" in said and v6 in said, said
        assert agent.stop() == 0
    finally:
        ns.delete()
