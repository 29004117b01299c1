#!/usr/bin/env bash
# The agent's main job, end to end, on this machine:
#   - starts a local STS/IAM/S3 emulator (moto server, from the test virtualenv this script builds),
#   - creates two destination roles with trust policies and the agent's source user (IAM enforced),
#   - starts `emrfs-role-agent serve` on config/demo.toml,
#   - fetches credentials through it with the AWS CLI, as any process on an EMR node would:
#     two S3 locations and one request for a mapped user,
#   - shows which role each got and the audit records, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/emrfs-role-agent/target}
VENV=${EMRFS_TEST_VENV:-$HOME/.cache/emrfs-role-agent/venv}
WORK=$(mktemp -d /tmp/emrfs-role-agent-demo.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
    for _ in $(seq 1 300); do
        if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "no answer from $1" >&2
    return 1
}

say "Preparing: test virtualenv (moto, AWS CLI) and the agent binary"
EMRFS_TEST_VENV=$VENV ./scripts/setup-test-env.sh >"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log"; exit 1; }
cargo build --quiet --bin emrfs-role-agent
AGENT=$CARGO_TARGET_DIR/debug/emrfs-role-agent

say "Starting the STS emulator"
MOTO_PORT=$(free_port)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
MOTO=http://127.0.0.1:$MOTO_PORT
wait_http "$MOTO/moto-api/"

say "Creating destination roles partner-writer and etl-role, and the node's source user"
"$VENV/bin/python" tests/e2e/helpers/moto_setup.py --endpoint "$MOTO" >"$WORK/world.json" <<'JSON'
{"user": "emr-node-instance-profile",
 "roles": [{"name": "partner-writer", "bucket": "partner-bucket"}, {"name": "etl-role", "bucket": "etl-bucket"}],
 "enforce_iam": true}
JSON
read -r KEY_ID SECRET < <("$VENV/bin/python" -c 'import json,sys; u=json.load(open(sys.argv[1]))["user"]; print(u["access_key_id"], u["secret_access_key"])' "$WORK/world.json")

say "Starting emrfs-role-agent on config/demo.toml"
AGENT_PORT=$(free_port)
printf '%s' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$WORK/token"
sed -e "s#127.0.0.1:9944#127.0.0.1:$AGENT_PORT#" \
    -e "s#http://127.0.0.1:5000#$MOTO#" \
    -e "s#/tmp/emrfs-role-agent-demo#$WORK#g" config/demo.toml >"$WORK/config.toml"
"$AGENT" check --config "$WORK/config.toml"
env -u AWS_PROFILE AWS_ACCESS_KEY_ID="$KEY_ID" AWS_SECRET_ACCESS_KEY="$SECRET" AWS_EC2_METADATA_DISABLED=true \
    "$AGENT" serve --config "$WORK/config.toml" 2>"$WORK/agent.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$AGENT_PORT/readyz"

# What an EMR node's processes see: the endpoint and the token, nothing else.
ask() {
    local query=$1
    echo "\$ AWS_CONTAINER_CREDENTIALS_FULL_URI='http://127.0.0.1:$AGENT_PORT/v1/credentials?$query' aws sts get-caller-identity"
    env -i PATH="$VENV/bin:/usr/bin:/bin" HOME="$WORK" AWS_DEFAULT_REGION=us-east-1 \
        AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$AGENT_PORT/v1/credentials?$query" \
        AWS_CONTAINER_AUTHORIZATION_TOKEN="$(cat "$WORK/token")" \
        aws sts get-caller-identity --endpoint-url "$MOTO" --query Arn --output text 2>&1 | sed 's/^/    /' || true
}

say "1. A Spark job reading s3://partner-bucket/exports/2026/ (prefix rule, scoped to the prefix)"
ask "location=s3://partner-bucket/exports/2026/"
say "2. A job asking for s3a://secrets-hr/payroll.csv (deny rule)"
ask "location=s3a://secrets-hr/payroll.csv"
say "3. A YARN container of user etl (user rule; the caller, root, is a trusted proxy user)"
ask "user=etl"

say "Audit records (one per request; joinable with CloudTrail by access_key_id)"
"$VENV/bin/python" - "$WORK/audit.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["event"] == "credentials":
        print(f'  {r["time"]} {r["outcome"]:5} {r["status"]} user={r["user"]} uid={r["caller_uid"]} '
              f'location={r["location"]} rule={r["rule_name"]} role={r["role_arn"]} '
              f'key={r["access_key_id"]} source={r["source"]}')
    else:
        extra = {k: v for k, v in r.items() if k in ("role_arn", "result", "rules", "sts_request_id")}
        print(f'  {r["time"]} {r["event"]} {json.dumps(extra) if extra else ""}')
PY
secrets=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["user"]["secret_access_key"])' "$WORK/world.json")
if grep -qF "$secrets" "$WORK/audit.log" "$WORK/agent.log"; then
    echo "a secret reached the agent's output" >&2
    exit 1
fi
say "Done: stopping the agent and the emulator"
