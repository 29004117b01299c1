"""The container-credentials path with more real SDKs (SPEC §10): the AWS SDK for Go v2 and the AWS SDK for
JavaScript v3, each through its own default credential chain with only AWS_CONTAINER_CREDENTIALS_FULL_URI and
the token set — the token from AWS_CONTAINER_AUTHORIZATION_TOKEN, and from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
(what the bootstrap wires for Spark). Each client then uses what it got: STS GetCallerIdentity on moto (IAM
enforcement on) must name the mapped role, and the key it signed with must be the one the agent audited.

The answers carry `Scope` (the location names one); the SDKs must ignore it.

Clients: tests/sdk/go (caller-identity), tests/sdk/js (caller-identity.mjs), built by
scripts/build-sdk-clients.sh."""

import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def sdk_build():
    out = subprocess.run([os.path.join(REPO, "scripts", "build-sdk-clients.sh")], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def client_command(sdk, build, endpoint):
    if sdk == "go":
        return [os.path.join(build, "caller-identity-go"), endpoint]
    return ["node", os.path.join(REPO, "tests", "sdk", "js", "caller-identity.mjs"), endpoint]


def run_client(sdk, build, endpoint, env, home):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(env)
    # No shared config or credentials files, no instance metadata: the container provider or nothing.
    clean.update({"HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true",
                  "AWS_CONFIG_FILE": str(home / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "none")})
    return subprocess.run(client_command(sdk, build, endpoint), env=clean, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("token_source", ["env", "file"])
@pytest.mark.parametrize("sdk", ["go", "js"])
def test_sdk_default_chain_gets_the_mapped_role(sdk, token_source, sdk_build, moto, agent_factory, tmp_path):
    analytics = moto.role("analytics")
    agent = agent_factory(
        mappings=[{"name": "analytics-data", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]}],
        config={"fallback": {"mode": "deny"}},
    )
    location = f"s3://{analytics['bucket']}/reports/2026/part-0"
    # The agent answers with a Scope for this location: the SDK sees the extra field.
    assert agent.credentials(location=location).json()["Scope"] == f"s3://{analytics['bucket']}/"
    env = agent.client_env(location=location, token_file=(token_source == "file"))
    out = run_client(sdk, sdk_build, moto.endpoint, env, tmp_path)
    assert out.returncode == 0, out.stderr
    me = json.loads(out.stdout)
    assert ":assumed-role/analytics/" in me["Arn"], me
    records = [r for r in agent.audit_records() if r["event"] == "credentials"]
    assert me["AccessKeyId"] in {r["access_key_id"] for r in records}
    assert all(r["status"] == 200 and r["rule_name"] == "analytics-data" for r in records), records


@pytest.mark.parametrize("sdk", ["go", "js"])
def test_sdk_reports_a_refusal_instead_of_credentials(sdk, sdk_build, moto, agent_factory, tmp_path):
    analytics = moto.role("analytics")
    agent = agent_factory(
        mappings=[{"name": "analytics-data", "role": analytics["arn"], "prefixes": [f"s3://{analytics['bucket']}/"]}],
        config={"fallback": {"mode": "deny"}},
    )
    # Denied by the fallback: the SDK must fail, not fall through to other credentials.
    out = run_client(sdk, sdk_build, moto.endpoint, agent.client_env(location="s3://unmapped-bucket/x"), tmp_path)
    assert out.returncode != 0, out.stdout
    # A wrong token is refused too.
    env = agent.client_env(location=f"s3://{analytics['bucket']}/x")
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "wrong"
    out = run_client(sdk, sdk_build, moto.endpoint, env, tmp_path)
    assert out.returncode != 0, out.stdout
    codes = sorted(r["error_code"] for r in agent.audit_records() if r["event"] == "credentials")
    assert "AccessDenied" in codes and "Unauthorized" in codes, codes
