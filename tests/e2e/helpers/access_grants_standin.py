"""A stand-in for S3 Control `GetDataAccess` (S3 Access Grants), next to a moto server in one process.

moto has no S3 Access Grants. This module answers the one call the agent makes, as the API reference
describes it:
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_control_GetDataAccess.html
    (error body and codes: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html)
and as botocore's service model for s3control 2018-08-20 (generated from the same API definition as every
SDK, aws-sdk-s3control included) shapes it. tests/e2e/test_access_grants_standin.py checks with boto3's
real client that both agree.

Running it
    python access_grants_standin.py [--port 0] [--moto-port 0] [--host 127.0.0.1] [--grants grants.json]
                                    [--no-session-policies]
starts moto's server (moto.server.ThreadedMotoServer: STS, IAM, S3, ...) and the stand-in in this one
process, and prints one line `access-grants-standin ready {"moto": URL, "endpoint": URL}` on stdout.
From a test: `MotoWithAccessGrants(log_dir)` does that and is a drop-in for helpers.moto_server.MotoServer
(`.endpoint` is moto, `.setup()` builds the usual world), plus `.grants_endpoint` and the admin calls below.

Why one process: a GetDataAccess call is SigV4-signed by the grantee's session keys, which moto's STS
issued. The stand-in checks the signature with botocore's own signer (S3SigV4Auth, the class moto itself
checks S3 signatures with), for which it needs the session's secret key: it reads it from moto's STS
backend state (moto.sts.models.sts_backends, the list of assumed-role sessions), which it can only do in
moto's process. The vended credentials are also real moto STS sessions, made with the same backend call
moto's AssumeRole handler makes.

The request (GET, rest-xml, signing name "s3", any region: the one in the signature's scope)
    GET /v20180820/accessgrantsinstance/dataaccess?target=S3URI&permission=READ|WRITE|READWRITE
        [&durationSeconds=900..43200 (default 3600)][&privilege=Default|Minimal][&targetType=Object]
        [&auditContext...]                                  (ignored)
    x-amz-account-id: <12 digits>                            the Access Grants instance's account
    Host: <account>.<host>:<port>  or  <host>:<port>
The SDKs' endpoint rules for s3control put `{AccountId}.` in front of a custom endpoint's authority
(`http://localhost:PORT` -> `http://123456789012.localhost:PORT`); botocore's inject_host_prefix=False /
AWS_DISABLE_HOST_PREFIX_INJECTION do NOT remove it (they only govern the model's hostPrefix trait). A client
therefore has to reach `<account>.<host>`; two honest ways, both accepted here:
  - use the stand-in as the client's HTTP proxy (boto3: Config(proxies={"http": grants_endpoint});
    Rust: aws_smithy_http_client ProxyConfig::http(grants_endpoint)): the request line is then absolute-form,
    `GET http://123456789012.localhost:PORT/v20180820/...`, and the Host header is the prefixed one;
  - resolve `<account>.localhost` to 127.0.0.1 in the client (Rust: a ResolveDns given to
    aws_smithy_http_client's build_with_resolver) and connect directly.
For the agent: `[access_grants] endpoint_url = "http://localhost:<grants port>"` and, in the test build,
an s3control client whose HTTP client has ProxyConfig::http("http://127.0.0.1:<grants port>") (only that
client: STS and S3 keep going straight to moto). A Host without the prefix (a client whose endpoint
resolver leaves it out) is accepted too. <host> must be
one of the names the stand-in answers as (127.0.0.1, localhost, --host), <port> its own port; a prefix must
equal x-amz-account-id.

Checks, in S3's order (authentication first), and what a failure answers. Every error is S3 Control's
wrapped XML, `<ErrorResponse><Error><Code/><Message/></Error><RequestId/><HostId/></ErrorResponse>`
(aws-sdk-s3control parses errors with rest_xml_wrapped_errors; botocore reads both forms), with the
`x-amz-request-id` and `x-amz-id-2` headers:
    Host not ours / prefix is not x-amz-account-id       400 InvalidRequest
    no Authorization header (anonymous)                  403 AccessDenied
    not AWS4-HMAC-SHA256, scope service not "s3",
      scope date not X-Amz-Date's day                    400 AuthorizationHeaderMalformed
    X-Amz-Date more than 15 min off                      403 RequestTimeTooSkewed
    access key unknown to moto (STS sessions, IAM users) 403 InvalidAccessKeyId
    session token missing or not the session's           400 InvalidToken
    session expired                                      400 ExpiredToken
    x-amz-content-sha256 not the body's hash             400 XAmzContentSHA256Mismatch
    signature differs                                    403 SignatureDoesNotMatch
    wrong method/path                                    405 MethodNotAllowed / 404 NoSuchResource
    x-amz-account-id missing or not 12 digits,
      target/permission missing, permission, privilege,
      targetType not in the model's enums, durationSeconds
      not an integer in 900..43200                       400 InvalidRequest
    moto's IAM enforcement on and the caller's identity
      policies do not allow s3:GetDataAccess on
      arn:aws:s3:<region>:<account>:access-grants/default 403 AccessDenied ("... is not authorized ...")
    no grant for (caller, target, permission)            403 AccessDenied
The reference lists no operation-specific errors; where it names no code (parameter validation, the host
check) the stand-in uses S3's general InvalidRequest.

Grants (the instance's grant table). JSON, from --grants FILE or `PUT /_standin/grants`:
    {"location_role": "arn:aws:iam::123456789012:role/grants-location",   # the registered location's role
     "grants": [{"grantee": "arn:aws:iam::123456789012:role/reader",        # IAM role (or user) ARN
                 "scope": "s3://lake/curated/*",                            # s3://b/prefix* | s3://b/key | s3://*
                 "permission": "READ",                                      # READ | WRITE | READWRITE
                 "account": null,               # instance account; default: the grantee ARN's account
                 "location_role": null}]}       # overrides the top-level one for this grant
The caller is the grantee: for an assumed-role session, the role's ARN (arn:aws:iam::A:role/NAME, as
S3 Access Grants matches IAM grantees); for an IAM user, the user's ARN. A grant applies when its account is
x-amz-account-id, its grantee is the caller, its scope covers the target (a scope ending in `*` covers every
target that starts with the part before the `*`; a scope without `*` is one object and covers only itself;
`s3://*` covers all) and its permission covers the asked one (READWRITE covers READ and WRITE). Of those,
the most specific (longest scope) wins. The answer:
    <GetDataAccessResult><Credentials><AccessKeyId/><SecretAccessKey/><SessionToken/><Expiration/>
    </Credentials><MatchedGrantTarget>the grant's scope as written</MatchedGrantTarget>
    <Grantee><GranteeType>IAM</GranteeType><GranteeIdentifier>caller ARN</GranteeIdentifier></Grantee>
    </GetDataAccessResult>
The credentials are a moto STS session of the grant's location role (session name "access-grants-N",
duration = durationSeconds), with a session policy that allows only the granted S3 actions on the grant
scope (privilege Default) or on the target (privilege Minimal), as S3 Access Grants does:
    READ   s3:GetObject, GetObjectVersion, GetObjectAcl, GetObjectVersionAcl; s3:ListBucket and
           ListBucketVersions with an s3:prefix inside the scope
    WRITE  s3:PutObject (also multipart parts and completion), PutObjectAcl, PutObjectVersionAcl,
           DeleteObject, DeleteObjectVersion, AbortMultipartUpload, ListMultipartUploadParts;
           s3:ListBucketMultipartUploads with a prefix inside the scope
    READWRITE  both
moto 5.2 stores session policies but does not evaluate them. With IAM enforcement on, this process makes
moto hold S3 requests signed by a vended session to that policy as well as to the location role's own
policies (an intersection, as IAM does) - see install_session_policy_enforcement; --no-session-policies
turns that off. Sessions the stand-in did not vend are untouched.

Two more adjustments to moto in this process: its IAM policy validator accepts Access Grants ARNs
(arn:aws:s3:<region>:<account>:access-grants/default; it knew only access points), so grantee roles can be
given `s3:GetDataAccess` on the instance, as the reference requires (checked while moto's IAM enforcement is
on, by moto's own policy evaluation); and the session-policy check above.

Admin endpoints (JSON; not part of the AWS API):
    PUT  /_standin/grants    the grant table above (replaces it; location roles must exist in moto's IAM,
                             else 400; from --grants they are checked when used: gone -> 403 AccessDenied)
    GET  /_standin/grants
    POST /_standin/faults    {"throttle": N, "throttle_code": "SlowDown"|"TooManyRequestsException",
                              "internal_error": N}: the next N authenticated GetDataAccess calls answer
                              503 SlowDown (or 400 TooManyRequestsException, the model's throttling shape)
                              / 500 InternalError; throttling is served first
    GET  /_standin/calls     {"count": N, "calls": [{"grantee", "account", "target", "permission",
                              "privilege", "duration", "target_type", "status", "code", "matched",
                              "host", "request_line", "query", "headers": [names], "signed_headers"}]}
                             every request that reached the GetDataAccess path, in order (no secrets)
    POST /_standin/reset     forgets calls and pending faults (not grants)
    GET  /_standin/health    200
"""

