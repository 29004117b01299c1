"""Who is asking comes from the kernel (SPEC §4.1): clients run as real OS users, and the agent
picks roles by their user and groups; `user=` is honoured only for trusted proxy users."""

import json

WHOAMI = """
import boto3, json, os
sts = boto3.client('sts', endpoint_url=os.environ['MOTO'])
print(json.dumps(sts.get_caller_identity()))
"""

ASK = """
import json, os, urllib.request, urllib.error
req = urllib.request.Request(os.environ['URL'], headers={'Authorization': os.environ['TOKEN']})
try:
    with urllib.request.urlopen(req) as r:
        print(json.dumps({'status': r.status, 'body': json.load(r)}))
except urllib.error.HTTPError as e:
    print(json.dumps({'status': e.code, 'body': json.load(e)}))
"""


# emrfs-yarn's own group (every OS user here has a primary group of its name). The rule for it
# makes the proxy's groups visible: a request decided with them gets this rule and its role.
PROXY_GROUP = "emrfs-yarn"


def start(agent_factory, moto):
    return agent_factory(
        mappings=[
            {"name": "alice-user", "role": moto.role("analytics")["arn"], "users": ["emrfs-alice"]},
            {"name": "engineers", "role": moto.role("engineering")["arn"], "groups": ["emrfs-engineers"]},
            {"name": "proxy-group", "role": moto.role("engineering")["arn"], "groups": [PROXY_GROUP]},
        ],
        config={"identity": {"trusted_proxy_users": ["emrfs-yarn"]}, "fallback": {"mode": "deny"}},
    )


def ask(os_users, agent, who, user=None):
    url = agent.credentials_url + (f"?user={user}" if user else "")
    out = os_users.python_as(who, ASK, env={"URL": url, "TOKEN": agent.token})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_user_and_group_rules_pick_roles_for_real_os_users(moto, agent_factory, os_users):
    agent = start(agent_factory, moto)
    for who, role in ((os_users.alice, "analytics"), (os_users.bob, "engineering")):
        env = agent.client_env()
        env["MOTO"] = moto.endpoint
        out = os_users.python_as(who, WHOAMI, env=env)
        assert out.returncode == 0, out.stderr
        assert f":assumed-role/{role}/" in json.loads(out.stdout)["Arn"]
    # Neither user nor group matches root: fallback deny.
    r = agent.credentials()
    assert (r.status_code, r.json()["code"]) == (403, "AccessDenied")

    records = [r for r in agent.audit_records() if r["event"] == "credentials"]
    alice, bob, root = records[0], records[1], records[-1]
    assert (alice["caller_uid"], alice["caller_user"], alice["user"]) == (os_users.alice.uid, "emrfs-alice", "emrfs-alice")
    assert alice["rule_name"] == "alice-user" and sorted(alice["groups"]) == os_users.alice.groups
    assert (bob["caller_uid"], bob["user"], bob["rule_name"]) == (os_users.bob.uid, "emrfs-bob", "engineers")
    assert "emrfs-engineers" in bob["groups"] and not bob["asserted"]
    assert sorted(bob["groups"]) == os_users.bob.groups
    assert (root["caller_uid"], root["user"], root["rule_name"], root["outcome"]) == (0, "root", None, "deny")


def test_user_parameter_needs_a_trusted_proxy(moto, agent_factory, os_users):
    agent = start(agent_factory, moto)
    # Asking as yourself is fine.
    assert ask(os_users, agent, os_users.alice, user="emrfs-alice")["status"] == 200
    # bob may not ask for alice.
    denied = ask(os_users, agent, os_users.bob, user="emrfs-alice")
    assert denied["status"] == 403 and denied["body"]["code"] == "ImpersonationDenied"
    # The YARN-like proxy user may; the asserted user's own groups decide.
    as_alice = ask(os_users, agent, os_users.yarn, user="emrfs-alice")
    assert as_alice["status"] == 200 and as_alice["body"]["RoleArn"] == moto.role("analytics")["arn"]
    as_bob = ask(os_users, agent, os_users.yarn, user="emrfs-bob")
    assert as_bob["body"]["RoleArn"] == moto.role("engineering")["arn"]
    # The proxy asking for itself is decided by its own groups: the proxy-group rule.
    as_yarn = ask(os_users, agent, os_users.yarn)
    assert as_yarn["status"] == 200 and as_yarn["body"]["RoleArn"] == moto.role("engineering")["arn"]
    # An asserted user the OS does not know has no groups: not the proxy's, so no proxy-group rule,
    # and the fallback denies.
    unknown = ask(os_users, agent, os_users.yarn, user="no-such-user")
    assert unknown["status"] == 403 and unknown["body"]["code"] == "AccessDenied"

    records = [r for r in agent.audit_records() if r["event"] == "credentials"]
    by_status = [(r["caller_user"], r["user"], r["asserted"], r["status"]) for r in records]
    assert by_status == [
        ("emrfs-alice", "emrfs-alice", False, 200),
        ("emrfs-bob", "emrfs-alice", True, 403),
        ("emrfs-yarn", "emrfs-alice", True, 200),
        ("emrfs-yarn", "emrfs-bob", True, 200),
        ("emrfs-yarn", "emrfs-yarn", False, 200),
        ("emrfs-yarn", "no-such-user", True, 403),
    ]
    assert records[2]["caller_uid"] == os_users.yarn.uid
    assert records[3]["groups"] == os_users.bob.groups or set(records[3]["groups"]) == set(os_users.bob.groups)
    # An asserted user's groups are that user's alone, never joined with the proxy's.
    assert sorted(records[2]["groups"]) == os_users.alice.groups and records[2]["rule_name"] == "alice-user"
    assert PROXY_GROUP not in records[3]["groups"] and records[3]["rule_name"] == "engineers"
    yarn = records[4]
    assert PROXY_GROUP in yarn["groups"] and (yarn["rule_name"], yarn["role_arn"]) == (
        "proxy-group", moto.role("engineering")["arn"])
    unknown = records[5]
    assert unknown["caller_uid"] == os_users.yarn.uid and unknown["groups"] == []
    assert (unknown["rule_index"], unknown["rule_name"], unknown["role_arn"]) == (None, None, None)
    assert (unknown["outcome"], unknown["error_code"]) == ("deny", "AccessDenied")
