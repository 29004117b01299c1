"""SDKs not covered elsewhere get credentials through the container-credentials path, unchanged (SPEC §10).

The AWS SDK for Java v2 (`ContainerCredentialsProvider`, on 2.24.6 and a current 2.x), the AWS SDK for Go v2 and
the AWS SDK for JavaScript v3 (default chain) each fetch credentials from the running agent with
AWS_CONTAINER_CREDENTIALS_FULL_URI (a location in its query) and the token from AWS_CONTAINER_AUTHORIZATION_TOKEN
or from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (what the bootstrap wires for Spark), then use them: STS
GetCallerIdentity at moto, with IAM enforcement on, names the role mapped to that location.

The clients: tests/java/io/emrfsroleagent/e2e/ContainerCredentialsProbe.java, tests/e2e/sdk_clients/go (built
with the Go module proxy's modules, cached in the Go caches) and tests/e2e/sdk_clients/js (npm ci, pinned by
package-lock.json).
"""

import os
import shutil
import subprocess

import pytest

from helpers import jvm

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "sdk_clients")


def build_dir():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(jvm.REPO, "target")
    path = os.path.join(target, "sdk-clients")
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def go_client():
    assert shutil.which("go"), "Go is needed for the Go SDK client"
    exe = os.path.join(build_dir(), "whoami-go")
    out = subprocess.run(["go", "build", "-o", exe, "."], cwd=os.path.join(CLIENTS, "go"), capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    return [exe]


@pytest.fixture(scope="module")
def js_client():
    assert shutil.which("node") and shutil.which("npm"), "Node.js and npm are needed for the JS SDK client"
    pkg = os.path.join(CLIENTS, "js")
    lock = os.path.join(pkg, "package-lock.json")
    stamp = os.path.join(pkg, "node_modules", ".installed-from-lock")
    want = open(lock).read()
    if not os.path.exists(stamp) or open(stamp).read() != want:
        out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=pkg,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-4000:]
        with open(stamp, "w") as f:
            f.write(want)
    return ["node", os.path.join(pkg, "whoami.mjs")]


def java_client(build, runtime):
    return ["java", "-cp", jvm.classpath(build, runtime), "io.emrfsroleagent.e2e.ContainerCredentialsProbe"]


CLIENT_IDS = ["java-sdk-v2-2.24", "java-sdk-v2-current", "go-sdk-v2", "js-sdk-v3"]


@pytest.fixture(params=CLIENT_IDS)
def client(request):
    if request.param == "go-sdk-v2":
        return request.getfixturevalue("go_client")
    if request.param == "js-sdk-v3":
        return request.getfixturevalue("js_client")
    build = request.getfixturevalue("java_build")
    return java_client(build, "hadoop-3.4.1" if request.param.endswith("2.24") else "hadoop-3.4.1-sdk-current")


@pytest.mark.parametrize("token_from", ["file", "env"])
def test_sdk_container_credentials_with_token(client, token_from, moto, agent_factory):
    analytics = moto.role("analytics")
    agent = agent_factory(
        mappings=[{"name": "analytics-data", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]}],
        config={"fallback": {"mode": "deny"}},
    )
    env = agent.client_env(location=f"s3://{analytics['bucket']}/reports/", token_file=token_from == "file")
    assert ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in env) == (token_from == "file")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | env | {
        "STS_ENDPOINT": moto.endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    out = subprocess.run(client, env=env, capture_output=True, text=True, timeout=300)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line[:4] in ("KEY ", "ARN ", "ERRO"))
    assert out.returncode == 0, out.stdout + out.stderr[-4000:]
    assert ":assumed-role/analytics/" in lines["ARN"], lines

    (record,) = [r for r in agent.audit_records() if r["event"] == "credentials"]
    assert record["location"] == f"s3://{analytics['bucket']}/reports/", record
    assert record["role_arn"] == analytics["arn"] and record["access_key_id"] == lines["KEY"], record
    assert agent.token not in out.stdout + out.stderr
