#!/usr/bin/env bash
# Per-request credentials in the JVM (issue 12; BENCHMARKS.md has the targets and the last results):
#
#   bench/jvm.sh                      # ~7 min on 2 cores (BENCHMARKS.md: what the last run used)
#   BENCH_ONLY=hooks bench/jvm.sh
#
# Sections (BENCH_ONLY, space-separated; default all three):
#   hooks   tests/java/io/emrfsroleagent/bench/PerRequestBench.java, SDK v1 on the hadoop-3.3.6 runtime and
#           SDK v2 on hadoop-3.4.1 (and on the current SDK v2 with BENCH_SDK_CURRENT=1): agent requests for
#           the first N S3 requests under one scope and over all rounds; CPU per S3 request with the
#           handler / interceptor and without, the hook alone and in a real S3 client against a loopback stub
#   global  tests/java/io/emrfsroleagent/bench/GlobalHookBench.java: the JVM-wide SDK v2 hook (what
#           emrfs-role-agent-hooks.jar puts on every S3 client, e.g. Iceberg's S3FileIO) per request on a scope
#           hit, alone and in an S3FileIO-like S3Client, against the same without it; without Hadoop on the class
#           path (jvm-global: the OS user) and with it (the calling thread's Hadoop user per request)
#   spark   bench/spark_scopes.py: a Spark local job over 1,000 objects in 10 prefixes (moto's S3 behind a
#           recording proxy, the running agent), per-request hook against the bucket-level provider alone
#
# Knobs: BENCH_N (S3 requests per round, default 10000), BENCH_ROUNDS (default 20), SPARK_ROUNDS (default 2),
# BENCH_OUT (results directory, default bench/results/<UTC time>), EMRFS_ROLE_AGENT_BIN (the agent the Spark
# part runs; default: the debug build the e2e tests use).
# Needs: a JDK and Maven (scripts/build-emrfs-provider.sh), the test virtualenv (scripts/setup-test-env.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${EMRFS_TEST_VENV:-$HOME/.cache/emrfs-role-agent/venv}
ONLY=${BENCH_ONLY:-hooks global spark}
N=${BENCH_N:-10000}
ROUNDS=${BENCH_ROUNDS:-20}
OUT=${BENCH_OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
export EMRFS_ROLE_AGENT_BIN=${EMRFS_ROLE_AGENT_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/emrfs-role-agent/target}/debug/emrfs-role-agent}
export AWS_EC2_METADATA_DISABLED=true

mkdir -p "$OUT"
RAW=$OUT/raw.txt
: >"$RAW"
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
want() { [[ " $ONLY " == *" $1 "* ]]; }
record() { printf '%s\n' "$*" | tee -a "$RAW"; }

{
    echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
    echo "memory: $(($(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo) / 1024)) MiB; kernel $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "java: $(java -version 2>&1 | head -n1)"
    echo "agent: $EMRFS_ROLE_AGENT_BIN"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)"
} >"$OUT/machine.txt"

log "building the clients and resolving the runtimes"
BUILD=$(nice -n 10 "$ROOT/scripts/build-emrfs-provider.sh" | tail -n1)

if want hooks; then
    runs=("v1 hadoop-3.3.6" "v2 hadoop-3.4.1")
    [[ ${BENCH_SDK_CURRENT:-0} == 1 ]] && runs+=("v2 hadoop-3.4.1-sdk-current")
    for run in "${runs[@]}"; do
        read -r sdk runtime <<<"$run"
        log "PerRequestBench $sdk on $runtime: $ROUNDS rounds of $N requests a side"
        cp="$BUILD/test-classes:$BUILD/emrfs-role-agent-provider.jar:$(cat "$BUILD/runtimes/$runtime.txt")"
        cmd=(java -Xss4m -XX:+UseSerialGC -cp "$cp" io.emrfsroleagent.bench.PerRequestBench "$sdk" "$N" "$ROUNDS")
        record "# runtime=$runtime: nice -n 10 java -Xss4m -XX:+UseSerialGC -cp <runtime> io.emrfsroleagent.bench.PerRequestBench $sdk $N $ROUNDS"
        nice -n 10 "${cmd[@]}" 2>"$OUT/hooks-$runtime.stderr" | sed "s/^RESULT /RESULT runtime=$runtime /" | tee -a "$RAW"
    done
fi

if want global; then
    for runtime in jvm-global hadoop-3.4.1 hadoop-3.4.1-sdk-current; do
        log "GlobalHookBench on $runtime: $ROUNDS rounds of $N requests a side"
        cp="$BUILD/test-classes:$BUILD/emrfs-role-agent-provider.jar:$(cat "$BUILD/runtimes/$runtime.txt")"
        record "# runtime=$runtime: nice -n 10 java -Xss4m -XX:+UseSerialGC -cp <runtime> io.emrfsroleagent.bench.GlobalHookBench $N $ROUNDS"
        nice -n 10 java -Xss4m -XX:+UseSerialGC -cp "$cp" io.emrfsroleagent.bench.GlobalHookBench "$N" "$ROUNDS" \
            2>"$OUT/global-$runtime.stderr" | sed "s/^RESULT /RESULT runtime=$runtime /" | tee -a "$RAW"
    done
fi

if want spark; then
    log "Spark: ${SPARK_ROUNDS:-2} rounds of the per-request and bucket-level sides"
    record "# cd $ROOT && PYTHONPATH=tests/e2e nice -n 10 $VENV/bin/python -m pytest -p conftest bench/spark_scopes.py -q -s -p no:cacheprovider"
    (cd "$ROOT" && PYTHONPATH=tests/e2e nice -n 10 "$VENV/bin/python" -m pytest -p conftest bench/spark_scopes.py \
        -q -s -p no:cacheprovider --timeout=3600) >"$OUT/spark.log" 2>&1 || { tail -n 60 "$OUT/spark.log" >&2; exit 1; }
    grep '^SPARK ' "$OUT/spark.log" | tee -a "$RAW"
fi

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
python3 "$ROOT/bench/summarize_jvm.py" "$OUT"
log "raw figures: $RAW; summary: $OUT/summary.md"
