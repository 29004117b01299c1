"""The metadata door's own edges (SPEC §5.1, §7): a credentials path in any spelling never reaches the node's
metadata service, and every refusal through this door is audited (or tallied) and counted like the API's.

Same world as test_imds.py (a network namespace per test, the stand-in for the node's metadata service on
169.254.169.254 there, both redirect back ends). Needs root.
"""

import re

from helpers.imds_world import MAPPED, STANDIN, UNMAPPED
# pytest fixtures, shared with test_imds.py.
from test_imds import NODE_SECRETS, answered_by, backend, imds_records, netns, world  # noqa: F401

NODE_ROLE = "default-role"

# Spellings a metadata service might read as a credentials path, none of them the agent's to forward:
# other case, no version, `\` for `/`, encoded separators, credentials under another name. (A target starting
# with `\` cannot be sent by an HTTP client at all; the unit tests of `Asked` cover it.)
SPELLINGS = [
    f"/LATEST/META-DATA/IAM/SECURITY-CREDENTIALS/{NODE_ROLE}",
    f"/latest/meta-data/IAM/security-credentials/{NODE_ROLE}",
    "/latest/meta-data/iam/Security-Credentials/",
    f"/meta-data/iam/security-credentials/{NODE_ROLE}",
    "/meta-data/iam/security-credentials/",
    f"/latest\\meta-data\\iam\\security-credentials\\{NODE_ROLE}",
    f"/latest/meta-data/iam%5Csecurity-credentials/{NODE_ROLE}",
    f"/latest/meta-data/iam/security-credentials%2F{NODE_ROLE}",
    f"/latest/meta-data/iam/security-credentials/{NODE_ROLE}/",
    f"/latest/meta-data/iam/security-credentials/{NODE_ROLE}/x",
    "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
    "/latest/meta-data/Identity-Credentials/ec2/security-credentials/ec2-instance",
    f"/latest/meta-data/placement/../iam/security-credentials/{NODE_ROLE}",
]


def metric(text, name, **labels):
    """The value of one sample of an OpenMetrics exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)\{([^}]*)\} (\S+)$", line)
        if m and m[1] == name and ",".join(sorted(m[2].split(","))) == want:
            return float(m[3])
    return 0.0


def metrics(world):
    with world.ns.entered():
        answer = world.agent.get("/metrics", token=False)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_credentials_in_any_spelling_never_reach_the_node_service(world):
    world.install()
    user = next(iter(MAPPED))
    probe = world.probe(user, SPELLINGS)
    for path in SPELLINGS:
        status, body, server = answered_by(probe, path)
        assert server != STANDIN, f"{path} was forwarded to the node's metadata service: {status} {body}"
        assert status == 404, (path, status, body)
        assert not any(s in body for s in NODE_SECRETS), path
    asked = [line for line in world.standin.log().splitlines() if "credentials" in line.lower()]
    assert asked == [], f"the node's service was asked for credentials: {asked}"
    # What is on the allow-list still goes through.
    region = world.probe(user, ["/latest/meta-data/placement/region"])
    assert answered_by(region, "/latest/meta-data/placement/region")[2] == STANDIN


def test_every_refusal_through_the_metadata_door_is_audited_and_counted(world):
    world.install()
    before = metrics(world)
    # A decision: the unmapped user (fallback deny) asks iam/info and the credentials listing.
    denied = world.probe(UNMAPPED, ["/latest/meta-data/iam/info", "/latest/meta-data/iam/security-credentials/"])
    for path in ("/latest/meta-data/iam/info", "/latest/meta-data/iam/security-credentials/"):
        assert answered_by(denied, path)[0] == 404, denied
    # Refusals before any decision: a guessed token, a path off the allow-list.
    guessed = world.probe(UNMAPPED, ["/latest/meta-data/iam/security-credentials/"], token="0.0.00")
    assert answered_by(guessed, "/latest/meta-data/iam/security-credentials/")[0] == 401
    off_list = world.probe(UNMAPPED, ["/latest/Meta-Data/placement/region"])
    assert answered_by(off_list, "/latest/Meta-Data/placement/region")[0] == 404
    after = metrics(world)

    def grew(**labels):
        name = "emrfs_role_agent_requests_total"
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew(outcome="deny", code="AccessDenied") == 2, after
    assert grew(outcome="deny", code="Unauthorized") == 1, after
    assert grew(outcome="error", code="NotFound") == 1, after

    world.agent.stop()
    records = imds_records(world)[UNMAPPED]
    assert sorted(r["error_code"] for r in records) == ["AccessDenied", "AccessDenied", "NotFound"], records
    uid = world.user(UNMAPPED).uid
    refused = [r for r in world.agent.audit_records() if r["event"] == "refused" and r["caller_uid"] == uid]
    assert sum(r["codes"].get("Unauthorized", 0) for r in refused) == 1, refused
