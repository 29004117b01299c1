"""Socket activation (SPEC §8): the agent serves the listening socket it is handed (LISTEN_FDS, as
systemd's emrfs-role-agent.socket hands it over) instead of binding its own, so the port stays bound
while the agent restarts. The test holds the socket the way the socket unit does.

The attack it closes: after a stop, any local user could bind 127.0.0.1:9944 first, collect the token
that clients send and hand them credentials of its own, and the agent's restart failed with "Address
already in use" for as long as the port was held."""

import errno
import socket
import threading

import pytest
import requests


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


def test_without_a_socket_unit_the_port_is_free_for_anyone_in_a_restart(moto, agent_factory):
    """The attack, possible when the agent binds for itself (no socket handed over)."""
    agent = agent_factory()
    agent.stop()
    squatter = squat(agent.port)
    assert isinstance(squatter, socket.socket), "anyone may bind the port of a stopped agent"
    squatter.close()


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


def test_the_handed_socket_on_imds_listen_is_the_metadata_listener(moto, agent_factory):
    """With the imds socket unit, systemd hands the agent two sockets (in no promised order); the one whose
    address is [imds] listen serves instance metadata, the other the API. The metadata port, too, stays
    bound while the agent is down."""
    api, imds = listening_socket(), listening_socket()
    imds_port = imds.getsockname()[1]
    try:
        for handed in ([imds, api], [api, imds]):
            agent = agent_factory(
                listen_socket=handed,
                config={"server": {"listen": [f"127.0.0.1:{api.getsockname()[1]}"]},
                        "imds": {"listen": f"127.0.0.1:{imds_port}"}},
            )  # fmt: skip
            assert agent.get("/healthz", token=False).status_code == 200
            metadata = requests.get(f"http://127.0.0.1:{imds_port}/latest/meta-data/", timeout=30)
            # The metadata listener: the test runs as the agent's own user, which must be exempt from the
            # redirect, and is told so (508) rather than served. The API knows no such path.
            assert metadata.status_code == 508, metadata.text
            assert agent.get("/latest/meta-data/", token=False).status_code == 404
            assert agent.stderr_text().count("serving a socket handed over by systemd") == 2
            agent.stop()
            assert squat(imds_port) == errno.EADDRINUSE
    finally:
        api.close()
        imds.close()