import argparse
import datetime
import hashlib
import html
import itertools
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA_ACCESS_PATH = "/v20180820/accessgrantsinstance/dataaccess"
READY = "access-grants-standin ready"
S3CONTROL_NS = "http://awss3control.amazonaws.com/doc/2018-08-20/"
PERMISSIONS = ("READ", "WRITE", "READWRITE")
PRIVILEGES = ("Default", "Minimal")
MIN_DURATION, MAX_DURATION, DEFAULT_DURATION = 900, 43200, 3600
MAX_SKEW = datetime.timedelta(minutes=15)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_ACCOUNT = re.compile(r"^\d{12}$")
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]+)\s*$"
)
READ_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectAcl", "s3:GetObjectVersionAcl"]
WRITE_ACTIONS = ["s3:PutObject", "s3:PutObjectAcl", "s3:PutObjectVersionAcl", "s3:DeleteObject",
                 "s3:DeleteObjectVersion", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]


class S3Error(Exception):
    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


# ---------------------------------------------------------------------------------------------------------
# Grants


def _split_scope(scope):
    """(bucket-and-key prefix, is_prefix) of a grant scope: s3://b/p/* -> ("b/p/", True)."""
    if not scope.startswith("s3://") or len(scope) <= len("s3://"):
        raise ValueError(f"grant scope {scope!r}: expected s3://bucket/prefix*, s3://bucket/key or s3://*")
    body = scope[len("s3://"):]
    if body.endswith("*"):
        body = body[:-1]
        if "*" in body:
            raise ValueError(f"grant scope {scope!r}: '*' only at the end")
        return body, True
    if "*" in body:
        raise ValueError(f"grant scope {scope!r}: '*' only at the end")
    return body, False


