#!/usr/bin/env bash
# The instance-metadata path against the HTTP API, side by side in one run: one agent, one cached
# session, one client user (`nobody`), keep-alive wrk. The metadata path adds the NAT redirect, the
# caller's token check (HMAC) and the credentials re-rendered in the metadata service's format; the
# ratio says what that costs. See BENCHMARKS.md.
#
#   sudo bench/imds.sh                 # BENCH_DURATION (s per run, default 10), BENCH_ROUNDS (default 3),
#                                      # BENCH_NO_BUILD=1, BENCH_PROFILE=debug (checks the script only)
#
# Everything runs in a network namespace of its own, where 169.254.169.254 is an address of the
# namespace's loopback; nothing leaves it. Needs root, wrk, curl, nft, jq and the test virtualenv
# (scripts/setup-test-env.sh) for moto.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/emrfs-role-agent/target}
VENV=${EMRFS_TEST_VENV:-$HOME/.cache/emrfs-role-agent/venv}
DURATION=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-3}
PROFILE=${BENCH_PROFILE:-release}
BIN=$CARGO_TARGET_DIR/$PROFILE/emrfs-role-agent
NS=emrfs-bench-imds-$$
WORK=$(mktemp -d)
PIDS=()

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }
# (Background processes are started with `ip netns exec` itself, so that their pid is the process's.)
in_ns() { ip netns exec "$NS" "$@"; }
as_nobody() { in_ns setpriv --reuid nobody --regid nogroup --clear-groups "$@"; }

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_http() { # url
    for _ in $(seq 1 300); do
        if in_ns curl -s -o /dev/null "$1"; then return 0; fi
        sleep 0.1
    done
    die "no answer from $1"
}

((EUID == 0)) || die "needs root: a network namespace, the redirect, a client running as nobody"
if [[ -z ${BENCH_NO_BUILD:-} && $PROFILE == release ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --bin emrfs-role-agent)
fi
chmod 755 "$WORK"

ip netns add "$NS"
in_ns ip link set lo up
in_ns ip addr add 169.254.169.254/32 dev lo

ip netns exec "$NS" "$VENV/bin/moto_server" -H 127.0.0.1 -p 5555 >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
MOTO=http://127.0.0.1:5555
wait_http "$MOTO/moto-api/"
echo '{"roles": [{"name": "analytics"}], "enforce_iam": false}' |
    in_ns "$VENV/bin/python" "$ROOT/tests/e2e/helpers/moto_setup.py" --reset --endpoint "$MOTO" >"$WORK/world.json"
ROLE=$(jq -r '.roles[0].arn' "$WORK/world.json")

TOKEN=bench-$RANDOM$RANDOM
printf '%s' "$TOKEN" >"$WORK/token"
cat >"$WORK/config.toml" <<EOF
[server]
listen = ["127.0.0.1:9944"]
token_file = "$WORK/token"
# One load generator (one uid) at full speed.
max_connections_per_caller = 1000000
max_requests_per_caller = 1000000

[sts]
region = "us-east-1"
endpoint_url = "$MOTO"

[audit]
path = "$WORK/audit.log"
durability = "buffered"

[imds]
listen = "127.0.0.1:254"
# Only the credential paths are measured; nothing is forwarded.
upstream = "http://127.0.0.1:1"

[[mapping]]
name = "analytics"
role = "$ROLE"
users = ["nobody"]
EOF

AWS_ACCESS_KEY_ID=$(jq -r '.user.access_key_id' "$WORK/world.json") \
    AWS_SECRET_ACCESS_KEY=$(jq -r '.user.secret_access_key' "$WORK/world.json") \
    AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    ip netns exec "$NS" "$BIN" serve --config "$WORK/config.toml" 2>"$WORK/agent.log" &
PIDS+=($!)
wait_http http://127.0.0.1:9944/readyz
in_ns "$BIN" imds-redirect install --config "$WORK/config.toml" --backend nft >/dev/null

API_URL=http://127.0.0.1:9944/v1/credentials
IMDS_URL=http://169.254.169.254/latest/meta-data/iam/security-credentials/${ROLE##*/}
IMDS_TOKEN=$(as_nobody curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" \
    http://169.254.169.254/latest/api/token)
API_HEADER="Authorization: $TOKEN"
IMDS_HEADER="X-aws-ec2-metadata-token: $IMDS_TOKEN"
# Both answers come from the one cached session.
as_nobody curl -sf -H "$API_HEADER" "$API_URL" | jq -e .AccessKeyId >/dev/null
as_nobody curl -sf -H "$IMDS_HEADER" "$IMDS_URL" | jq -e .AccessKeyId >/dev/null

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); commit $(git -C "$ROOT" rev-parse --short HEAD); $PROFILE build"
run_wrk() { # label header url
    local rps
    rps=$(as_nobody wrk -t1 -c16 -d"${DURATION}s" -H "$2" "$3" | awk '/Requests\/sec/ { print $2 }')
    echo "$1 $rps"
}
for round in $(seq 1 "$ROUNDS"); do
    log "round $round"
    run_wrk api "$API_HEADER" "$API_URL"
    run_wrk imds "$IMDS_HEADER" "$IMDS_URL"
done | tee "$WORK/results.txt"
awk '{ sum[$1] += $2; n[$1]++ } END {
    api = sum["api"] / n["api"]; imds = sum["imds"] / n["imds"]
    printf "mean requests/s: api %.0f, imds %.0f; imds/api %.2f\n", api, imds, imds / api
}' "$WORK/results.txt"
grep -c '"via":"imds"' "$WORK/audit.log" | sed 's/^/audit records via imds: /'
