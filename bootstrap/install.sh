#!/usr/bin/env bash
# EMR bootstrap action: install and start emrfs-role-agent on this node and point the node's
# clients (Spark, S3A, EMRFS, the SDKs) at it; with [imds] listen in the config, send the other
# processes' instance-metadata traffic to it too.
#
# EMR runs bootstrap actions as the hadoop user (with passwordless sudo) on every node, before
# it installs the applications; this script re-runs itself under sudo. It is idempotent:
# running it again with the same inputs leaves every file as it was, and restarts or reloads
# the agent only when its binary, unit, listen address, config or mappings changed.
#
# Nothing is changed before everything is staged and checked: the release is fetched, verified
# and extracted, the config and mappings fetched, and the staged binary checks the staged config
# and mappings. Only then are files swapped in, each atomically; the previous config and mappings
# stay beside them (config.toml.previous, mappings.previous). Until the agent is ready and the
# client waiter started, a failure or SIGTERM/SIGINT rolls the run back: replaced files are put
# back, added files and directories removed, units reloaded, and the previous agent restarted.
#
# See docs/install-on-emr.md for the create-cluster command line and the IAM set-up.
set -euo pipefail

PROG=emrfs-role-agent

usage() {
    cat <<'EOF'
Usage: install.sh --release S3_URI --config S3_URI [options]

Installs emrfs-role-agent from a release tarball, starts it under systemd, waits until it is
ready, and wires Spark, S3A and EMRFS to it once EMR has installed them. When the config sets
[imds] listen, it also installs the instance-metadata socket and the redirect that sends
non-exempt users' instance-metadata traffic to the agent (and removes both when it is unset).

The release, config and mappings are fetched and checked (by the release's own binary) before
anything on the node changes: a bad config or bad mappings leave the node as it was. A failure
after that (the agent does not start or become ready, SIGTERM, SIGINT) rolls the run back.

Required:
  --release S3_URI          emrfs-role-agent-<version>-x86_64-linux.tar.gz
  --config S3_URI           config.toml (installed as /etc/emrfs-role-agent/config.toml)

Optional:
  --mappings S3_URI         role mappings (EMR security configuration JSON, describe-security-
                            configuration output, or an emrfs-site roleMapping value), installed
                            as /etc/emrfs-role-agent/mappings; the config's mappings_file must
                            name that path
  --mappings-refresh INTERVAL
                            re-fetch --mappings every INTERVAL (systemd time span, e.g. 5min)
                            and reload the agent when they changed
  --sha256 HEX              expected SHA-256 of the release tarball (the first field of the
                            release's .sha256 file); a mismatch installs nothing
  --port N                  port the clients reach the agent on at 127.0.0.1 (default 9944):
                            the readiness check and client wiring use it, so the config's
                            [server] listen must include 127.0.0.1:N (the API socket listens
                            on the addresses [server] listen names)
  --token-group GROUP       group allowed to read the token (default hadoop; every EMR
                            application user and the hadoop user are in it)
  --token-mode MODE         token file mode (default 0440; 0444 lets every local user read it)
  --no-wire-clients         install and start the agent only; leave Spark/Hadoop config alone
  --jvm-hooks               install the per-request hooks for every JVM S3 client (Iceberg S3FileIO,
                            plain AWS SDK clients; emrfs-role-agent-hooks.jar in EMRFS's auxlib,
                            on every Hadoop and Spark class path); without it the jar is removed
  --s3-via-s3a              serve s3:// with S3A instead of EMRFS (what EMR 7.10 and later do by
                            default), so that prefix rules hold per request for s3:// too; for
                            EMR 6.9-7.9 (Hadoop 3.3.x); see docs/emrfs.md for the trade-offs
  --audit-bucket S3_URI     ship the audit log to S3 (s3://bucket/prefix/): writes [audit.ship] bucket =
                            "S3_URI" into the installed config (replacing a bucket the config names),
                            and leaves out the logrotate rule and timer (removing them from a node that
                            has them): rotation would move records away from the shipper, whose
                            segments leave the disk once shipped (docs/auditing.md, "Shipping to S3").
                            The instance profile needs s3:PutObject on the prefix
  --security-configuration S3_URI
                            the cluster's EMR security configuration (the JSON given to create-security-
                            configuration, or describe-security-configuration output): `check` refuses
                            interception on a runtime-role, Ranger or Lake Formation cluster and warns
                            about its EMRFS role mappings (see docs/install-on-emr.md, "Coexistence")
  --ready-timeout SECONDS   how long to wait for /readyz (default 120)
  --wire-timeout SECONDS    how long the client waiter waits for EMR to finish provisioning the
                            node (default 7200; 60 with --root)

Test hooks:
  --root DIR                install under DIR instead of /: nothing on the running system is
                            changed (no useradd, chown, systemctl); those steps are recorded in
                            DIR/var/log/emrfs-role-agent-bootstrap/actions.log. Every path is
                            taken under DIR: the mappings the config names, the Hadoop site files
                            `check` reads, the files the client waiter edits
  --s3-copy CMD             run "CMD SRC DST" instead of "aws s3 cp SRC DST"
  --wire-poll SECONDS       how often the client waiter looks for config files (default 10)
  --systemd-version N       act as on a node with this systemd version (default: the running one)
  --ruleset FILE            the firewall rules `check` looks at for other metadata interceptors
                            (iptables-save or nft list ruleset output; repeatable) in place of this
                            node's; under --root without it, none
  --processes FILE          the process list `check` looks at (ps -eo user:32=,args= output) in place
                            of this node's; under --root without it, none
  --fail-at STEP            fail at STEP, as a failing step there would (the rollback runs)
  --pause-at STEP           stop at STEP until a signal comes (SIGTERM, SIGINT: the rollback runs)
                            STEP: staged (fetched, not checked), checked (nothing changed yet),
                            installed (files in place, units not started), started (agent started,
                            not ready), ready (agent ready, client waiter not started)
  -h, --help                this text
EOF
}

die() { printf '%s bootstrap: error: %s\n' "$PROG" "$*" >&2; exit 1; }
log() { printf '%s bootstrap: %s\n' "$PROG" "$*" >&2; }

ORIG_ARGS=("$@")
RELEASE_URI=""
CONFIG_URI=""
MAPPINGS_URI=""
MAPPINGS_REFRESH=""
SHA256=""
PORT=9944
TOKEN_GROUP=hadoop
TOKEN_MODE=0440
WIRE_CLIENTS=1
JVM_HOOKS=0
S3_VIA_S3A=0
READY_TIMEOUT=120
WIRE_TIMEOUT=""
ROOT_DIR=""
S3_COPY=""
WIRE_POLL=10
SYSTEMD_VERSION=""
FAIL_AT=""
PAUSE_AT=""
SECURITY_CONFIGURATION_URI=""
AUDIT_BUCKET=""
RULESETS=()
PROCESSES=""
STEPS=(staged checked installed started ready)

need() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while (($#)); do
    case $1 in
        --release) need "$@"; RELEASE_URI=$2; shift 2 ;;
        --config) need "$@"; CONFIG_URI=$2; shift 2 ;;
        --mappings) need "$@"; MAPPINGS_URI=$2; shift 2 ;;
        --mappings-refresh) need "$@"; MAPPINGS_REFRESH=$2; shift 2 ;;
        --sha256) need "$@"; SHA256=$2; shift 2 ;;
        --port) need "$@"; PORT=$2; shift 2 ;;
        --token-group) need "$@"; TOKEN_GROUP=$2; shift 2 ;;
        --token-mode) need "$@"; TOKEN_MODE=$2; shift 2 ;;
        --no-wire-clients) WIRE_CLIENTS=0; shift ;;
        --jvm-hooks) JVM_HOOKS=1; shift ;;
        --s3-via-s3a) S3_VIA_S3A=1; shift ;;
        --ready-timeout) need "$@"; READY_TIMEOUT=$2; shift 2 ;;
        --wire-timeout) need "$@"; WIRE_TIMEOUT=$2; shift 2 ;;
        --root) need "$@"; ROOT_DIR=$2; shift 2 ;;
        --s3-copy) need "$@"; S3_COPY=$2; shift 2 ;;
        --wire-poll) need "$@"; WIRE_POLL=$2; shift 2 ;;
        --systemd-version) need "$@"; SYSTEMD_VERSION=$2; shift 2 ;;
        --fail-at) need "$@"; FAIL_AT=$2; shift 2 ;;
        --pause-at) need "$@"; PAUSE_AT=$2; shift 2 ;;
        --security-configuration) need "$@"; SECURITY_CONFIGURATION_URI=$2; shift 2 ;;
        --audit-bucket) need "$@"; AUDIT_BUCKET=$2; shift 2 ;;
        --ruleset) need "$@"; RULESETS+=("$2"); shift 2 ;;
        --processes) need "$@"; PROCESSES=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ -n $RELEASE_URI ]] || { usage >&2; die "--release is required"; }