def _arn_account(arn):
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 else None


def covers(permission_granted, permission_asked):
    return permission_granted == "READWRITE" or permission_granted == permission_asked


class GrantTable:
    def __init__(self, spec=None):
        self.location_role = None
        self.grants = []
        if spec:
            self.load(spec)

    def load(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("grant table: expected a JSON object")
        unknown = set(spec) - {"location_role", "grants"}
        if unknown:
            raise ValueError(f"grant table: unknown keys {sorted(unknown)}")
        location_role = spec.get("location_role")
        grants = []
        for i, g in enumerate(spec.get("grants", [])):
            unknown = set(g) - {"grantee", "scope", "permission", "account", "location_role"}
            if unknown:
                raise ValueError(f"grant {i}: unknown keys {sorted(unknown)}")
            for key in ("grantee", "scope", "permission"):
                if not g.get(key):
                    raise ValueError(f"grant {i}: {key} is required")
            if g["permission"] not in PERMISSIONS:
                raise ValueError(f"grant {i}: permission {g['permission']!r} not one of {PERMISSIONS}")
            prefix, is_prefix = _split_scope(g["scope"])
            account = g.get("account") or _arn_account(g["grantee"])
            if not account or not _ACCOUNT.match(account):
                raise ValueError(f"grant {i}: no 12-digit account (grantee {g['grantee']!r})")
            role = g.get("location_role") or location_role
            if not role:
                raise ValueError(f"grant {i}: no location_role (top level or per grant)")
            grants.append(dict(g, account=account, location_role=role, _prefix=prefix, _is_prefix=is_prefix))
        self.location_role, self.grants = location_role, grants

    def as_json(self):
        return {"location_role": self.location_role,
                "grants": [{k: v for k, v in g.items() if not k.startswith("_")} for g in self.grants]}

    def match(self, account, grantee, target, permission):
        """The most specific grant for (account, grantee) covering target and permission, or None."""
        path = target[len("s3://"):] if target.startswith("s3://") else None
        if path is None:
            return None
        best = None
        for g in self.grants:
            if g["account"] != account or g["grantee"] != grantee or not covers(g["permission"], permission):
                continue
            hit = path.startswith(g["_prefix"]) if g["_is_prefix"] else path == g["_prefix"]
            if hit and (best is None or len(g["_prefix"]) > len(best["_prefix"])
                        or (len(g["_prefix"]) == len(best["_prefix"]) and not g["_is_prefix"])):
                best = g
        return best


def session_policy(scope_prefix, is_prefix, permission):
    """The session policy the vended credentials carry: the granted actions on the scope only."""
    bucket, _, key = scope_prefix.partition("/")
    actions = {"READ": READ_ACTIONS, "WRITE": WRITE_ACTIONS, "READWRITE": READ_ACTIONS + WRITE_ACTIONS}[permission]
    bucket_arn = f"arn:aws:s3:::{bucket}" if bucket else "arn:aws:s3:::*"
    object_arn = f"{bucket_arn}/{key}*" if is_prefix else f"{bucket_arn}/{key}"
    statements = [{"Effect": "Allow", "Action": actions, "Resource": object_arn}]
    list_actions = [a for a, p in _LIST_ACTIONS.items() if covers(permission, p)]
    statements.append({"Effect": "Allow", "Action": [f"s3:{a}" for a in list_actions], "Resource": bucket_arn,
                       "Condition": {"StringLike": {"s3:prefix": f"{key}*" if is_prefix else key}}})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


# moto evaluates an assumed role's own policies for S3 requests but not its session policy. For the
# sessions this stand-in vends, S3 requests are also held to the session policy's content (the
# intersection IAM computes): object actions of the permission on keys inside the scope, s3:ListBucket
# (READ) / s3:ListBucketMultipartUploads (WRITE) with a prefix inside the scope, nothing else.
_VENDED = {}  # access key id -> (permission, scope prefix "bucket/key...", is_prefix)
_VENDED_LOCK = threading.Lock()
_LIST_ACTIONS = {"ListBucket": "READ", "ListBucketVersions": "READ", "ListBucketMultipartUploads": "WRITE"}


def session_allows(vended, action, resource, path):
    """Whether the vended session's policy allows `action` ("s3:GetObject") on `resource` (an S3 ARN) for a
    request to `path` (with its query)."""
    permission, prefix, is_prefix = vended
    name = action.split(":", 1)[1]
    arn = resource.split(":::", 1)[1] if ":::" in resource else ""
    bucket, _, key = arn.partition("/")

    def inside(p):
        return p.startswith(prefix) if is_prefix else p == prefix

    if name in _LIST_ACTIONS:
        if not covers(permission, _LIST_ACTIONS[name]):
            return False
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query, keep_blank_values=True))
        return inside(f"{bucket}/{query.get('prefix', '')}")
    allowed = {"READ": READ_ACTIONS, "WRITE": WRITE_ACTIONS, "READWRITE": READ_ACTIONS + WRITE_ACTIONS}[permission]
    return action in allowed and bool(key) and inside(f"{bucket}/{key}")


