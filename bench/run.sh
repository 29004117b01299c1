#!/usr/bin/env bash
# Benchmarks of emrfs-role-agent, every figure a ratio against a baseline measured in the same run
# (see BENCHMARKS.md for the targets, the machine and the last results).
#
#   bench/run.sh                      # everything (~25 min with the default 5-minute soak)
#   BENCH_ONLY="hot newconn" bench/run.sh
#
# Sections (BENCH_ONLY, space-separated; default all, in this order):
#   startup   spawn → READY=1 and → first 200 from /readyz, 20 runs
#   hot       wrk, 64 keep-alive connections: agent (warm cache) vs baseline hyper server
#   newconn   a new TCP connection per request (examples/loadgen), agent vs baseline
#   identity  p50 latency with a new connection per request, without / with 10,000 extra idle
#             loopback connections open on the machine
#   memory    RSS after 10,000 cached sessions and 1,000,000 requests; then a soak (BENCH_SOAK s)
#   herd      1,000 concurrent cold requests for 1 key and for 100 keys (tests/hardening.rs,
#             release build, moto behind the counting proxy)
#   volume    STS calls per key per hour over 4 h of virtual time (examples/sts_volume)
#   fairness  with the default per-caller shares: a cold start of 1,000 executors of one user (none
#             throttled), and another user's latency while a proxy asks for 400 users' sessions at once
#             (tests/hostile.rs, release build, as root: the other user is `nobody`)
#
# Knobs: BENCH_DURATION (s per throughput run, default 10), BENCH_ROUNDS (alternating rounds,
# default 3), BENCH_SOAK (s, default 300), BENCH_NO_BUILD=1 (reuse the last release build),
# BENCH_OUT (results directory, default bench/results/<UTC time>), BENCH_PROFILE=debug (check the
# script against debug builds; its figures mean nothing).
# Needs: wrk, curl, the test virtualenv (scripts/setup-test-env.sh) for moto.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/emrfs-role-agent/target}
VENV=${EMRFS_TEST_VENV:-$HOME/.cache/emrfs-role-agent/venv}
DURATION=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-3}
SOAK=${BENCH_SOAK:-300}
ONLY=${BENCH_ONLY:-startup hot newconn identity memory herd volume fairness}
OUT=${BENCH_OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
PROFILE=${BENCH_PROFILE:-release}   # "debug" only to check the script itself quickly
BIN=$CARGO_TARGET_DIR/$PROFILE/emrfs-role-agent
EX=$CARGO_TARGET_DIR/$PROFILE/examples

mkdir -p "$OUT"
RAW=$OUT/raw.txt
: >"$RAW"
WORK=$(mktemp -d)
PIDS=()

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
want() { [[ " $ONLY " == *" $1 "* ]]; }
record() { printf '%s\n' "$*" | tee -a "$RAW"; }

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url [header]
    for _ in $(seq 1 300); do
        if curl -sf -o /dev/null ${2:+-H "$2"} "$1"; then return 0; fi
        sleep 0.1
    done
    echo "no answer from $1" >&2
    return 1
}

cpu_seconds() { # pid → user+system CPU seconds
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# ---- machine ---------------------------------------------------------------------------------
{
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "memory: $(free -m | awk '/^Mem:/ { print $2 }') MiB; kernel $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "rustc: $(rustc --version); wrk: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet -- src || echo ' (src modified)')"
} | tee "$OUT/machine.txt" >&2

# ---- build (release, once) ---------------------------------------------------------------------
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
    log "building release binary and examples"
    (cd "$ROOT" && cargo build --release --bins --examples)
    if want herd; then
        (cd "$ROOT" && cargo test --release --test hardening --no-run)
    fi
fi

# ---- moto and the agent -------------------------------------------------------------------------
MOTO_PORT=$(free_port)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
MOTO=http://127.0.0.1:$MOTO_PORT
wait_http "$MOTO/moto-api/"
echo '{"roles": [{"name": "analytics"}], "enforce_iam": false}' |
    "$VENV/bin/python" "$ROOT/tests/e2e/helpers/moto_setup.py" --reset --endpoint "$MOTO" >"$WORK/world.json"
ROLE=$(jq -r '.roles[0].arn' "$WORK/world.json")
BUCKET=$(jq -r '.roles[0].bucket' "$WORK/world.json")
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
AWS_ACCESS_KEY_ID=$(jq -r '.user.access_key_id' "$WORK/world.json")
AWS_SECRET_ACCESS_KEY=$(jq -r '.user.secret_access_key' "$WORK/world.json")
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