[[ -n $CONFIG_URI ]] || { usage >&2; die "--config is required"; }
if ! [[ $PORT =~ ^[1-9][0-9]*$ ]] || ((PORT < 1 || PORT > 65535)); then die "--port: not a port: $PORT"; fi
[[ -z $SHA256 || $SHA256 =~ ^[0-9a-fA-F]{64}$ ]] || die "--sha256: not a SHA-256 hex digest"
[[ $TOKEN_MODE =~ ^0?[0-7]{3}$ ]] || die "--token-mode: not an octal mode: $TOKEN_MODE"
[[ $READY_TIMEOUT =~ ^[0-9]+$ ]] || die "--ready-timeout: not a number of seconds"
[[ -z $WIRE_TIMEOUT || $WIRE_TIMEOUT =~ ^[0-9]+$ ]] || die "--wire-timeout: not a number of seconds"
[[ -z $SYSTEMD_VERSION || $SYSTEMD_VERSION =~ ^[0-9]+$ ]] || die "--systemd-version: not a number"
[[ $TOKEN_GROUP =~ ^[a-z_][a-z0-9_.-]*$ ]] || die "--token-group: not a group name: $TOKEN_GROUP"
if [[ -n $MAPPINGS_REFRESH ]]; then
    [[ -n $MAPPINGS_URI ]] || die "--mappings-refresh needs --mappings"
    [[ $MAPPINGS_REFRESH =~ ^([0-9]+[[:space:]]*[a-z]*[[:space:]]*)+$ ]] \
        || die "--mappings-refresh: not a time span: $MAPPINGS_REFRESH"