def install_session_policy_enforcement():
    from moto.iam.access_control import S3IAMRequest

    if getattr(S3IAMRequest, "_access_grants_patched", False):
        return
    original = S3IAMRequest.check_action_permitted

    def check_action_permitted(self, resource):
        original(self, resource)
        with _VENDED_LOCK:
            vended = _VENDED.get(getattr(self._access_key, "_access_key_id", None))
        if vended is not None and not session_allows(vended, self._action, resource, self._path):
            self._raise_access_denied()

    S3IAMRequest.check_action_permitted = check_action_permitted
    S3IAMRequest._access_grants_patched = True


# ---------------------------------------------------------------------------------------------------------
# Signature checking against moto's state


def find_secret(access_key_id):
    """(secret, session token or None, caller ARN, expiration or None) of a key moto issued, or None."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account_id in list(sts_backends.keys()):
        for partition in list(sts_backends[account_id].keys()):
            for session in list(sts_backends[account_id][partition].assumed_roles):
                if session.access_key_id == access_key_id:
                    # The grantee of an assumed-role session is the role (how Access Grants matches IAM).
                    return session.secret_access_key, session.session_token, session.role_arn, session.expiration
    for account_id in list(iam_backends.keys()):
        for partition in list(iam_backends[account_id].keys()):
            user = iam_backends[account_id][partition].get_user_from_access_key_id(access_key_id)
            if user:
                for key in user.access_keys:
                    if key.access_key_id == access_key_id:
                        return key.secret_access_key, None, user.arn, None
    return None


def verify_sigv4(method, path, query_pairs, headers, body, now=None):
    """Checks a SigV4 Authorization header against moto's keys. Returns (caller ARN, region, access key id,
    signed header names); raises S3Error as S3 answers. `headers`: list of (name, value) as received."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    lower = {}
    for name, value in headers:
        lower.setdefault(name.lower(), []).append(value)
    auth = (lower.get("authorization") or [None])[0]
    if not auth:
        raise S3Error(403, "AccessDenied", "Access Denied")
    m = _AUTH.match(auth.strip())
    if not m:
        raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed.")
    cred = m.group("cred").split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the "
                      "Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
    key_id, day, region, service = cred[:4]
    if service != "s3":
        raise S3Error(400, "AuthorizationHeaderMalformed", f"The authorization header is malformed; "
                      f"incorrect service \"{service}\". This endpoint belongs to \"s3\".")
    amz_date = (lower.get("x-amz-date") or [""])[0]
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise S3Error(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
    if day != amz_date[:8]:
        raise S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; "
                      f"Invalid credential date \"{day}\". Date is not the same as X-Amz-Date: \"{amz_date[:8]}\".")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if abs(now - when) > MAX_SKEW:
        raise S3Error(403, "RequestTimeTooSkewed",
                      "The difference between the request time and the current time is too large.")
    found = find_secret(key_id)
    if found is None:
        raise S3Error(403, "InvalidAccessKeyId",
                      "The AWS Access Key Id you provided does not exist in our records.")
    secret, token, caller, expiration = found
    sent_token = (lower.get("x-amz-security-token") or [None])[0]
    if token is not None or sent_token is not None:
        if sent_token != token:
            raise S3Error(400, "InvalidToken", "The provided token is malformed or otherwise invalid.")
    if expiration is not None:
        exp = expiration if expiration.tzinfo else expiration.replace(tzinfo=datetime.timezone.utc)
        if exp <= now:
            raise S3Error(400, "ExpiredToken", "The provided token has expired.")
    content_sha = (lower.get("x-amz-content-sha256") or [None])[0]
    if content_sha is not None and content_sha != UNSIGNED_PAYLOAD and content_sha != hashlib.sha256(body).hexdigest():
        raise S3Error(400, "XAmzContentSHA256Mismatch",
                      "The provided 'x-amz-content-sha256' header does not match what was computed.")
    signed = m.group("signed").split(";")
    signed_headers = [(n, v) for n, v in headers if n.lower() in signed]
    # S3 canonicalises the received request (path as sent, query decoded then SigV4-encoded by botocore).
    request = AWSRequest(method=method, url=f"http://signed-host{path}", params=query_pairs,
                         headers=dict(signed_headers), data=body)
    if "x-amz-content-sha256" not in signed:
        request.headers.pop("X-Amz-Content-SHA256", None)
    request.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials(key_id, secret, token), "s3", region)
    canonical = signer.canonical_request(request)
    if content_sha is None:
        # Signed without x-amz-content-sha256 (a plain SigV4 client): the payload hash is the body's.
        canonical = canonical.rsplit("\n", 1)[0] + "\n" + hashlib.sha256(body).hexdigest()
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not secrets.compare_digest(expected, m.group("sig")):
        raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                      "signature you provided. Check your key and signing method.")
    return caller, region, key_id, signed


