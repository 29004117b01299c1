#!/usr/bin/env bash
# Central updates of the role mappings: fetch them from S3 and reload emrfs-role-agent only
# when they changed.
#
# Run by emrfs-role-agent-mappings-sync.service (started by its timer) with the settings of
# /etc/emrfs-role-agent/mappings-sync.env; flags override them.
#
# A new file is checked with `emrfs-role-agent check --mappings` (the installed config, with the new
# mappings read in place of mappings_file) before it replaces the old one, so the file on disk is always one the agent
# accepts; a rejected file leaves everything as it was and the unit fails, which shows in
# `systemctl --failed` and the journal. Should a bad file get past this check, the agent
# itself rejects it on reload and keeps serving the old mappings.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: mappings-sync.sh [options]

  --uri S3_URI        where the mappings live        (env MAPPINGS_URI)
  --dest PATH         installed mappings file        (env MAPPINGS_FILE, default /etc/emrfs-role-agent/mappings)
  --config PATH       agent configuration            (env AGENT_CONFIG, default /etc/emrfs-role-agent/config.toml)
  --binary PATH       agent binary used to check     (env AGENT_BINARY, default /usr/local/bin/emrfs-role-agent)
  --s3-copy CMD       copy command run as CMD SRC DST (env S3_COPY, default: aws s3 cp --only-show-errors)
  --reload-cmd CMD    run after a change              (env RELOAD_CMD, default: systemctl reload emrfs-role-agent.service)
  -h, --help          this text
EOF
}

URI=${MAPPINGS_URI:-}
DEST=${MAPPINGS_FILE:-/etc/emrfs-role-agent/mappings}
CONFIG=${AGENT_CONFIG:-/etc/emrfs-role-agent/config.toml}
BINARY=${AGENT_BINARY:-/usr/local/bin/emrfs-role-agent}
S3_COPY=${S3_COPY:-}
RELOAD_CMD=${RELOAD_CMD:-systemctl reload emrfs-role-agent.service}

while (($#)); do
    case $1 in
        --uri) URI=${2:?--uri needs an S3 URI}; shift 2 ;;
        --dest) DEST=${2:?--dest needs a path}; shift 2 ;;
        --config) CONFIG=${2:?--config needs a path}; shift 2 ;;
        --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
        --s3-copy) S3_COPY=${2?--s3-copy needs a command}; shift 2 ;;
        --reload-cmd) RELOAD_CMD=${2:?--reload-cmd needs a command}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "mappings-sync.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf 'mappings-sync: %s\n' "$*" >&2; }

if [[ -z $URI ]]; then
    log "no mappings URI (--uri or MAPPINGS_URI)"
    exit 2
fi

dir=$(dirname "$DEST")
new=$(mktemp "$dir/.mappings.new.XXXXXX")
cleanup() { rm -f "$new"; }
trap cleanup EXIT

if [[ -n $S3_COPY ]]; then
    read -ra copy <<<"$S3_COPY"
else
    copy=(aws s3 cp --only-show-errors)
fi
"${copy[@]}" "$URI" "$new"

if [[ -f $DEST ]] && cmp -s "$new" "$DEST"; then
    log "unchanged"
    exit 0
fi

# Check the new mappings with the installed config, read in place of the file its mappings_file names.
if [[ -x $BINARY && -f $CONFIG ]] && grep -Eq '^[[:space:]]*mappings_file[[:space:]]*=' "$CONFIG"; then
    if ! out=$("$BINARY" check --config "$CONFIG" --mappings "$new" 2>&1); then
        log "rejected $URI; keeping the current mappings:"
        printf '%s\n' "${out//"$new"/"$URI"}" >&2
        exit 1
    fi
else
    log "cannot check the new mappings (no binary, or $CONFIG has no mappings_file); the agent checks them on reload"
fi

if [[ -f $DEST ]]; then
    chmod --reference="$DEST" "$new"
    chown --reference="$DEST" "$new"
else
    chmod 0640 "$new"
fi
mv -f "$new" "$DEST"
log "installed new mappings from $URI"
read -ra reload <<<"$RELOAD_CMD"
"${reload[@]}"
