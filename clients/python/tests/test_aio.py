"""The plugin on aiobotocore clients (what s3fs uses): the same credentials per request, and an agent request that
does not block the event loop. Runs where aiobotocore is installed (the test virtualenv has it)."""

import asyncio
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import emrfs_role_agent.botocore as plugin

aiobotocore_session = pytest.importorskip("aiobotocore.session")

_CREDENTIAL = re.compile(r"Credential=([^/]+)/")


class FakeS3:
    """Answers every request 200 and records the access key id that signed it."""

    def __init__(self):
        self.keys = []
        s3 = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                # The body is left unread (it may come aws-chunked, after a 100-continue): the answer closes.
                m = _CREDENTIAL.search(self.headers.get("Authorization", ""))
                s3.keys.append((self.command, self.path, m.group(1) if m else None))
                self.send_response(200)
                self.send_header("ETag", '"e"')
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

            do_PUT = do_GET = do_HEAD = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def s3_server():
    s = FakeS3()
    yield s
    s.stop()


def run(coro):
    return asyncio.run(coro)


async def _client(s3_server):
    session = aiobotocore_session.get_session()
    return session.create_client("s3", region_name="us-east-1", endpoint_url=s3_server.endpoint,
                                 aws_access_key_id="AKIACLIENTSOWNKEY", aws_secret_access_key="own-secret")


def test_an_aiobotocore_client_signs_each_request_with_its_prefix_role(s3_server, agent, resolver):
    agent.rule("s3://lake/teamA/", role="team-a")
    agent.rule("s3://lake/teamB/", role="team-b")

    async def main():
        async with await _client(s3_server) as s3:
            assert plugin.register(s3, resolver) is True
            for key in ("teamA/1", "teamB/1", "teamA/2", "teamA/3"):
                await s3.put_object(Bucket="lake", Key=key, Body=b"x")
            with pytest.raises(Exception) as e:
                await s3.put_object(Bucket="lake", Key="secret/x", Body=b"x")
            return e.value

    err = run(main())
    assert [k for _, _, k in s3_server.keys] == ["ASIATEAMA0000", "ASIATEAMB0000", "ASIATEAMA0000", "ASIATEAMA0000"]
    assert len(agent.requests) == 3
    assert err.response["Error"]["Code"] == "AccessDenied" and "fallback deny" in str(err)


def test_asking_the_agent_does_not_block_the_event_loop(s3_server, agent, resolver):
    """The agent holds its answer until another coroutine on the same loop releases it: that coroutine can only
    run if the hook asked the agent outside the loop."""
    agent.rule("s3://lake/", role="lake")
    agent.gate.clear()
    agent.gate_timeout = 5
    asked = threading.Event()
    agent.on_request = lambda *a: asked.set()
    seen = {}

    async def main():
        async with await _client(s3_server) as s3:
            plugin.register(s3, resolver)
            put = asyncio.ensure_future(s3.put_object(Bucket="lake", Key="k", Body=b"x"))
            while not asked.is_set():
                await asyncio.sleep(0.001)
            seen["put done while the agent held its answer"] = put.done()
            agent.gate.set()
            await put

    run(main())
    assert seen == {"put done while the agent held its answer": False}
    assert [k for _, _, k in s3_server.keys] == ["ASIALAKE0000"]