def allow_access_grants_arns_in_policies():
    """moto's policy validator refuses S3 ARNs with a region unless they name an access point; IAM accepts
    Access Grants ARNs (arn:aws:s3:<region>:<account>:access-grants/default). Teach it that one."""
    from moto.iam import policy_validation

    starts = policy_validation.SERVICE_TYPE_REGION_INFORMATION_ERROR_ASSOCIATIONS["s3"].setdefault(
        "valid_starting_values", [])
    if "access-grants/" not in starts:
        starts.append("access-grants/")


def _enforcing():
    """Whether moto's IAM enforcement is on now (set_enforcement / /moto-api/reset-auth)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


def check_get_data_access_allowed(key_id, token, account, region):
    """With moto's IAM enforcement on, the caller's identity policies must allow s3:GetDataAccess on the
    instance (arn:aws:s3:<region>:<account>:access-grants/default), as the reference requires; moto's own
    policy evaluation (moto.iam.access_control) decides. Raises S3Error 403 AccessDenied otherwise."""
    if not _enforcing():
        return
    from moto.iam.access_control import CreateAccessKeyFailure, IAMPolicy, PermissionResult, create_access_key

    instance = f"arn:aws:s3:{region}:{account}:access-grants/default"
    caller_account = None
    found = find_secret(key_id)
    if found:
        caller_account = _arn_account(found[2])
    headers = {"X-Amz-Security-Token": token} if token else {}
    try:
        key = create_access_key(account_id=caller_account, partition="aws", access_key_id=key_id, headers=headers)
    except CreateAccessKeyFailure:
        raise S3Error(403, "AccessDenied", "Access Denied")
    permitted = False
    for policy in key.collect_policies():
        result = IAMPolicy(policy).is_action_permitted("s3:GetDataAccess", instance)
        if result == PermissionResult.DENIED:
            permitted = False
            break
        permitted = permitted or result == PermissionResult.PERMITTED
    if not permitted:
        raise S3Error(403, "AccessDenied", f"User: {key.arn} is not authorized to perform: s3:GetDataAccess "
                      f"on resource: {instance}")


# ---------------------------------------------------------------------------------------------------------
# The server


def _role_exists(role_arn):
    from moto.iam.models import iam_backends

    try:
        iam_backends[_arn_account(role_arn)]["aws"].get_role_by_arn(role_arn)
        return True
    except Exception:
        return False


def _xml_error(code, message, request_id, host_id):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Code>{code}</Code>'
            f"<Message>{html.escape(message)}</Message></Error><RequestId>{request_id}</RequestId>"
            f"<HostId>{host_id}</HostId></ErrorResponse>").encode()


def _iso(dt):
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class StandIn:
    """The GetDataAccess stand-in (HTTP server thread). `names`: host names it answers as."""

    def __init__(self, host="127.0.0.1", port=0, grants=None, names=("127.0.0.1", "localhost"),
                 enforce_session_policies=True):
        self.table = GrantTable(grants)
        self.enforce_session_policies = enforce_session_policies
        allow_access_grants_arns_in_policies()
        if enforce_session_policies:
            install_session_policy_enforcement()
        self.lock = threading.Lock()
        self.calls = []
        self.faults = {"throttle": 0, "throttle_code": "SlowDown", "internal_error": 0}
        self.names = {n.lower() for n in names} | {host.lower()}
        self._sessions = itertools.count(1)
        standin = self

        class Handler(_Handler):
            pass

        Handler.standin = standin
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def set_grants(self, spec, check_roles=True):
        table = GrantTable(spec)
        if check_roles:
            for role in {g["location_role"] for g in table.grants}:
                if not _role_exists(role):
                    raise ValueError(f"location role {role} does not exist in moto's IAM")
        with self.lock:
            self.table = table

    def vend(self, grant, target, permission, privilege, duration, region):
        """A moto STS session of the grant's location role, scoped by a session policy."""
        from moto.sts.models import sts_backends

        if privilege == "Minimal":
            prefix = target[len("s3://"):]
            is_prefix = prefix.endswith("/") or "/" not in prefix
        else:
            prefix, is_prefix = grant["_prefix"], grant["_is_prefix"]
        policy = session_policy(prefix, is_prefix, permission)
        if not _role_exists(grant["location_role"]):
            # The location's role is gone: S3 Access Grants cannot assume it.
            raise S3Error(403, "AccessDenied", "S3 Access Grants could not assume the location's IAM role")
        account = _arn_account(grant["location_role"])
        backend = sts_backends[account]["aws"]
        session = backend.assume_role(
            region_name=region, role_session_name=f"access-grants-{next(self._sessions)}",
            role_arn=grant["location_role"], policy=policy, duration=duration, external_id=None)
        if self.enforce_session_policies:
            with _VENDED_LOCK:
                _VENDED[session.access_key_id] = (permission, prefix, is_prefix)
        return session


