"""Builds the AWS side of a test in a running moto server: roles, buckets, the agent's source user.

Used by the pytest fixtures (imported) and by the Rust test support (run as a script with the test
virtualenv's python: `python moto_setup.py --endpoint URL < spec.json > world.json`).

Spec (JSON object; every key optional):

    {"user": "emrfs-agent-source",       # IAM user whose keys become the agent's source credentials
     "roles": [{"name": "analytics",     # role name; ARN arn:aws:iam::<account>:role/<name>
                "account": null,         # null = moto's default account 123456789012 (see below)
                "allowed_by_user": true, # the user's identity policy allows sts:AssumeRole on it
                "trusts_user": true,     # its trust policy names the user (else another principal)
                "external_id": null,     # trust policy requires StringEquals sts:ExternalId
                "bucket": null,          # its own bucket; default "<name>-bucket"
                "max_session_duration": 43200}],
     "buckets": [],                      # extra buckets no role may use
     "enforce_iam": true}                # turn on moto's IAM enforcement once everything exists

What moto 5.2 enforces once enforcement is on (checked by tests/e2e/test_harness.py and
tests/harness_smoke.rs):
  - every request must be signed with known keys (unknown keys: 403 InvalidClientTokenId);
  - the caller's identity policies, with the RoleArn as the resource of sts:AssumeRole;
  - the role's trust policy and its StringEquals sts:ExternalId condition, but only for roles in the
    caller's own account (the source user lives in 123456789012); a missing ExternalId passes the
    condition, a wrong one fails it; a trust principal must be the user's exact ARN (":root" fails);
  - the assumed role's own policies for S3 requests made with its session credentials.
Roles in other accounts are created through moto's x-moto-account-id header; AssumeRole on them checks the
user's identity policy but not their trust policy.

The result (JSON) lists the user's and an admin user's keys, every role with its ARN and bucket, and
every bucket. Each bucket holds one object, "seed.txt".
"""

import argparse
import json
import re
import sys

import boto3
import requests

DEFAULT_ACCOUNT = "123456789012"
REGION = "us-east-1"
SEED_KEY = "seed.txt"


def set_enforcement(endpoint, enforce):
    """Turns moto's IAM enforcement on (every following request is authorised) or off.

    moto's /moto-api/reset-auth takes a bare number as its body: the count of requests let through
    before enforcement starts ("inf" = never).
    """
    body = "0" if enforce else "inf"
    r = requests.post(f"{endpoint}/moto-api/reset-auth", data=body, timeout=30)
    r.raise_for_status()


def reset(endpoint):
    """Forgets every resource and turns enforcement off."""
    set_enforcement(endpoint, False)
    requests.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()


def _client(endpoint, service, account=None, key="testing", secret="testing"):
    client = boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )
    if account is not None:
        # moto files the request under this account instead of the one the keys belong to.
        def add_account(request, **_):
            request.headers["x-moto-account-id"] = account

        client.meta.events.register("before-sign.*.*", add_account)
    return client


def _policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _bucket_name(role_name):
    name = re.sub(r"[^a-z0-9-]", "-", role_name.lower()).strip("-")
    return f"{name}-bucket"


def _make_user(iam, name, policy):
    user = iam.create_user(UserName=name)["User"]
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "name": name,
        "arn": user["Arn"],
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
    }


def setup(endpoint, spec):
    """Creates what `spec` describes (see the module doc) and returns the world as a dict."""
    user_name = spec.get("user") or "emrfs-agent-source"
    user_arn = f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/{user_name}"
    iam = _client(endpoint, "iam")
    s3 = _client(endpoint, "s3")

    roles = []
    for r in spec.get("roles", []):
        account = r.get("account") or DEFAULT_ACCOUNT
        name = r["name"]
        trusts_user = r.get("trusts_user", True)
        statement = {
            "Effect": "Allow",
            "Principal": {
                "AWS": user_arn if trusts_user else f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/someone-else"
            },
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
        }
        if r.get("external_id"):
            statement["Condition"] = {"StringEquals": {"sts:ExternalId": r["external_id"]}}
        role_iam = iam if account == DEFAULT_ACCOUNT else _client(endpoint, "iam", account=account)
        arn = role_iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=_policy(statement),
            MaxSessionDuration=int(r.get("max_session_duration", 43200)),
        )["Role"]["Arn"]
        bucket = r.get("bucket") or _bucket_name(name)
        role_iam.put_role_policy(
            RoleName=name,
            PolicyName=f"{name}-s3",
            PolicyDocument=_policy(
                {
                    "Effect": "Allow",
                    "Action": "s3:*",
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ),
        )
        roles.append(
            {
                "name": name,
                "arn": arn,
                "account_id": account,
                "bucket": bucket,
                "external_id": r.get("external_id"),
                "allowed_by_user": r.get("allowed_by_user", True),
                "trusts_user": trusts_user,
            }
        )

    allowed = [r["arn"] for r in roles if r["allowed_by_user"]]
    # moto treats a statement without resources as matching every resource: leave it out instead.
    user_policy = (
        _policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": allowed}) if allowed else None
    )
    user = _make_user(iam, user_name, user_policy)
    admin = _make_user(
        iam, "emrfs-test-admin", _policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
    )

    buckets = [r["bucket"] for r in roles] + list(spec.get("buckets", []))
    for bucket in dict.fromkeys(buckets):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=SEED_KEY, Body=f"seed object of {bucket}\n".encode())

    enforce = bool(spec.get("enforce_iam", True))
    if enforce:
        set_enforcement(endpoint, True)
    return {
        "endpoint": endpoint,
        "region": REGION,
        "account_id": DEFAULT_ACCOUNT,
        "user": user,
        "admin": admin,
        "roles": roles,
        "buckets": list(dict.fromkeys(buckets)),
        "enforce_iam": enforce,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="moto server URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--reset", action="store_true", help="forget everything in moto first")
    args = parser.parse_args()
    spec = json.load(sys.stdin)
    if args.reset:
        reset(args.endpoint)
    json.dump(setup(args.endpoint, spec), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