AGENT_PORT=$(free_port)
TOKEN=bench-$RANDOM$RANDOM
printf '%s' "$TOKEN" >"$WORK/token"
cat >"$WORK/config.toml" <<EOF
[server]
listen = ["127.0.0.1:$AGENT_PORT"]
token_file = "$WORK/token"
# One load generator (one uid) at full speed: the per-tenant shares would throttle it. They are
# measured in the fairness section.
max_connections_per_caller = 1000000
max_requests_per_caller = 1000000

[identity]
trusted_proxy_users = ["$(id -un)"]

[sts]
region = "us-east-1"
endpoint_url = "$MOTO"
session_name = "{user}"
max_calls_per_second = 500
max_calls_per_caller = 500

[audit]
path = "$WORK/audit.log"
durability = "buffered"

[[mapping]]
name = "analytics"
role = "$ROLE"
prefixes = ["s3://$BUCKET/"]
EOF
AGENT_URL=http://127.0.0.1:$AGENT_PORT
# One session key for the throughput runs: user bench-0 (the caller itself may assert users).
CRED_PATH="/v1/credentials?location=s3://$BUCKET/data/part-00000&user=bench-0"
AUTH="Authorization: $TOKEN"

if want startup; then
    log "start-up to ready"
    record "$("$EX/loadgen" startup --bin "$BIN" --config "$WORK/config.toml" --addr "127.0.0.1:$AGENT_PORT" --runs 20)"
fi

"$BIN" serve --config "$WORK/config.toml" 2>"$WORK/agent.log" &
AGENT_PID=$!
PIDS+=($AGENT_PID)
wait_http "$AGENT_URL/readyz"
record "rss label=agent-started rss_kb=$(rss_kb $AGENT_PID)"
curl -sf -H "$AUTH" "$AGENT_URL$CRED_PATH" >"$WORK/answer.json"
BODY_BYTES=$(wc -c <"$WORK/answer.json")
record "answer body_bytes=$BODY_BYTES"

BASE_PORT=$(free_port)
"$EX/baseline" --listen "127.0.0.1:$BASE_PORT" --body-bytes "$BODY_BYTES" >/dev/null &
BASE_PID=$!
PIDS+=($BASE_PID)
BASE_URL=http://127.0.0.1:$BASE_PORT
wait_http "$BASE_URL/"

# ---- hot path: wrk, keep-alive -----------------------------------------------------------------
run_wrk() { # label pid url
    local before after out
    before=$(cpu_seconds "$2")
    out=$(wrk -t2 -c64 -d"${DURATION}s" --latency -H "$AUTH" "$3")
    after=$(cpu_seconds "$2")
    {
        echo "wrk label=$1 server_cpu_s=$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')"
        echo "$out" | sed 's/^/    /'
    } >>"$RAW"
    echo "$out" | grep -E 'Requests/sec|99%|Non-2xx' >&2 || true
}

if want hot; then
    for round in $(seq 1 "$ROUNDS"); do
        log "hot path round $round: baseline"
        run_wrk baseline "$BASE_PID" "$BASE_URL$CRED_PATH"
        log "hot path round $round: agent"
        run_wrk agent "$AGENT_PID" "$AGENT_URL$CRED_PATH"
    done
fi

# ---- new connection per request ----------------------------------------------------------------
if want newconn; then
    for round in $(seq 1 "$ROUNDS"); do
        log "new connections round $round"
        record "$("$EX/loadgen" newconn --label baseline --addr "127.0.0.1:$BASE_PORT" --path "$CRED_PATH" --header "$AUTH" \
            --concurrency 64 --duration "$DURATION" --pid "$BASE_PID")"
        record "$("$EX/loadgen" newconn --label agent --addr "127.0.0.1:$AGENT_PORT" --path "$CRED_PATH" --header "$AUTH" \
            --concurrency 64 --duration "$DURATION" --pid "$AGENT_PID")"
        # The load generator's own ceiling: the same client against the baseline with keep-alive.
        record "$("$EX/loadgen" keepalive --label baseline-keepalive --addr "127.0.0.1:$BASE_PORT" --path "$CRED_PATH" --header "$AUTH" \
            --concurrency 64 --duration "$DURATION" --pid "$BASE_PID")"
    done
fi