fi
# Written into the config as a TOML basic string: no quote, backslash or control character in it.
if [[ -n $AUDIT_BUCKET ]]; then
    [[ $AUDIT_BUCKET =~ ^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$ && $AUDIT_BUCKET != *[\"\\[:cntrl:][:space:]]* ]] \
        || die "--audit-bucket: not an s3://bucket/prefix/ URI: $AUDIT_BUCKET"
fi
for hook in "--fail-at:$FAIL_AT" "--pause-at:$PAUSE_AT"; do
    [[ -z ${hook#*:} || " ${STEPS[*]} " == *" ${hook#*:} "* ]] \
        || die "${hook%%:*}: no step ${hook#*:} (steps: ${STEPS[*]})"
done

if [[ -z $ROOT_DIR ]] && ((EUID != 0)); then
    exec sudo -n -- "$BASH" "$0" "${ORIG_ARGS[@]}"
fi

if [[ -n $ROOT_DIR ]]; then
    mkdir -p "$ROOT_DIR"
    ROOT_DIR=$(cd "$ROOT_DIR" && pwd)
fi
R=$ROOT_DIR
# The client waiter gives up after this long; under --root nothing will ever finish provisioning.
if [[ -z $WIRE_TIMEOUT ]]; then
    if [[ -n $R ]]; then WIRE_TIMEOUT=60; else WIRE_TIMEOUT=7200; fi
fi

# Installed paths (as the running system sees them; $R is prefixed when writing).
BIN=/usr/local/bin/$PROG
LIBEXEC=/usr/local/lib/$PROG
DOC=/usr/local/share/doc/$PROG
ETC=/etc/$PROG
UNIT_DIR=/etc/systemd/system
UNIT=$PROG.service
SOCKET=$PROG.socket
ROTATE_SERVICE=$PROG-logrotate.service
ROTATE_TIMER=$PROG-logrotate.timer
SYNC_SERVICE=$PROG-mappings-sync.service
SYNC_TIMER=$PROG-mappings-sync.timer
SYNC_ENV=$ETC/mappings-sync.env
# The address in systemd/$SOCKET; another [server] listen gets a drop-in.
SOCKET_UNIT_LISTEN=127.0.0.1:9944
IMDS_SOCKET=$PROG-imds.socket
IMDS_REDIRECT=$PROG-imds-redirect.service
# The addresses in systemd/$IMDS_SOCKET; another [imds] listen (or a node without IPv6) gets a drop-in.
IMDS_UNIT_LISTEN="127.0.0.1:254 [::1]:254"
AUXLIB=/usr/share/aws/emr/emrfs/auxlib
JAR_NAME=emrfs-role-agent-provider.jar
HOOKS_JAR_NAME=emrfs-role-agent-hooks.jar
CLIENT_PROPERTIES=$ETC/client.properties
TOKEN=$ETC/token
WIRE_UNIT=$PROG-wire-clients
# The Hadoop site files in which `check` looks for EMR's own role mappings (its defaults).
HADOOP_SITES=(/etc/hadoop/conf/core-site.xml /usr/share/aws/emr/emrfs/conf/emrfs-site.xml)

ACTIONS_LOG=""
if [[ -n $R ]]; then
    ACTIONS_LOG=$R/var/log/$PROG-bootstrap/actions.log
    mkdir -p "$(dirname "$ACTIONS_LOG")"
    printf '== run\n' >>"$ACTIONS_LOG"
fi

# ---- the journal: what this run changed, and how to undo it --------------------------------
# Before a file is first replaced, removed or re-moded, a copy goes to $WORK/backup (or it is
# recorded as new); every directory the run creates is recorded; every system action (sys) is
# recorded. Until the run commits, a failure or an interruption undoes them, newest first.
JOURNAL=() # "replaced PATH" | "new PATH" | "dir PATH" | "removed-dir PATH", installed paths, in order
DID=()     # system actions, in order
DID_BEFORE_ROLLBACK=1000000
COMMITTED=0
PAUSE_PID=""
WAITER_PID=""
WAITER_UNIT_STARTED=0
AGENT_WAS_ACTIVE=0

# A change to the running system: done for real, or only recorded under --root.
sys() {
    DID+=("$*")
    if [[ -n $R ]]; then
        printf '%s\n' "$*" >>"$ACTIONS_LOG"
    else
        log "+ $*"
        "$@"
    fi
}

did() { # ACTION...: true when this run did exactly that system action (before any rollback)
    local a
    for a in ${DID[@]+"${DID[@]:0:DID_BEFORE_ROLLBACK}"}; do
        [[ $a == "$*" ]] && return 0
    done
    return 1
}

journaled() { # PATH: its state before this run is recorded
    local e
    for e in "${JOURNAL[@]+"${JOURNAL[@]}"}"; do
        [[ ${e#* } == "$1" ]] && return 0
    done
    return 1
}

journal_file() { # PATH: call before the first change to PATH in this run
    local bk
    journaled "$1" && return 0
    if [[ -e $R$1 || -L $R$1 ]]; then
        bk=$WORK/backup$1
        mkdir -p "$(dirname "$bk")"
        cp -p "$R$1" "$bk"
        JOURNAL+=("replaced $1")
    else
        JOURNAL+=("new $1")
    fi
}

mkdirs() { # PATH: mkdir -p, recording each directory it creates
    local d=$1 missing=()
    while [[ -n $d && $d != / && ! -d $R$d ]]; do
        missing=("$d" "${missing[@]+"${missing[@]}"}")
        d=$(dirname "$d")
    done
    for d in "${missing[@]+"${missing[@]}"}"; do
        mkdir "$R$d"
        JOURNAL+=("dir $d")
    done
}

# The test hooks' named points between steps.
step() { # NAME
    if [[ $1 == "$FAIL_AT" ]]; then
        die "failing at step $1 (--fail-at)"
    fi
    if [[ $1 == "$PAUSE_AT" ]]; then
        sleep infinity >/dev/null 2>&1 &
        PAUSE_PID=$!
        log "paused at step $1 (--pause-at): waiting for a signal"
        wait "$PAUSE_PID" || true
    fi
}

mode_differs() { # PATH MODE: PATH exists with another mode
    [[ -e $R$1 ]] && ((8#$(stat -c '%a' "$R$1") != 8#${2#0}))
}

# Puts every file back as it was before this run, and the units and agent with them.
rollback() {
    local i entry kind path unit bk tmp units_changed=0 agent_touched=0 n=${#JOURNAL[@]}
    log "rolling back this run's changes"
    DID_BEFORE_ROLLBACK=${#DID[@]}
    [[ -n $R ]] && printf '# rollback\n' >>"$ACTIONS_LOG"
    if [[ -n $WAITER_PID ]]; then
        kill "$WAITER_PID" 2>/dev/null || true
    elif ((WAITER_UNIT_STARTED)); then
        sys systemctl stop "$WIRE_UNIT.service" || true
    fi
    # Units this run added go first, while their files still exist: stopped and disabled (the
    # metadata redirect's rules removed with the binary that installed them).
    for unit in "$UNIT" "$IMDS_REDIRECT" "$IMDS_SOCKET" "$SOCKET" "$ROTATE_TIMER" "$SYNC_TIMER"; do
        journaled "$UNIT_DIR/$unit" || continue
        [[ " ${JOURNAL[*]} " == *" new $UNIT_DIR/$unit "* ]] || continue
        did systemctl enable "$unit" || did systemctl start "$unit" || did systemctl restart "$unit" || continue
        sys systemctl stop "$unit" || true
        sys systemctl disable "$unit" || true
        if [[ $unit == "$IMDS_REDIRECT" ]]; then
            sys "$BIN" imds-redirect remove || log "warning: the instance-metadata redirect could not be removed"
        fi
    done
    # The files, newest change first.
    for ((i = n - 1; i >= 0; i--)); do
        entry=${JOURNAL[i]}
        kind=${entry%% *}
        path=${entry#* }
        case $kind in
            replaced)
                bk=$WORK/backup$path
                if tmp=$(mktemp "$R$path.XXXXXX") && cp -p "$bk" "$tmp" && mv -f "$tmp" "$R$path"; then
                    log "rolled back: restored $path"
                else
                    log "warning: could not restore $path (its copy: $bk)"
                fi
                ;;
            new)
                rm -f "$R$path" && log "rolled back: removed $path"
                ;;
            dir)
                rmdir "$R$path" 2>/dev/null && log "rolled back: removed directory $path"
                ;;
            removed-dir)
                mkdir -p "$R$path" && log "rolled back: restored directory $path"
                ;;
        esac
        [[ $path == "$UNIT_DIR"/* ]] && units_changed=1
        case $path in
            "$BIN" | "$UNIT_DIR/$UNIT" | "$ETC/config.toml" | "$ETC/mappings" | "$UNIT_DIR/$SOCKET"* | "$UNIT_DIR/$IMDS_SOCKET"*)
                agent_touched=1
                ;;
        esac
    done
    if ((units_changed)); then
        sys systemctl daemon-reload || true
    fi
    # Units that were there before: as they were.
    for unit in "$IMDS_SOCKET" "$IMDS_REDIRECT" "$SYNC_TIMER" "$ROTATE_TIMER"; do
        [[ -e $R$UNIT_DIR/$unit ]] || continue
        if did systemctl disable "$unit"; then sys systemctl enable "$unit" || true; fi
    done
    if did systemctl stop "$UNIT" || did systemctl start "$UNIT" || did systemctl restart "$UNIT" \
        || did systemctl reload "$UNIT"; then
        agent_touched=1
    fi
    if [[ -e $R$UNIT_DIR/$UNIT ]] && ((agent_touched)); then
        if ((AGENT_WAS_ACTIVE)); then
            # A socket moved by this run moves back with the agent stopped, as it moved.
            if did systemctl restart "$SOCKET" || did systemctl restart "$IMDS_SOCKET" \
                || did systemctl stop "$IMDS_SOCKET"; then
                sys systemctl stop "$UNIT" || true
                did systemctl restart "$SOCKET" && { sys systemctl restart "$SOCKET" || true; }
                if [[ -e $R$UNIT_DIR/$IMDS_SOCKET ]]; then sys systemctl restart "$IMDS_SOCKET" || true; fi
            fi
            if [[ -e $R$UNIT_DIR/$IMDS_REDIRECT ]] && { did systemctl restart "$IMDS_REDIRECT" \
                || did systemctl stop "$IMDS_REDIRECT"; }; then
                sys systemctl restart "$IMDS_REDIRECT" || log "warning: the instance-metadata redirect did not restart"
            fi
            sys systemctl restart "$UNIT" || log "warning: the previous agent did not restart"
        elif did systemctl start "$UNIT"; then
            sys systemctl stop "$UNIT" || true
        fi
    fi
    for unit in "$SYNC_TIMER" "$ROTATE_TIMER"; do
        if [[ -e $R$UNIT_DIR/$unit ]] && did systemctl stop "$unit"; then
            sys systemctl start "$unit" || true
        fi
    done
    # The user and group, when this run created them.
    if did useradd --system --gid "$PROG" --no-create-home --home-dir "/var/lib/$PROG" --shell /sbin/nologin \
        --comment "emrfs-role-agent credential agent" "$PROG" \
        || did useradd --system --gid "$PROG" --no-create-home --home-dir "/var/lib/$PROG" --shell /sbin/nologin "$PROG"; then
        sys userdel "$PROG" || true
    fi
    if did groupadd --system "$PROG"; then sys groupdel "$PROG" || true; fi
    log "rolled back $n changes to files; the node is as it was before this run"
}

on_exit() {
    local rc=$?
    set +eu
    trap '' TERM INT
    if [[ -n $PAUSE_PID ]]; then kill "$PAUSE_PID" 2>/dev/null; fi
    if ((!COMMITTED)) && ((${#JOURNAL[@]} + ${#DID[@]} > 0)); then
        rollback
    fi
    rm -rf "$WORK"
    exit "$rc"
}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/$PROG-bootstrap.XXXXXX")
trap on_exit EXIT
trap 'log "interrupted (SIGTERM)"; exit 143' TERM
trap 'log "interrupted (SIGINT)"; exit 130' INT

s3_copy() {
    local cmd
    if [[ -n $S3_COPY ]]; then
        read -ra cmd <<<"$S3_COPY"
    else
        cmd=(aws s3 cp --only-show-errors)
    fi
    "${cmd[@]}" "$1" "$2" || die "could not copy $1"
}

# ---- stage: fetch and verify, change nothing -----------------------------------------------
log "fetching $RELEASE_URI"
s3_copy "$RELEASE_URI" "$WORK/release.tar.gz"
if [[ -n $SHA256 ]]; then
    actual=$(sha256sum "$WORK/release.tar.gz" | cut -d' ' -f1)
    [[ ${actual,,} == "${SHA256,,}" ]] || die "release tarball SHA-256 is $actual, expected $SHA256"
fi
mkdir "$WORK/release"
tar -xzf "$WORK/release.tar.gz" -C "$WORK/release" --strip-components=1 --no-same-owner \
    || die "$RELEASE_URI is not a release tarball"
REL=$WORK/release
for f in bin/$PROG systemd/$UNIT systemd/compat/$UNIT bootstrap/wire-clients.sh bootstrap/emr_conf.py bootstrap/mappings-sync.sh; do
    [[ -f $REL/$f ]] || die "release tarball has no $f"
done
if ((JVM_HOOKS)); then
    [[ -f $REL/lib/$HOOKS_JAR_NAME ]] || die "--jvm-hooks: the release has no lib/$HOOKS_JAR_NAME"
fi

# Config and mappings side by side, as they will be installed: a relative mappings_file resolves
# against the config's directory here as it will in $ETC.
STAGE=$WORK/stage
mkdir "$STAGE"
s3_copy "$CONFIG_URI" "$STAGE/config.toml"
# --audit-bucket: [audit.ship] bucket in the staged config, checked with the rest of it below.
# ship_table CONFIG: the line of its [audit.ship] header, or nothing.
ship_table() {
    grep -nE '^[[:space:]]*\[[[:space:]]*audit[[:space:]]*\.[[:space:]]*ship[[:space:]]*\][[:space:]]*(#.*)?$' "$1" \
        | head -n1 | cut -d: -f1
}
if [[ -n $AUDIT_BUCKET ]]; then
    # (Dotted keys or an inline table would clash with the table written here.)
    if grep -qE '^[[:space:]]*(audit[[:space:]]*\.[[:space:]]*)?ship[[:space:]]*[.=]' "$STAGE/config.toml"; then
        die "--audit-bucket: $CONFIG_URI sets audit.ship as dotted keys or an inline table; write it as an" \
            "[audit.ship] table (or set its bucket there and leave out --audit-bucket)"
    fi
    if [[ -n $(ship_table "$STAGE/config.toml") ]]; then
        # Its bucket line (if any) gives way to the one from the command line, right under the header.
        awk -v bucket="bucket = \"$AUDIT_BUCKET\"" '
            /^[[:space:]]*\[/ { in_ship = 0 }
            /^[[:space:]]*\[[[:space:]]*audit[[:space:]]*\.[[:space:]]*ship[[:space:]]*\]/ && !done {
                print; print bucket; in_ship = 1; done = 1; next
            }
            in_ship && /^[[:space:]]*bucket[[:space:]]*=/ { replaced = 1; next }
            { print }
            END { if (replaced) print "emrfs-role-agent bootstrap: --audit-bucket replaces the config'"'"'s [audit.ship] bucket" > "/dev/stderr" }
        ' "$STAGE/config.toml" >"$STAGE/config.toml.new"
    else
        {
            cat "$STAGE/config.toml"
            printf '\n[audit.ship]\n# Written by the emrfs-role-agent bootstrap action (--audit-bucket).\nbucket = "%s"\n' "$AUDIT_BUCKET"
        } >"$STAGE/config.toml.new"
    fi
    mv -f "$STAGE/config.toml.new" "$STAGE/config.toml"
fi
# Shipping is on when [audit.ship] names a bucket (from --audit-bucket or the config itself).
SHIPPING=0
if ship_line=$(ship_table "$STAGE/config.toml") && [[ -n $ship_line ]] \
    && tail -n "+$((ship_line + 1))" "$STAGE/config.toml" | sed -n '/^[[:space:]]*\[/q;p' \
    | grep -qE "^[[:space:]]*bucket[[:space:]]*=[[:space:]]*(\"[^\"]+\"|'[^']+')"; then
    SHIPPING=1
fi
if [[ -n $MAPPINGS_URI ]]; then
    s3_copy "$MAPPINGS_URI" "$STAGE/mappings"
fi
if [[ -n $SECURITY_CONFIGURATION_URI ]]; then
    s3_copy "$SECURITY_CONFIGURATION_URI" "$STAGE/security-configuration.json"
fi
if [[ -z $R ]]; then
    getent group "$TOKEN_GROUP" >/dev/null || die "--token-group $TOKEN_GROUP: no such group"
fi
# systemd 247+ (Amazon Linux 2023) gets the fully sandboxed unit; older systemd (Amazon Linux 2 has
# 219) the compat unit, made of directives it knows.
if [[ -z $SYSTEMD_VERSION ]]; then
    SYSTEMD_VERSION=$(systemctl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
    [[ $SYSTEMD_VERSION =~ ^[0-9]+$ ]] || SYSTEMD_VERSION=0
fi
step staged

# ---- check: the staged binary judges the staged config and mappings -----------------------
# The top-level mappings_file of a config (the value before the first table), or nothing. Only used
# under --root, to read the installed mappings under the root when no --mappings is given.
config_mappings_file() { # CONFIG
    sed -n -e '/^[[:space:]]*\[/q' \
        -e "s/^[[:space:]]*mappings_file[[:space:]]*=[[:space:]]*[\"']\\([^\"']*\\)[\"'].*/\\1/p" "$1" | head -n1
}

# check [ARGS...]: the staged binary's `check` of the staged config; its output in $out. Besides the
# config and mappings, `check` looks at what on this node would fight the agent (EMR's own role mappings,
# another metadata interceptor, a runtime-role cluster): a "refused:" line fails the run before anything
# changed, a "warning:" line is shown.
run_check() {
    local args=(check --config "$STAGE/config.toml") site f
    if [[ -n $R ]]; then
        for site in "${HADOOP_SITES[@]}"; do args+=(--hadoop-site "$R$site"); done
        # Nothing on the running system is consulted under --root: the test hooks' listings, or none.
        ((${#RULESETS[@]})) || args+=(--ruleset /dev/null)
        [[ -n $PROCESSES ]] || args+=(--processes /dev/null)
    fi
    for f in "${RULESETS[@]+"${RULESETS[@]}"}"; do args+=(--ruleset "$f"); done
    [[ -n $PROCESSES ]] && args+=(--processes "$PROCESSES")
    [[ -n $SECURITY_CONFIGURATION_URI ]] && args+=(--security-configuration "$STAGE/security-configuration.json")
    if ! out=$("$REL/bin/$PROG" "${args[@]}" "$@" 2>&1); then
        # Named as the operator knows them: by their S3 locations.
        out=${out//"$STAGE/config.toml"/"$CONFIG_URI"}
        [[ -n $MAPPINGS_URI ]] && out=${out//"$STAGE/mappings"/"$MAPPINGS_URI"}
        [[ -n $SECURITY_CONFIGURATION_URI ]] \
            && out=${out//"$STAGE/security-configuration.json"/"$SECURITY_CONFIGURATION_URI"}
        printf '%s\n' "$out" >&2
        if grep -q '^refused:' <<<"$out"; then
            die "something on this node would fight the agent as configured (the refused: lines above); nothing was changed"
        fi
        [[ -z $AUDIT_BUCKET ]] || log "(the config as checked has [audit.ship] bucket = \"$AUDIT_BUCKET\" from --audit-bucket)"
        die "the configuration is invalid; nothing was changed"
    fi
    [[ -n $SECURITY_CONFIGURATION_URI ]] \
        && out=${out//"$STAGE/security-configuration.json"/"$SECURITY_CONFIGURATION_URI"}
    return 0
}

if [[ -n $MAPPINGS_URI ]]; then
    run_check --mappings "$STAGE/mappings"
    # The binary resolves mappings_file (a relative one against the staged config's directory).
    named=$(sed -n 's/^mappings_file:[[:space:]]*\(.*\) (checked: .*)$/\1/p' <<<"$out" | head -n1)
    if [[ -n $named && $named != "$ETC/mappings" && $named != "$STAGE/mappings" ]]; then
        [[ $named == "$STAGE"/* ]] && named=$ETC/${named#"$STAGE"/}
        log "warning: the config's mappings_file is $named: the mappings from --mappings are installed" \
            "as $ETC/mappings, where the agent does not read them"
        run_check --mappings "$R$named"
    fi
elif [[ -n $R ]] && named=$(config_mappings_file "$STAGE/config.toml") && [[ -n $named ]]; then
    [[ $named == /* ]] || named=$ETC/$named
    run_check --mappings "$R$named"
else
    run_check
fi
grep -E '^(warning|note):' <<<"$out" >&2 || true
# Instance-metadata interception is on exactly when the config sets [imds] listen. The binary parses the
# config, so its summary is the authority: `check` prints "imds:          127.0.0.1:254, other paths
# forwarded to ..." when it is on and "imds:          off" when it is not (a binary without the feature
# prints no such line). Refused here, before anything changes: a port anyone may bind with nothing to
# hold it.
IMDS_LISTEN=$(sed -n 's/^imds:[[:space:]]*\([0-9][0-9.]*:[0-9][0-9]*\),.*/\1/p' <<<"$out" | head -n1)
if [[ -n $IMDS_LISTEN ]]; then
    # Whoever holds the metadata port while the agent is down answers the users the redirect sends there.
    # A port below net.ipv4.ip_unprivileged_port_start only root can bind; any other is safe only while
    # the socket unit holds it, and without one (a release that lacks it) nothing would.
    IMDS_PORT=${IMDS_LISTEN##*:}
    UNPRIVILEGED_FROM=$(cat "/proc/sys/net/ipv4/ip_unprivileged_port_start" 2>/dev/null || echo 1024)
    if ((IMDS_PORT >= UNPRIVILEGED_FROM)); then
        [[ -f $REL/systemd/$IMDS_SOCKET ]] || die "[imds] listen $IMDS_LISTEN: any local user may bind port" \
            "$IMDS_PORT (net.ipv4.ip_unprivileged_port_start = $UNPRIVILEGED_FROM) and the release tarball has" \
            "no systemd/$IMDS_SOCKET to hold it: while the agent is down, that user would answer the users the" \
            "redirect sends there. Use a port only root can bind (127.0.0.1:254, the default) or a release" \
            "with the socket unit"
        log "warning: [imds] listen $IMDS_LISTEN: any local user may bind port $IMDS_PORT" \
            "(net.ipv4.ip_unprivileged_port_start = $UNPRIVILEGED_FROM): it is safe only while $IMDS_SOCKET" \
            "holds it; 127.0.0.1:254 (the default) is safe even when it does not"
    fi
fi
step checked

# ---- the state before this run -------------------------------------------------------------
# Whether the agent was installed before this run: decides restart/reload vs first start.
PREVIOUSLY_INSTALLED=0
[[ -x $R$BIN && -f $R$UNIT_DIR/$UNIT ]] && PREVIOUSLY_INSTALLED=1
# Likewise for instance-metadata interception.
IMDS_PREVIOUSLY_INSTALLED=0
[[ -f $R$UNIT_DIR/$IMDS_SOCKET && -f $R$UNIT_DIR/$IMDS_REDIRECT ]] && IMDS_PREVIOUSLY_INSTALLED=1
AGENT_WAS_ACTIVE=0
if [[ -z $R ]]; then
    systemctl is-active --quiet "$UNIT" && AGENT_WAS_ACTIVE=1
else
    AGENT_WAS_ACTIVE=$PREVIOUSLY_INSTALLED
fi
was_active=$AGENT_WAS_ACTIVE

# ---- user --------------------------------------------------------------------------------
# (Under --root the user exists once an earlier run installed the agent there.)
if [[ -n $R ]]; then
    if ((!PREVIOUSLY_INSTALLED)); then
        sys groupadd --system "$PROG"
        sys useradd --system --gid "$PROG" --no-create-home --home-dir "/var/lib/$PROG" --shell /sbin/nologin "$PROG"
    fi
else
    getent group "$PROG" >/dev/null || sys groupadd --system "$PROG"
    getent passwd "$PROG" >/dev/null \
        || sys useradd --system --gid "$PROG" --no-create-home --home-dir "/var/lib/$PROG" \
            --shell /sbin/nologin --comment "emrfs-role-agent credential agent" "$PROG"
fi

# ---- files -------------------------------------------------------------------------------
CHANGED=()

ensure_dir() { # PATH MODE OWNER:GROUP
    mkdirs "$1"
    if mode_differs "$1" "$2"; then
        chmod "$2" "$R$1"
    fi
    sys chown "$3" "$1"
}

# Installs SRC at DST (content replaced atomically, only when it differs), then sets mode and
# owner. Records DST in CHANGED when its content changed; the journal keeps what was there.
put() { # SRC DST MODE OWNER:GROUP
    local src=$1 dst=$2 mode=$3 owner=$4 tmp
    if ! cmp -s "$src" "$R$dst"; then
        journal_file "$dst"
        tmp=$(mktemp "$R$dst.XXXXXX")
        cat "$src" >"$tmp"
        chmod "$mode" "$tmp"
        mv -f "$tmp" "$R$dst"
        CHANGED+=("$dst")
    elif mode_differs "$dst" "$mode"; then
        journal_file "$dst"
        chmod "$mode" "$R$dst"
    fi
    sys chown "$owner" "$dst"
}

# Removes DST if present; records it in CHANGED.
remove() {
    if [[ -e $R$1 ]]; then
        journal_file "$1"
        rm -f "$R$1"
        CHANGED+=("$1")
    fi
}

# Replaces DST with SRC, keeping what it replaces as DST.previous (the operator's way back).
put_keeping_previous() { # SRC DST MODE OWNER:GROUP
    if [[ -f $R$2 ]] && ! cmp -s "$1" "$R$2"; then
        cp -p "$R$2" "$WORK/previous"
        put "$WORK/previous" "$2.previous" "$3" "$4"
    fi
    put "$@"
}

# A socket unit listens where the config says, not where its own ListenStream= does: systemd hands the
# agent the sockets it binds, and the agent serves those instead of binding the config's addresses.
# Writes UNIT.d/listen.conf (an empty ListenStream=, then ADDR...), or removes it when ADDR... is
# the unit's own address.
socket_listen() { # UNIT UNIT_LISTEN ADDR...
    local unit=$1 unit_listen=$2
    shift 2
    if [[ "$*" == "$unit_listen" ]]; then
        socket_listen_remove "$unit"
        return
    fi
    ensure_dir "$UNIT_DIR/$unit.d" 0755 root:root
    {
        printf '[Socket]\nListenStream=\n'
        printf 'ListenStream=%s\n' "$@"
    } >"$WORK/$unit-listen.conf"
    put "$WORK/$unit-listen.conf" "$UNIT_DIR/$unit.d/listen.conf" 0644 root:root
}

socket_listen_remove() { # UNIT
    remove "$UNIT_DIR/$1.d/listen.conf"
    remove_dir "$UNIT_DIR/$1.d"
}

# Removes an empty directory (not one that holds an administrator's drop-in).
remove_dir() { # PATH
    if [[ -d $R$1 ]] && [[ -z $(ls -A "$R$1") ]]; then
        rmdir "$R$1"
        JOURNAL+=("removed-dir $1")
    fi
}

changed() { # PATH... : true when any of them changed in this run
    local p c
    for p in "$@"; do
        for c in "${CHANGED[@]+"${CHANGED[@]}"}"; do
            [[ $c == "$p" ]] && return 0
        done
    done
    return 1
}

mkdirs /usr/local/bin
mkdirs "$UNIT_DIR"
mkdirs /etc/logrotate.d
ensure_dir "$LIBEXEC" 0755 root:root
ensure_dir "$DOC" 0755 root:root
# Traversable by everyone so that job users can reach the token; config and mappings inside
# are readable by the agent's group only.
ensure_dir "$ETC" 0755 root:root

put "$REL/bin/$PROG" "$BIN" 0755 root:root
for f in wire-clients.sh mappings-sync.sh emr_conf.py install.sh; do
    if [[ -f $REL/bootstrap/$f ]]; then
        put "$REL/bootstrap/$f" "$LIBEXEC/$f" 0755 root:root
    fi
done
for f in "$REL"/docs/*.md "$REL"/README.md; do
    if [[ -f $f ]]; then
        put "$f" "$DOC/$(basename "$f")" 0644 root:root
    fi
done
# The socket unit holds the port across agent restarts (both systemd lines know socket units).
put "$REL/systemd/$SOCKET" "$UNIT_DIR/$SOCKET" 0644 root:root
if ((SYSTEMD_VERSION >= 247)); then
    put "$REL/systemd/$UNIT" "$UNIT_DIR/$UNIT" 0644 root:root
else
    log "systemd $SYSTEMD_VERSION: installing the compat unit"
    put "$REL/systemd/compat/$UNIT" "$UNIT_DIR/$UNIT" 0644 root:root
fi
# The audit log's directory (the main unit's LogsDirectory= would create it too).
ensure_dir "/var/log/$PROG" 0750 "$PROG:$PROG"
if ((SHIPPING)); then
    # Rotation would rename records away from the shipper; its segments leave the disk once shipped instead.
    log "audit shipping to S3: on; no logrotate rule for the audit log (segments leave the disk once shipped)"
    if [[ -e $R$UNIT_DIR/$ROTATE_TIMER ]]; then
        sys systemctl stop "$ROTATE_TIMER"
        sys systemctl disable "$ROTATE_TIMER"
    fi
    remove "/etc/logrotate.d/$PROG"
    remove "$UNIT_DIR/$ROTATE_TIMER"
    remove "$UNIT_DIR/$ROTATE_SERVICE"
elif [[ -f $REL/config/logrotate ]]; then
    put "$REL/config/logrotate" /etc/logrotate.d/$PROG 0644 root:root
    # Rotation by size every few minutes: the audit log's disk budget holds whatever the traffic.
    put "$REL/systemd/$ROTATE_SERVICE" "$UNIT_DIR/$ROTATE_SERVICE" 0644 root:root
    put "$REL/systemd/$ROTATE_TIMER" "$UNIT_DIR/$ROTATE_TIMER" 0644 root:root
fi
put_keeping_previous "$STAGE/config.toml" "$ETC/config.toml" 0640 "root:$PROG"
if [[ -n $MAPPINGS_URI ]]; then
    put_keeping_previous "$STAGE/mappings" "$ETC/mappings" 0640 "root:$PROG"
fi

# The token: random, created once, no trailing newline (SDKs reject one). The agent reads it as
# its owner; the users that run jobs read it through TOKEN_GROUP. It is a defence against
# request forgery (SSRF), not the caller's identity, which the agent takes from the kernel.
if [[ ! -s $R$TOKEN ]] || [[ $(wc -l <"$R$TOKEN") -ne 0 ]]; then
    printf '%s' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$WORK/token"
    put "$WORK/token" "$TOKEN" "$TOKEN_MODE" "$PROG:$TOKEN_GROUP"
else
    put "$R$TOKEN" "$TOKEN" "$TOKEN_MODE" "$PROG:$TOKEN_GROUP"
fi

# The EMRFS/S3A provider goes where EMR's Hadoop and Spark class paths already look.
HAVE_JAR=0
if [[ -f $REL/lib/$JAR_NAME ]]; then
    HAVE_JAR=1
    mkdirs "$AUXLIB"
    put "$REL/lib/$JAR_NAME" "$AUXLIB/$JAR_NAME" 0644 root:root
else
    log "warning: the release has no $JAR_NAME: EMRFS and S3A will not be wired to the agent"
fi

# Where the per-request hooks (the JVM hooks jar, the Python plugin) find the agent when nothing else
# tells them: readable by every user, no secret in it (the token stays in its own file).
{
    printf '# Written by the emrfs-role-agent bootstrap action: where the client hooks find the agent.\n'
    printf 'endpoint=http://127.0.0.1:%s\n' "$PORT"
    printf 'token-file=%s\n' "$TOKEN"
} >"$WORK/client.properties"
put "$WORK/client.properties" "$CLIENT_PROPERTIES" 0644 root:root

# The global hooks: every S3 client a JVM with EMRFS's auxlib on its class path builds asks per request.
if ((JVM_HOOKS)); then
    mkdirs "$AUXLIB"
    put "$REL/lib/$HOOKS_JAR_NAME" "$AUXLIB/$HOOKS_JAR_NAME" 0644 root:root
    log "JVM hooks: $AUXLIB/$HOOKS_JAR_NAME (every S3 client on the Hadoop and Spark class paths asks per request)"
else
    remove "$AUXLIB/$HOOKS_JAR_NAME"
fi

# The Python plugin's wheel (docs/python.md) stays in $LIBEXEC/python for other environments (virtualenvs,
# conda, notebook kernels); pip installs it into the node's python3 once the run has committed (below).
PY_WHEEL=""
for f in "$REL"/python/emrfs_role_agent-*-py3-none-any.whl; do
    if [[ -f $f ]]; then PY_WHEEL=${f##*/}; fi
done
if [[ -n $PY_WHEEL ]]; then
    ensure_dir "$LIBEXEC/python" 0755 root:root
    for f in "$R$LIBEXEC"/python/emrfs_role_agent-*.whl; do
        if [[ -f $f && ${f##*/} != "$PY_WHEEL" ]]; then remove "$LIBEXEC/python/${f##*/}"; fi
    done
    put "$REL/python/$PY_WHEEL" "$LIBEXEC/python/$PY_WHEEL" 0644 root:root
else
    log "warning: the release has no Python plugin wheel"
fi

# Central mapping updates.
if [[ -n $MAPPINGS_REFRESH ]]; then
    put "$REL/systemd/$SYNC_SERVICE" "$UNIT_DIR/$SYNC_SERVICE" 0644 root:root
    put "$REL/systemd/$SYNC_TIMER" "$UNIT_DIR/$SYNC_TIMER" 0644 root:root
    ensure_dir "$UNIT_DIR/$SYNC_TIMER.d" 0755 root:root
    printf '[Timer]\nOnBootSec=\nOnBootSec=%s\nOnUnitActiveSec=\nOnUnitActiveSec=%s\n' \
        "$MAPPINGS_REFRESH" "$MAPPINGS_REFRESH" >"$WORK/interval.conf"
    put "$WORK/interval.conf" "$UNIT_DIR/$SYNC_TIMER.d/interval.conf" 0644 root:root
    {
        printf '# Written by the emrfs-role-agent bootstrap action.\n'
        printf 'MAPPINGS_URI=%s\n' "$MAPPINGS_URI"
        printf 'MAPPINGS_FILE=%s\n' "$ETC/mappings"
        printf 'AGENT_CONFIG=%s\n' "$ETC/config.toml"
        printf 'AGENT_BINARY=%s\n' "$BIN"
        if [[ -n $S3_COPY ]]; then printf 'S3_COPY=%s\n' "$S3_COPY"; fi
    } >"$WORK/mappings-sync.env"
    put "$WORK/mappings-sync.env" "$SYNC_ENV" 0640 root:root
else
    if [[ -e $R$UNIT_DIR/$SYNC_TIMER ]]; then
        sys systemctl stop "$SYNC_TIMER"
        sys systemctl disable "$SYNC_TIMER"
    fi
    remove "$UNIT_DIR/$SYNC_TIMER.d/interval.conf"
    remove_dir "$UNIT_DIR/$SYNC_TIMER.d"
    remove "$UNIT_DIR/$SYNC_TIMER"
    remove "$UNIT_DIR/$SYNC_SERVICE"
    remove "$SYNC_ENV"
fi

# As the agent's own user, the installed files: proves it can read everything it needs.
if [[ -z $R ]]; then
    # (What fights the agent on this node was judged above, as root: not again here.)
    if ! out_user=$(runuser -u "$PROG" -- "$BIN" check --config "$ETC/config.toml" --ruleset /dev/null \
        --processes /dev/null 2>&1); then
        printf '%s\n' "$out_user" >&2
        die "the agent's user cannot use the installed configuration"
    fi
fi

# ---- API socket --------------------------------------------------------------------------
# The socket listens on [server] listen, as the binary reads the config: `check` prints
# "listen:        127.0.0.1:9944, [::1]:9944" (the default when the config sets none). systemd hands
# the agent that socket instead of letting it bind the config's addresses, so the unit's own
# 127.0.0.1:9944 would win over any other listen. (A binary without that line: --port decides.)
API_LISTEN=$(sed -n 's/^listen:[[:space:]]*//p' <<<"$out" | head -n1)
if [[ -n $API_LISTEN ]]; then
    IFS=', ' read -ra API_ADDRS <<<"$API_LISTEN"
    for a in "${API_ADDRS[@]}"; do
        [[ $a =~ ^([0-9.]+|\[[0-9a-fA-F:.%]+\]):[0-9]+$ ]] \
            || die "the agent's check printed an unexpected listen address: $a"
    done
    # Clients and the readiness check go to 127.0.0.1:PORT; an [imds] listen does not count.
    wired=0
    for a in "${API_ADDRS[@]}"; do
        if [[ $a == "127.0.0.1:$PORT" ]]; then wired=1; fi
    done
    ((wired)) || log "warning: the config's [server] listen ($API_LISTEN) does not include" \
        "127.0.0.1:$PORT, where --port sends the clients and the readiness check"
else
    API_LISTEN=127.0.0.1:$PORT
    API_ADDRS=("$API_LISTEN")
fi
log "API socket: $API_LISTEN"
socket_listen "$SOCKET" "$SOCKET_UNIT_LISTEN" "${API_ADDRS[@]}"

# ---- instance-metadata interception ------------------------------------------------------
# On exactly when the config sets [imds] listen ($IMDS_LISTEN, read from `check` above).
if [[ -n $IMDS_LISTEN ]]; then
    log "instance-metadata interception: on, listener $IMDS_LISTEN"
    for f in systemd/$IMDS_SOCKET systemd/$IMDS_REDIRECT systemd/compat/$IMDS_REDIRECT; do
        [[ -f $REL/$f ]] || die "[imds] listen is set, but the release tarball has no $f"
    done
    # The socket holds the metadata port across agent restarts, as the API socket does for its own.
    put "$REL/systemd/$IMDS_SOCKET" "$UNIT_DIR/$IMDS_SOCKET" 0644 root:root
    # The agent serves a handed socket as its metadata listener only if its address is imds.listen, or
    # [::1] at its port (where the IPv6 redirect sends connections; left out on a node without IPv6).
    IMDS_ADDRS=("$IMDS_LISTEN")
    if [[ -e /proc/net/if_inet6 ]]; then IMDS_ADDRS+=("[::1]:$IMDS_PORT"); fi
    socket_listen "$IMDS_SOCKET" "$IMDS_UNIT_LISTEN" "${IMDS_ADDRS[@]}"
    if ((SYSTEMD_VERSION >= 247)); then
        put "$REL/systemd/$IMDS_REDIRECT" "$UNIT_DIR/$IMDS_REDIRECT" 0644 root:root
    else
        put "$REL/systemd/compat/$IMDS_REDIRECT" "$UNIT_DIR/$IMDS_REDIRECT" 0644 root:root
    fi
else
    log "instance-metadata interception: off ([imds] listen is not set)"
    # Turned off after being on: the rules would send metadata traffic to a port nobody serves.
    if [[ -e $R$UNIT_DIR/$IMDS_REDIRECT ]]; then
        sys systemctl disable "$IMDS_REDIRECT"
        sys systemctl stop "$IMDS_REDIRECT"
        sys "$BIN" imds-redirect remove || die "the instance-metadata redirect could not be removed"
    fi
    if [[ -e $R$UNIT_DIR/$IMDS_SOCKET ]]; then
        sys systemctl stop "$IMDS_SOCKET"
        sys systemctl disable "$IMDS_SOCKET"
    fi
    socket_listen_remove "$IMDS_SOCKET"
    remove "$UNIT_DIR/$IMDS_SOCKET"
    remove "$UNIT_DIR/$IMDS_REDIRECT"
fi
step installed

# ---- start -------------------------------------------------------------------------------
if changed "$UNIT_DIR/$UNIT" "$UNIT_DIR/$SOCKET" "$UNIT_DIR/$SOCKET.d/listen.conf" \
    "$UNIT_DIR/$ROTATE_SERVICE" "$UNIT_DIR/$ROTATE_TIMER" \
    "$UNIT_DIR/$SYNC_SERVICE" "$UNIT_DIR/$SYNC_TIMER" \
    "$UNIT_DIR/$SYNC_TIMER.d/interval.conf" \
    "$UNIT_DIR/$IMDS_SOCKET" "$UNIT_DIR/$IMDS_SOCKET.d/listen.conf" "$UNIT_DIR/$IMDS_REDIRECT"; then
    sys systemctl daemon-reload
fi
# Shows why a unit failed, and fails the bootstrap action (which rolls it back).
unit_failed() { # UNIT MESSAGE
    systemctl status --no-pager "$1" >&2 || true
    journalctl -u "$1" -n 50 --no-pager >&2 || true
    die "$2"
}
agent_failed() { unit_failed "$UNIT" "$1"; }

# (No `enable --now`: systemd 219 does not have it.) The socket first: from then on the port is the
# agent's, whatever happens to the process. `start` returns once the agent has sent READY=1.
# start_socket SOCKET PREVIOUSLY_INSTALLED FAILURE: enables and starts a socket unit. A new address (or
# socket unit) on an installed node takes a restart of the socket, and a running agent holds the old one:
# the agent stops first and starts below with the new one; its clients are refused until then.
start_socket() {
    local socket=$1 previously=$2 failure=$3
    sys systemctl enable "$socket"
    if ((previously)) && changed "$UNIT_DIR/$socket" "$UNIT_DIR/$socket.d/listen.conf"; then
        if ((was_active)); then
            sys systemctl stop "$UNIT"
            was_active=0
        fi
        sys systemctl restart "$socket" || unit_failed "$socket" "$failure"
    else
        sys systemctl start "$socket" || unit_failed "$socket" "$failure"
    fi
}
start_socket "$SOCKET" "$PREVIOUSLY_INSTALLED" "no API socket on $API_LISTEN"
if [[ -n $IMDS_LISTEN ]]; then
    # The metadata socket before the agent starts, or the agent would not be handed it; then the
    # redirect, whose connections wait in that socket's queue until the agent serves them.
    start_socket "$IMDS_SOCKET" "$IMDS_PREVIOUSLY_INSTALLED" "no metadata socket on $IMDS_LISTEN"
    sys systemctl enable "$IMDS_REDIRECT"
    # Installing again replaces the rules: new exempt users, a new listener, a new binary.
    if ((IMDS_PREVIOUSLY_INSTALLED)) && changed "$UNIT_DIR/$IMDS_REDIRECT" "$ETC/config.toml" "$BIN"; then
        sys systemctl restart "$IMDS_REDIRECT" || unit_failed "$IMDS_REDIRECT" "the instance-metadata redirect failed"
    else
        sys systemctl start "$IMDS_REDIRECT" || unit_failed "$IMDS_REDIRECT" "the instance-metadata redirect failed"
    fi
fi
sys systemctl enable "$UNIT"
if ((!was_active)); then
    sys systemctl start "$UNIT" || agent_failed "the agent did not start"
elif changed "$BIN" "$UNIT_DIR/$UNIT" "$UNIT_DIR/$IMDS_SOCKET"; then
    # (The metadata socket, added or removed, reaches the agent only through a restart.)
    sys systemctl restart "$UNIT" || agent_failed "the agent did not restart"
elif changed "$ETC/config.toml" "$ETC/mappings"; then
    sys systemctl reload "$UNIT" || agent_failed "the agent did not reload"
fi
if [[ -e $R$UNIT_DIR/$ROTATE_TIMER ]]; then
    sys systemctl enable "$ROTATE_TIMER"
    sys systemctl start "$ROTATE_TIMER"
fi
if [[ -n $MAPPINGS_REFRESH ]]; then
    sys systemctl enable "$SYNC_TIMER"
    if changed "$UNIT_DIR/$SYNC_TIMER" "$UNIT_DIR/$SYNC_TIMER.d/interval.conf"; then
        sys systemctl restart "$SYNC_TIMER"
    else
        sys systemctl start "$SYNC_TIMER"
    fi
fi
step started

if [[ -z $R ]]; then
    log "waiting for http://127.0.0.1:$PORT/readyz"
    deadline=$((SECONDS + READY_TIMEOUT))
    until curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null; do
        if ((SECONDS >= deadline)) || ! systemctl is-active --quiet "$UNIT"; then
            agent_failed "the agent did not become ready on port $PORT"
        fi
        sleep 1
    done
    log "agent ready"
fi
step ready

# ---- clients -----------------------------------------------------------------------------
WIRE=("$LIBEXEC/wire-clients.sh" --port "$PORT" --token-file "$TOKEN" --jar "$AUXLIB/$JAR_NAME"
    --poll "$WIRE_POLL" --timeout "$WIRE_TIMEOUT")
((S3_VIA_S3A)) && WIRE+=(--s3-via-s3a)
for f in "${RULESETS[@]+"${RULESETS[@]}"}"; do WIRE+=(--ruleset "$f"); done
[[ -n $PROCESSES ]] && WIRE+=(--processes "$PROCESSES")
if ((WIRE_CLIENTS)); then
    ((HAVE_JAR)) || log "only Spark's container-credentials settings will be wired"
    if [[ -n $R ]]; then
        sys start-waiter "${WIRE[@]}"
        mkdir -p "$R/run"
        setsid nohup "$R${WIRE[0]}" --root "$R" "${WIRE[@]:1}" \
            >>"$R/var/log/$PROG-bootstrap/wire-clients.log" 2>&1 </dev/null &
        WAITER_PID=$!
    elif command -v systemd-run >/dev/null 2>&1; then
        if systemctl is-active --quiet "$WIRE_UNIT.service"; then
            log "client waiter already running"
        else
            systemctl reset-failed "$WIRE_UNIT.service" 2>/dev/null || true
            WAITER_UNIT_STARTED=1
            sys systemd-run --unit="$WIRE_UNIT" --description="emrfs-role-agent client wiring" "${WIRE[@]}"
        fi
    else
        setsid nohup "${WIRE[@]}" >>"/var/log/$PROG-wire-clients.log" 2>&1 </dev/null &
        WAITER_PID=$!
    fi
fi
COMMITTED=1

# ---- Python plugin into python3 ----------------------------------------------------------------
# After the commit: pip's changes are not rolled back. A node whose python3 has no pip, or is older than the
# plugin needs (Amazon Linux 2: 3.7), keeps the wheel in $LIBEXEC/python and gets a warning.
if [[ -n $PY_WHEEL ]]; then
    pip_install=(python3 -m pip install --quiet --disable-pip-version-check --no-input --no-deps --no-index --upgrade
        "$LIBEXEC/python/$PY_WHEEL")
    if [[ -n $R ]]; then
        sys "${pip_install[@]}"
    elif ! python3 -m pip --version >/dev/null 2>&1; then
        log "warning: no python3 with pip here: the Python plugin is not installed ($LIBEXEC/python/$PY_WHEEL)"
    elif ! sys "${pip_install[@]}"; then
        log "warning: pip could not install $PY_WHEEL into python3 (it needs Python 3.9 or later)"
    fi
fi
log "installed $("$R$BIN" --version 2>/dev/null || echo "$PROG")"