class _Handler(BaseHTTPRequestHandler):
    standin = None  # set per server
    server_version = "AmazonS3"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("access-grants-standin: " + (fmt % args) + "\n")

    def _send(self, status, body, content_type="application/xml", request_id=None):
        request_id = request_id or secrets.token_hex(8).upper()
        self.send_response(status)
        self.send_header("x-amz-request-id", request_id)
        self.send_header("x-amz-id-2", secrets.token_urlsafe(48))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status, obj):
        self._send(status, json.dumps(obj, indent=1).encode(), "application/json")

    def _body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    # admin ---------------------------------------------------------------------------------------------

    def _admin(self, method, path):
        s = self.standin
        body = self._body()
        try:
            if path == "/_standin/health" and method == "GET":
                return self._json(200, {"ok": True})
            if path == "/_standin/grants" and method == "GET":
                with s.lock:
                    return self._json(200, s.table.as_json())
            if path == "/_standin/grants" and method == "PUT":
                s.set_grants(json.loads(body))
                return self._json(200, {"grants": len(s.table.grants)})
            if path == "/_standin/faults" and method == "POST":
                spec = json.loads(body)
                unknown = set(spec) - {"throttle", "throttle_code", "internal_error"}
                if unknown:
                    raise ValueError(f"faults: unknown keys {sorted(unknown)}")
                code = spec.get("throttle_code", "SlowDown")
                if code not in ("SlowDown", "TooManyRequestsException"):
                    raise ValueError("throttle_code: SlowDown or TooManyRequestsException")
                with s.lock:
                    s.faults = {"throttle": int(spec.get("throttle", 0)), "throttle_code": code,
                                "internal_error": int(spec.get("internal_error", 0))}
                return self._json(200, s.faults)
            if path == "/_standin/calls" and method == "GET":
                with s.lock:
                    return self._json(200, {"count": len(s.calls), "calls": list(s.calls)})
            if path == "/_standin/reset" and method == "POST":
                with s.lock:
                    s.calls.clear()
                    s.faults = {"throttle": 0, "throttle_code": "SlowDown", "internal_error": 0}
                return self._json(200, {"ok": True})
        except (ValueError, TypeError, json.JSONDecodeError) as e:
            return self._json(400, {"error": str(e)})
        return self._json(404, {"error": f"no admin endpoint {method} {path}"})

    # GetDataAccess -------------------------------------------------------------------------------------

    def _handle(self):
        target = self.path
        absolute = target.startswith("http://") or target.startswith("https://")
        url = urllib.parse.urlsplit(target)
        if url.path.startswith("/_standin/") and not absolute:
            return self._admin(self.command, url.path)
        host = self.headers.get("Host", "")
        if absolute and url.netloc.lower() != host.lower():
            host = ""  # a proxy request whose Host disagrees with its URL: refuse below
        query_pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        record = {"request_line": self.requestline, "host": self.headers.get("Host", ""),
                  "query": query_pairs, "headers": sorted(k.lower() for k in self.headers.keys()),
                  "grantee": None, "account": self.headers.get("x-amz-account-id"), "target": None,
                  "permission": None, "privilege": None, "duration": None, "target_type": None,
                  "matched": None, "signed_headers": None}
        body = self._body()
        request_id = secrets.token_hex(8).upper()
        record["request_id"] = request_id
        try:
            result = self._get_data_access(url.path, host, query_pairs, body, record)
        except S3Error as e:
            record.update(status=e.status, code=e.code)
            self._record(record)
            return self._send(e.status, _xml_error(e.code, e.message, request_id, secrets.token_urlsafe(24)),
                              request_id=request_id)
        record.update(status=200, code=None)
        self._record(record)
        self._send(200, result, request_id=request_id)

    def _record(self, record):
        with self.standin.lock:
            self.standin.calls.append(record)

    def _check_host(self, host, account):
        name, _, port = host.rpartition(":")
        if not port.isdigit() or int(port) != self.standin.port:
            raise S3Error(400, "InvalidRequest", f"Host {host!r} is not this endpoint")
        name = name.lower()
        if name in self.standin.names:
            return None
        prefix, _, rest = name.partition(".")
        if rest in self.standin.names and _ACCOUNT.match(prefix):
            if prefix != account:
                raise S3Error(400, "InvalidRequest",
                              f"The account id in the host ({prefix}) is not the x-amz-account-id header ({account})")
            return prefix
        raise S3Error(400, "InvalidRequest", f"Host {host!r} is not this endpoint")

    def _get_data_access(self, path, host, query_pairs, body, record):
        s = self.standin
        account = self.headers.get("x-amz-account-id")
        self._check_host(host, account)
        caller, region, key_id, signed = verify_sigv4(self.command, path, query_pairs, list(self.headers.items()), body)
        record.update(grantee=caller, signed_headers=signed)
        if path != DATA_ACCESS_PATH:
            raise S3Error(404, "NoSuchResource", "The specified resource does not exist.")
        if self.command != "GET":
            raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        with s.lock:
            if s.faults["throttle"] > 0:
                s.faults["throttle"] -= 1
                if s.faults["throttle_code"] == "SlowDown":
                    raise S3Error(503, "SlowDown", "Please reduce your request rate.")
                raise S3Error(400, "TooManyRequestsException", "Too many requests.")
            if s.faults["internal_error"] > 0:
                s.faults["internal_error"] -= 1
                raise S3Error(500, "InternalError", "We encountered an internal error. Please try again.")
        if not account or not _ACCOUNT.match(account):
            raise S3Error(400, "InvalidRequest", "Missing or invalid required header x-amz-account-id")
        params = {}
        for k, v in query_pairs:
            if k in params:
                raise S3Error(400, "InvalidRequest", f"Query parameter {k} given more than once")
            params[k] = v
        target, permission = params.get("target"), params.get("permission")
        if not target:
            raise S3Error(400, "InvalidRequest", "Missing required parameter: target")
        if not permission:
            raise S3Error(400, "InvalidRequest", "Missing required parameter: permission")
        if permission not in PERMISSIONS:
            raise S3Error(400, "InvalidRequest", f"Invalid permission {permission!r}: READ, WRITE or READWRITE")
        if len(target) > 2000 or not target.startswith("s3://"):
            raise S3Error(400, "InvalidRequest", f"Invalid target {target!r}: an S3 URI s3://bucket[/key]")
        privilege = params.get("privilege", "Default")
        if privilege not in PRIVILEGES:
            raise S3Error(400, "InvalidRequest", f"Invalid privilege {privilege!r}: Default or Minimal")
        target_type = params.get("targetType")
        if target_type is not None and target_type != "Object":
            raise S3Error(400, "InvalidRequest", f"Invalid targetType {target_type!r}: the only value is Object")
        raw_duration = params.get("durationSeconds")
        try:
            duration = DEFAULT_DURATION if raw_duration is None else int(raw_duration)
        except ValueError:
            raise S3Error(400, "InvalidRequest", f"Invalid durationSeconds {raw_duration!r}")
        if not MIN_DURATION <= duration <= MAX_DURATION:
            raise S3Error(400, "InvalidRequest",
                          f"durationSeconds {duration} is outside {MIN_DURATION}..{MAX_DURATION}")
        record.update(target=target, permission=permission, privilege=privilege, duration=duration,
                      target_type=target_type)
        check_get_data_access_allowed(key_id, self.headers.get("x-amz-security-token"), account, region)
        with s.lock:
            grant = s.table.match(account, caller, target, permission)
        if grant is None:
            raise S3Error(403, "AccessDenied", "You do not have permission to access the requested data")
        record["matched"] = grant["scope"]
        session = s.vend(grant, target, permission, privilege, duration, region)
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<GetDataAccessResult xmlns="{S3CONTROL_NS}">'
                f"<Credentials><AccessKeyId>{session.access_key_id}</AccessKeyId>"
                f"<SecretAccessKey>{session.secret_access_key}</SecretAccessKey>"
                f"<SessionToken>{html.escape(session.session_token)}</SessionToken>"
                f"<Expiration>{_iso(session.expiration)}</Expiration></Credentials>"
                f"<MatchedGrantTarget>{html.escape(grant['scope'])}</MatchedGrantTarget>"
                f"<Grantee><GranteeType>IAM</GranteeType><GranteeIdentifier>{html.escape(caller)}"
                f"</GranteeIdentifier></Grantee></GetDataAccessResult>").encode()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


