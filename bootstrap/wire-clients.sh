#!/usr/bin/env bash
# Points the node's Spark, S3A and EMRFS clients at emrfs-role-agent.
#
# EMR installs applications after bootstrap actions have run, so the bootstrap action starts
# this script in the background (as a transient systemd unit). It polls for the application
# configuration files and edits each one as it appears (idempotent: bootstrap/emr_conf.py
# leaves a file that is already wired untouched).
#
# On an EMR node it keeps watching until the instance controller reports the node's
# provisioning SUCCESSFUL (EMR may rewrite configuration files until then), wires what exists
# one last time, asks the agent's `check` what on the provisioned node would fight the agent
# (EMR's own role mappings, EMR's secret agent, runtime roles: none of it exists yet when the
# bootstrap action runs) and exits, 1 when `check` refused. Elsewhere (no EMR state file) it
# exits once all three files are wired. It gives up after --timeout seconds.
#
# EMRFS and S3A are only wired when the provider jar is installed: naming a credentials
# provider class that is not on the classpath would break every S3 access on the node.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: wire-clients.sh [options]

  --root DIR          edit files under DIR instead of / (tests)
  --port N            agent port (default 9944)
  --token-file PATH   token path as the clients see it (default /etc/emrfs-role-agent/token)
  --jar PATH          the EMRFS/S3A provider jar, as installed
                      (default /usr/share/aws/emr/emrfs/auxlib/emrfs-role-agent-provider.jar)
  --s3a-sdk v1|v2|auto  which S3A classes to wire: v1 (Hadoop 3.3, EMR <= 7.9), v2 (Hadoop 3.4,
                      EMR >= 7.10), auto: from the node's release label or hadoop-aws jar (default)
  --s3-via-s3a        serve s3:// with S3A instead of EMRFS (fs.s3.impl and friends in core-site)
  --poll SECONDS      time between checks (default 10)
  --timeout SECONDS   give up after this long (default 7200)
  --agent PATH        the agent binary whose `check` runs once the node is provisioned
                      (default /usr/local/bin/emrfs-role-agent; under --root, taken under DIR)
  --config PATH       the config it checks (default /etc/emrfs-role-agent/config.toml; likewise)
  --ruleset FILE      passed to that `check` (tests; under --root without it, none)
  --processes FILE    passed to that `check` (tests; under --root without it, none)
  -h, --help          this text
EOF
}

ROOT_DIR=""
PORT=9944
TOKEN_FILE=/etc/emrfs-role-agent/token
JAR=/usr/share/aws/emr/emrfs/auxlib/emrfs-role-agent-provider.jar
S3A_SDK=auto
S3_VIA_S3A=()
POLL=10
TIMEOUT=7200
AGENT=/usr/local/bin/emrfs-role-agent
AGENT_CONFIG=/etc/emrfs-role-agent/config.toml
CHECK_SOURCES=()

while (($#)); do
    case $1 in
        --root) ROOT_DIR=${2:?--root needs a directory}; shift 2 ;;
        --port) PORT=${2:?--port needs a number}; shift 2 ;;
        --token-file) TOKEN_FILE=${2:?--token-file needs a path}; shift 2 ;;
        --jar) JAR=${2:?--jar needs a path}; shift 2 ;;
        --s3a-sdk) S3A_SDK=${2:?--s3a-sdk needs v1, v2 or auto}; shift 2 ;;
        --s3-via-s3a) S3_VIA_S3A=(--s3-via-s3a); shift ;;
        --poll) POLL=${2:?--poll needs seconds}; shift 2 ;;
        --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
        --agent) AGENT=${2:?--agent needs a path}; shift 2 ;;
        --config) AGENT_CONFIG=${2:?--config needs a path}; shift 2 ;;
        --ruleset | --processes) CHECK_SOURCES+=("$1" "${2:?$1 needs a file}"); shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "wire-clients.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

R=${ROOT_DIR%/}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EMR_CONF=$HERE/emr_conf.py
STATE_FILE=$R/emr/instance-controller/lib/info/job-flow-state.txt
LOCK_FILE=$R/run/emrfs-role-agent-wire-clients.lock

log() { printf 'wire-clients: %s\n' "$*" >&2; }

# One waiter at a time: a second bootstrap run finds the first still waiting and leaves.
mkdir -p "$(dirname "$LOCK_FILE")"
exec 9>"$LOCK_FILE"
if ! flock -n 9; then
    log "another waiter is already running"
    exit 0
fi

targets=(
    "spark-defaults $R/etc/spark/conf/spark-defaults.conf"
    "core-site $R/etc/hadoop/conf/core-site.xml"
    "emrfs-site $R/usr/share/aws/emr/emrfs/conf/emrfs-site.xml"
)
with_provider=1
if [[ ! -f $R$JAR ]]; then
    with_provider=0
    log "no provider jar at $JAR: EMRFS and S3A are left as they are"