# ---- identity lookup with 10,000 idle loopback connections -------------------------------------
if want identity; then
    HOLD_PORT=$(free_port)
    "$EX/baseline" --listen "127.0.0.1:$HOLD_PORT" --header-read-timeout 0 >/dev/null &
    HOLD_SERVER=$!
    PIDS+=($HOLD_SERVER)
    wait_http "http://127.0.0.1:$HOLD_PORT/"
    for round in $(seq 1 "$ROUNDS"); do
        log "identity round $round: without extra connections ($(ss -tan | wc -l) TCP sockets)"
        record "$("$EX/loadgen" newconn --label identity-quiet --addr "127.0.0.1:$AGENT_PORT" --path "$CRED_PATH" --header "$AUTH" \
            --concurrency 1 --threads 1 --duration "$DURATION")"
        "$EX/loadgen" hold --addr "127.0.0.1:$HOLD_PORT" --connections 10000 >"$WORK/hold.out" &
        HOLD=$!
        PIDS+=($HOLD)
        for _ in $(seq 1 600); do grep -q held= "$WORK/hold.out" && break; sleep 0.1; done
        log "identity round $round: with $(cat "$WORK/hold.out") ($(ss -tan | wc -l) TCP sockets)"
        record "$("$EX/loadgen" newconn --label identity-10k --addr "127.0.0.1:$AGENT_PORT" --path "$CRED_PATH" --header "$AUTH" \
            --concurrency 1 --threads 1 --duration "$DURATION")"
        kill "$HOLD"
        wait "$HOLD" 2>/dev/null || true
    done
    kill "$HOLD_SERVER"
fi

# ---- memory: 10,000 sessions, 1,000,000 requests, soak -----------------------------------------
if want memory; then
    SESSIONS_PATH="/v1/credentials?location=s3://$BUCKET/data/part-00000&user=bench-{k}"
    log "memory: creating 10,000 sessions"
    record "$("$EX/loadgen" keepalive --label sessions --addr "127.0.0.1:$AGENT_PORT" --path "$SESSIONS_PATH" --header "$AUTH" \
        --keys 10000 --requests 10000 --concurrency 32)"
    curl -sf "$AGENT_URL/metrics" | grep -E '^emrfs_role_agent_cache_sessions' | sed 's/^/metrics /' | tee -a "$RAW"
    record "rss label=after-10000-sessions rss_kb=$(rss_kb $AGENT_PID)"
    log "memory: 1,000,000 requests over the 10,000 sessions"
    record "$("$EX/loadgen" keepalive --label million --addr "127.0.0.1:$AGENT_PORT" --path "$SESSIONS_PATH" --header "$AUTH" \
        --keys 10000 --requests 1000000 --concurrency 64 --pid "$AGENT_PID")"
    curl -sf "$AGENT_URL/metrics" | grep -E '^emrfs_role_agent_(cache_sessions|sts_calls_total)' | sed 's/^/metrics /' | tee -a "$RAW"
    record "rss label=after-1000000-requests rss_kb=$(rss_kb $AGENT_PID) hwm_kb=$(awk '/^VmHWM:/ { print $2 }' /proc/$AGENT_PID/status)"

    log "soak: $SOAK s, keep-alive (2,000/s over 10,000 sessions) and new connections (200/s)"
    "$EX/loadgen" rss --pid "$AGENT_PID" --every 10 --samples $((SOAK / 10 + 1)) | sed 's/^/soak /' >>"$RAW" &
    SAMPLER=$!
    "$EX/loadgen" newconn --label soak-newconn --addr "127.0.0.1:$AGENT_PORT" --path "$SESSIONS_PATH" --header "$AUTH" \
        --keys 10000 --concurrency 4 --rate 200 --duration "$SOAK" --threads 1 >>"$RAW" &
    CHURN=$!
    record "$("$EX/loadgen" keepalive --label soak --addr "127.0.0.1:$AGENT_PORT" --path "$SESSIONS_PATH" --header "$AUTH" \
        --keys 10000 --concurrency 16 --rate 2000 --duration "$SOAK" --threads 1 --pid "$AGENT_PID")"
    wait "$CHURN" "$SAMPLER"
    record "rss label=after-soak rss_kb=$(rss_kb $AGENT_PID) hwm_kb=$(awk '/^VmHWM:/ { print $2 }' /proc/$AGENT_PID/status)"
fi

kill "$AGENT_PID" "$BASE_PID" 2>/dev/null || true

# ---- cold herd ---------------------------------------------------------------------------------
if want herd; then
    log "cold herd (release test build)"
    (cd "$ROOT" && cargo test --release --test hardening cold_herd -- --nocapture --test-threads 1 2>&1) |
        grep -oE 'cold_herd keys=.*|test result.*' | tee -a "$RAW"
fi

# ---- per-tenant fairness -----------------------------------------------------------------------
if want fairness; then
    log "fairness with the default shares (release test build)"
    (cd "$ROOT" && cargo test --release --test hostile fairness -- --nocapture --test-threads 1 2>&1) |
        grep -oE 'fairness (cold_start|proxy_flood) .*|test result.*' | tee -a "$RAW"
fi

# ---- STS volume --------------------------------------------------------------------------------
if want volume; then
    log "STS volume over 4 h of virtual time"
    "$EX/sts_volume" --hours 4 | sed 's/^/volume /' | tee -a "$RAW"
fi

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
python3 "$ROOT/bench/summarize.py" "$OUT" | tee "$OUT/summary.md"