# ---------------------------------------------------------------------------------------------------------
# Process and test helper


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address both servers listen on")
    parser.add_argument("--port", type=int, default=0, help="stand-in port (0: a free one)")
    parser.add_argument("--moto-port", type=int, default=0, help="moto server port (0: a free one)")
    parser.add_argument("--grants", help="grant table JSON file (see the module doc); else empty")
    parser.add_argument("--no-session-policies", action="store_true",
                        help="do not hold vended sessions to their session policy in moto's S3")
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address=args.host, port=args.moto_port, verbose=False)
    moto.start()
    moto_port = moto.get_host_and_port()[1]
    standin = StandIn(args.host, args.port, enforce_session_policies=not args.no_session_policies)
    if args.grants:
        with open(args.grants) as f:
            # moto starts empty: the location roles are checked when a grant is used, not now.
            standin.set_grants(json.load(f), check_roles=False)
    print(f"{READY} " + json.dumps({"moto": f"http://{args.host}:{moto_port}", "endpoint": standin.endpoint}),
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


def _moto_server_base():
    from .moto_server import MotoServer
    return MotoServer


class MotoWithAccessGrants:
    """moto and the stand-in in one child process; a drop-in for MotoServer (endpoint, setup,
    set_enforcement, stop) with the stand-in's admin calls. `grants_endpoint`: where GetDataAccess goes."""

    def __init__(self, log_dir=None, host="127.0.0.1", grants_file=None, session_policies=True):
        import tempfile

        self.log_path = os.path.join(log_dir or tempfile.mkdtemp(prefix="grants-"), "moto-grants.log")
        self._log = open(self.log_path, "wb")
        argv = [sys.executable, os.path.abspath(__file__), "--host", host]
        if grants_file:
            argv += ["--grants", grants_file]
        if not session_policies:
            argv.append("--no-session-policies")
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        if not line.startswith(READY):
            self.stop()
            with open(self.log_path, errors="replace") as f:
                raise RuntimeError(f"access grants stand-in did not start:\n{f.read()[-4000:]}")
        info = json.loads(line[len(READY):])
        self.endpoint = info["moto"]
        self.grants_endpoint = info["endpoint"]
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self.grants_port = int(self.grants_endpoint.rsplit(":", 1)[1])

    # MotoServer's interface, on this process's moto
    def setup(self, *args, **kwargs):
        return _moto_server_base().setup(self, *args, **kwargs)

    def set_enforcement(self, enforce):
        return _moto_server_base().set_enforcement(self, enforce)

    # the stand-in's admin calls
    def _admin(self, method, path, body=None):
        import requests

        r = requests.request(method, f"{self.grants_endpoint}/_standin/{path}",
                             data=None if body is None else json.dumps(body), timeout=30)
        if r.status_code != 200:
            raise RuntimeError(f"{method} /_standin/{path}: {r.status_code} {r.text}")
        return r.json()

    def set_grants(self, location_role, grants):
        """grants: [{"grantee", "scope", "permission"[, "account", "location_role"]}]."""
        return self._admin("PUT", "grants", {"location_role": location_role, "grants": list(grants)})

    def inject(self, throttle=0, internal_error=0, throttle_code="SlowDown"):
        return self._admin("POST", "faults", {"throttle": throttle, "internal_error": internal_error,
                                              "throttle_code": throttle_code})

    def calls(self):
        return self._admin("GET", "calls")["calls"]

    def call_count(self):
        return self._admin("GET", "calls")["count"]

    def reset_calls(self):
        return self._admin("POST", "reset")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self._log.close()


if __name__ == "__main__":
    main()
