#!/usr/bin/env bash
# Throughput of the credentials endpoint by audit durability, on a warm cache:
#
#   sync      the response waits until its record is on disk (group commit: one fdatasync per batch)
#   buffered  records are written as the writer takes them, synced every second
#   off       buffered, to /dev/null (what the endpoint costs without an audit file)
#   sync-nochain  sync with `audit.chain = false` (every other mode has the hash chain on, its default)
#   sync-ocsf     sync with `audit.format = "ocsf"`
#
#   bench/audit.sh                     # release build, 64 keep-alive connections, 3 rounds of 15 s per mode
#   CONNECTIONS=64 DURATION=15s ROUNDS=3 AUDIT_DIR=/var/tmp bench/audit.sh
#   MODES="sync sync-nochain" bench/audit.sh     # what the hash chain costs in sync mode
#
# The modes run interleaved (sync, buffered, off, sync, …) and the table reports each mode's median round,
# so that other load on the machine hits every mode alike. STS is a local moto server (from the test
# virtualenv that scripts/setup-test-env.sh builds); after one warming request every answer comes from the
# cache, so the numbers measure the agent and its audit log. Needs wrk and curl. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-15s}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
AUDIT_DIR=${AUDIT_DIR:-/var/tmp}
MODES=${MODES:-sync buffered off}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/emrfs-role-agent/target}
EMRFS_TEST_VENV=${EMRFS_TEST_VENV:-$HOME/.cache/emrfs-role-agent/venv}

if [ -z "${EMRFS_ROLE_AGENT_BIN:-}" ]; then
    cargo build --release --quiet
    EMRFS_ROLE_AGENT_BIN=$CARGO_TARGET_DIR/release/emrfs-role-agent
fi
for tool in wrk curl "$EMRFS_TEST_VENV/bin/moto_server"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (run scripts/setup-test-env.sh)" >&2; exit 1; }
done

work=$(mktemp -d "$AUDIT_DIR/emrfs-audit-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ok() {
    for _ in $(seq 300); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$1 did not answer" >&2
    return 1
}
# metric NAME FILE: the value of an unlabelled sample in a /metrics dump.
metric() { awk -v n="$1" '$1 == n { print $2 }' "$2"; }

moto_port=$(free_port)
"$EMRFS_TEST_VENV/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_ok "http://127.0.0.1:$moto_port/moto-api/"

head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
token=$(cat "$work/token")

# run MODE ROUND: one wrk run against a fresh agent; appends "mode rps p50 p99 records fsyncs" to results.
run() {
    local mode=$1 round=$2 dir="$work/$1-$2" durability=sync audit chain=true format=native
    mkdir -p "$dir"
    audit="$dir/audit.log"
    case $mode in
        buffered) durability=buffered ;;
        off) durability=buffered audit=/dev/null chain=false ;;
        sync-nochain) chain=false ;;
        sync-ocsf) format=ocsf ;;
    esac
    local port
    port=$(free_port)
    cat >"$dir/config.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
