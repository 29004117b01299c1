#!/usr/bin/env bash
# Builds the small SDK clients the end-to-end tests run against the agent (tests/sdk/):
#
#   <build>/caller-identity-go        AWS SDK for Go v2 (go.mod pins the version; modules cached by Go)
#   tests/sdk/js/node_modules         AWS SDK for JavaScript v3 (package-lock.json pins it; `npm ci`)
#
# Idempotent: Go rebuilds only what changed; npm installs only when the lock file changed.
#
# Environment:
#   EMRFS_SDK_BUILD_DIR   where the Go client goes   [${CARGO_TARGET_DIR:-<repo>/target}/sdk]
#
# Output (last line of stdout): the build directory.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${EMRFS_SDK_BUILD_DIR:-${CARGO_TARGET_DIR:-$repo/target}/sdk}
log() { echo "build-sdk-clients: $*" >&2; }

for tool in go node npm; do
    command -v "$tool" >/dev/null 2>&1 || { log "$tool not found"; exit 1; }
done
mkdir -p "$build"

log "AWS SDK for Go v2 client"
(cd "$repo/tests/sdk/go" && go build -mod=readonly -o "$build/caller-identity-go" .)

js=$repo/tests/sdk/js
stamp=$js/node_modules/.package-lock.sha256
want=$(sha256sum "$js/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    log "AWS SDK for JavaScript v3 (npm ci)"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$stamp"
else
    log "AWS SDK for JavaScript v3 up to date"
fi
echo "$build"