fi

case $S3A_SDK in
    v1 | v2 | auto) ;;
    *) echo "wire-clients.sh: --s3a-sdk must be v1, v2 or auto, got $S3A_SDK" >&2; exit 2 ;;
esac

WHY_FILE=$(mktemp "${TMPDIR:-/tmp}/emrfs-role-agent-wire-clients.XXXXXX")
trap 'rm -f "$WHY_FILE"' EXIT

# The SDK whose S3A classes to wire, in $SDK; asked on every pass, as EMR installs Hadoop after
# bootstrap actions. What was chosen and why is logged when it differs from the last pass.
SDK=""
SDK_LOGGED=""
detect_s3a_sdk() {
    local why
    if [[ $S3A_SDK != auto ]]; then
        SDK=$S3A_SDK
        why="S3A uses the AWS SDK for Java $SDK: --s3a-sdk $S3A_SDK"
    elif SDK=$(python3 "$EMR_CONF" s3a-sdk --root "${R:-/}" 2>"$WHY_FILE"); then
        why=$(<"$WHY_FILE")
    else
        SDK=v1
        why="S3A uses the AWS SDK for Java v1: the node's release could not be read ($(tr '\n' ' ' <"$WHY_FILE"))"
    fi
    if [[ $why != "$SDK_LOGGED" ]]; then
        log "$why"
        SDK_LOGGED=$why
    fi
}

# Applies every setting whose file exists (S3A's only with the provider jar); returns 0 when all applicable files are wired.
wire_pass() {
    local all=0 entry kind file sdk=v1
    if ((with_provider)); then
        detect_s3a_sdk
        sdk=$SDK
    fi
    for entry in "${targets[@]}"; do
        kind=${entry%% *}
        file=${entry#* }
        if [[ $kind != spark-defaults ]] && ((!with_provider)); then
            continue
        fi
        if [[ ! -s $file ]]; then
            all=1
            continue
        fi
        # A file EMR is still writing may not parse yet: try again on the next pass.
        if ! python3 "$EMR_CONF" apply "$kind" "$file" --port "$PORT" --token-file "$TOKEN_FILE" --s3a-sdk "$sdk" "${S3_VIA_S3A[@]+"${S3_VIA_S3A[@]}"}" \
            | sed 's/^/wire-clients: /' >&2; then
            log "could not edit $file yet"
            all=1
        fi
    done
    return "$all"
}

# What on the provisioned node would fight the agent (docs/install-on-emr.md §10), in this log: the
# warnings, and the refusals, which fail this unit (the agent is installed already; undo what they name).
check_node() {
    local args=(check --config "$R$AGENT_CONFIG") site out rc=0
    if [[ -n $R ]]; then
        for site in /etc/hadoop/conf/core-site.xml /usr/share/aws/emr/emrfs/conf/emrfs-site.xml; do
            args+=(--hadoop-site "$R$site")
        done
        [[ " ${CHECK_SOURCES[*]-} " == *" --ruleset "* ]] || args+=(--ruleset /dev/null)
        [[ " ${CHECK_SOURCES[*]-} " == *" --processes "* ]] || args+=(--processes /dev/null)
    fi
    if [[ ! -x $R$AGENT ]]; then
        log "no agent binary at $AGENT: the provisioned node was not checked"
        return 0
    fi
    out=$("$R$AGENT" "${args[@]}" "${CHECK_SOURCES[@]+"${CHECK_SOURCES[@]}"}" 2>&1) || rc=$?
    grep -E '^(warning|refused|note):' <<<"$out" | sed 's/^/wire-clients: /' >&2 || true
    if grep -q '^refused:' <<<"$out"; then
        log "the provisioned node has something that fights the agent as configured (refused: above):" \
            "change the config (docs/install-on-emr.md §10) and run the bootstrap action again"
        return 1
    elif ((rc != 0)); then
        log "check of the provisioned node failed (exit $rc): $(tail -n1 <<<"$out")"
    fi
    return 0
}

deadline=$((SECONDS + TIMEOUT))
while :; do
    if [[ -f $STATE_FILE ]]; then
        if python3 "$EMR_CONF" provisioned "$STATE_FILE"; then
            wire_pass || true
            log "node provisioned; wiring finished"
            check_node || exit 1
            exit 0
        fi
        wire_pass || true
    elif wire_pass; then
        log "all clients wired"
        exit 0
    fi
    if ((SECONDS >= deadline)); then
        log "gave up after ${TIMEOUT}s; wire the remaining files with config/emr-configurations.json"
        exit 1
    fi
    sleep "$POLL"
done