token_file = "$work/token"
# One uid (wrk) is every caller here: no per-caller share.
max_connections_per_caller = 1000000
max_requests_per_caller = 1000000
[sts]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:$moto_port"
[audit]
path = "$audit"
durability = "$durability"
chain = $chain
format = "$format"
[fallback]
mode = "deny"
[[mapping]]
name = "bench"
role = "arn:aws:iam::123456789012:role/bench"
prefixes = ["s3://bench-bucket/"]
EOF
    AWS_ACCESS_KEY_ID=AKIABENCHSOURCEKEY00 AWS_SECRET_ACCESS_KEY=bench-source-secret AWS_REGION=us-east-1 \
        AWS_EC2_METADATA_DISABLED=true RUST_LOG=warn \
        "$EMRFS_ROLE_AGENT_BIN" serve --config "$dir/config.toml" 2>"$dir/stderr.log" &
    local agent=$!
    pids+=("$agent")
    wait_ok "http://127.0.0.1:$port/readyz"
    local url="http://127.0.0.1:$port/v1/credentials?location=s3://bench-bucket/data/part-0000"
    curl -fsS -o /dev/null -H "Authorization: $token" "$url"  # warm the cache: one STS call
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: $token" "$url" >"$dir/wrk.txt"
    curl -fsS "http://127.0.0.1:$port/metrics" >"$dir/metrics.txt"
    kill -TERM "$agent"
    wait "$agent"
    if grep -q "Non-2xx" "$dir/wrk.txt"; then
        echo "$mode: some answers were not 200:" >&2
        cat "$dir/wrk.txt" >&2
        exit 1
    fi
    local rps p50 p99 records fsyncs
    rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' "$dir/wrk.txt")
    p50=$(awk '$1 == "50%" { print $2 }' "$dir/wrk.txt")
    p99=$(awk '$1 == "99%" { print $2 }' "$dir/wrk.txt")
    records=$(metric emrfs_role_agent_audit_records_total "$dir/metrics.txt")
    fsyncs=$(metric emrfs_role_agent_audit_fsync_duration_seconds_count "$dir/metrics.txt")
    if [ "$mode" != off ]; then
        # Every request wrk completed has its record in the file (plus lifecycle records).
        local completed lines
        completed=$(awk '/requests in/ { print $1 }' "$dir/wrk.txt")
        lines=$(grep -c '"event":"credentials"' "$audit")
        if [ "$chain" = true ]; then
            "$EMRFS_ROLE_AGENT_BIN" audit verify "$audit" >&2
        fi
        if [ "$lines" -lt "$completed" ]; then
            echo "$mode: $completed requests but only $lines credentials records" >&2
            exit 1
        fi
    fi
    echo "$mode $rps $p50 $p99 $records $fsyncs" >>"$work/results"
    echo "round $round $mode: $rps req/s (p50 $p50, p99 $p99, $records records, $fsyncs fsyncs)" >&2
}

for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        run "$mode" "$round"
    done
done

# The median round of each mode (by requests/s).
median() { awk -v m="$1" '$1 == m' "$work/results" | sort -k2,2n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }'; }

echo
echo "$(nproc) CPUs, $CONNECTIONS connections, $THREADS wrk threads, $DURATION per run, median of $ROUNDS rounds;"
echo "audit file on $(df --output=fstype "$work" | tail -1) ($AUDIT_DIR)."
echo
echo "| audit | requests/s | p50 | p99 | records per fsync |"
echo "|---|---:|---:|---:|---:|"
declare -A rps
for mode in $MODES; do
    read -r _ r p50 p99 records fsyncs <<<"$(median "$mode")"
    rps[$mode]=$r
    per_fsync=$(awk -v r="$records" -v f="$fsyncs" 'BEGIN { if (f) printf "%.1f", r / f; else print "–" }')
    echo "| $mode | $r | $p50 | $p99 | $per_fsync |"
done
echo
ratio() { awk -v a="$2" -v b="$3" -v n="$1" 'BEGIN { printf "%s = %.2f\n", n, a / b }'; }
if [ -n "${rps[sync]:-}" ] && [ -n "${rps[buffered]:-}" ]; then
    ratio "sync / buffered" "${rps[sync]}" "${rps[buffered]}"
    if [ $((rps[sync] * 2)) -lt "${rps[buffered]}" ]; then echo "sync is below half of buffered" >&2; exit 1; fi
fi
if [ -n "${rps[buffered]:-}" ] && [ -n "${rps[off]:-}" ]; then ratio "buffered / off" "${rps[buffered]}" "${rps[off]}"; fi
if [ -n "${rps[sync]:-}" ] && [ -n "${rps[sync-nochain]:-}" ]; then ratio "sync with chain / without" "${rps[sync]}" "${rps[sync-nochain]}"; fi
if [ -n "${rps[sync-ocsf]:-}" ] && [ -n "${rps[sync]:-}" ]; then ratio "sync ocsf / native" "${rps[sync-ocsf]}" "${rps[sync]}"; fi
