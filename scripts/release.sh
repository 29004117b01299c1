#!/usr/bin/env bash
# Builds the release tarball emrfs-role-agent-<version>-x86_64-linux.tar.gz and its .sha256.
#
#   scripts/release.sh [--out DIR] [--binary PATH] [--jar PATH | --no-jar]
#
# The binary is built with cargo-zigbuild against glibc 2.26, so that it runs on Amazon Linux 2
# (glibc 2.26) as well as Amazon Linux 2023 (2.34); the script fails if the binary needs a newer
# GLIBC_ symbol version. cargo-zigbuild (from crates.io) and zig (the PyPI package `ziglang`, in
# a virtualenv) are installed once, pinned, under $EMRFS_RELEASE_CACHE
# (default ~/.cache/emrfs-role-agent), with the build's own target directory beside them.
#
# The tarball holds one top-level directory emrfs-role-agent-<version>-x86_64-linux/ with
#   bin/emrfs-role-agent               the agent
#   systemd/                           emrfs-role-agent.service and .socket, the mappings-sync service and timer,
#                                      the instance-metadata socket and redirect service, and compat/
#                                      versions of both services for systemd < 247 (Amazon Linux 2)
#   bootstrap/                         the EMR bootstrap action (install.sh) and its helpers
#   config/                            example config, EMR Configurations JSON, logrotate file
#   lib/emrfs-role-agent-provider.jar  the EMRFS/S3A credentials provider, when it could be built
#   docs/, README.md
# It is reproducible: sorted entries, owner 0, mtime of the last commit, gzip without a name.
#
# Options:
#   --out DIR      where the tarball and .sha256 go (default <repo>/target/dist)
#   --binary PATH  package this binary instead of building one (its GLIBC check still applies)
#   --jar PATH     package this provider jar instead of running scripts/build-emrfs-provider.sh
#   --no-jar       package no provider jar
# The last line of standard output is the tarball's path.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${EMRFS_RELEASE_CACHE:-$HOME/.cache/emrfs-role-agent}
ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.17.1
TARGET=x86_64-unknown-linux-gnu
GLIBC_MAX=2.26
JAR_NAME=emrfs-role-agent-provider.jar

log() { printf 'release: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

OUT=$REPO/target/dist
BINARY=""
JAR=""
WANT_JAR=1
while (($#)); do
    case $1 in
        --out) OUT=${2:?--out needs a directory}; shift 2 ;;
        --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
        --jar) JAR=${2:?--jar needs a path}; shift 2 ;;
        --no-jar) WANT_JAR=0; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done

VERSION=$(sed -n '/^\[package\]/,/^\[/{s/^version *= *"\([^"]*\)".*/\1/p}' "$REPO/Cargo.toml" | head -n1)
[[ -n $VERSION ]] || die "no version in Cargo.toml"
NAME=emrfs-role-agent-$VERSION-x86_64-linux

ensure_tools() {
    local zigbuild=$CACHE/tools/bin/cargo-zigbuild venv=$CACHE/zig-venv
    if ! [[ -x $zigbuild ]] || [[ $("$zigbuild" --version 2>/dev/null) != *" $ZIGBUILD_VERSION"* ]]; then
        log "installing cargo-zigbuild $ZIGBUILD_VERSION into $CACHE/tools"
        cargo install --quiet --locked --force "cargo-zigbuild@$ZIGBUILD_VERSION" --root "$CACHE/tools" >&2
    fi
    if [[ $("$venv/bin/python" -m ziglang version 2>/dev/null) != "$ZIGLANG_VERSION" ]]; then
        log "installing zig $ZIGLANG_VERSION (PyPI ziglang) into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "ziglang==$ZIGLANG_VERSION" >&2
    fi
    export PATH=$CACHE/tools/bin:$venv/bin:$PATH
}

build() {
    ensure_tools
    export CARGO_TARGET_DIR=$CACHE/target-release
    # Only this build's profile is stripped; the repository's profile stays as it is.
    export CARGO_PROFILE_RELEASE_STRIP=symbols
    log "building $NAME (cargo zigbuild --target $TARGET.$GLIBC_MAX)"
    (cd "$REPO" && cargo zigbuild --release --locked --target "$TARGET.$GLIBC_MAX" --bin emrfs-role-agent >&2)
    BINARY=$CARGO_TARGET_DIR/$TARGET/release/emrfs-role-agent
}

# Highest GLIBC_x.y symbol version the binary needs; empty for a static or non-ELF file.
glibc_needed() {
    objdump -T "$1" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n1
}

if [[ -z $BINARY ]]; then
    build
fi
[[ -x $BINARY ]] || die "no executable at $BINARY"
if readelf -h "$BINARY" >/dev/null 2>&1; then
    needed=$(glibc_needed "$BINARY")
    if [[ -n $needed && $(printf '%s\n%s\n' "$needed" "$GLIBC_MAX" | sort -V | tail -n1) != "$GLIBC_MAX" ]]; then
        die "$BINARY needs GLIBC_$needed; the release must run on glibc $GLIBC_MAX"
    fi
    log "binary needs GLIBC_${needed:-none} (limit $GLIBC_MAX)"
    version_out=$("$BINARY" --version) || die "$BINARY --version failed"
    [[ $version_out == *"$VERSION"* ]] || die "$BINARY --version says '$version_out', expected $VERSION"
fi

if ((WANT_JAR)) && [[ -z $JAR ]]; then
    if [[ -x $REPO/scripts/build-emrfs-provider.sh ]]; then
        if dir=$("$REPO/scripts/build-emrfs-provider.sh" | tail -n1) && [[ -f $dir/$JAR_NAME ]]; then
            JAR=$dir/$JAR_NAME
        else
            log "warning: the provider jar could not be built; the release has none"
        fi
    else
        log "warning: no scripts/build-emrfs-provider.sh; the release has no provider jar"
    fi
fi
if [[ -n $JAR ]]; then
    [[ -f $JAR ]] || die "no jar at $JAR"
fi

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/emrfs-role-agent-release.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
top=$STAGE/$NAME
mkdir -p "$top"/{bin,systemd/compat,bootstrap,config,docs}
install -m 0755 "$BINARY" "$top/bin/emrfs-role-agent"
install -m 0644 "$REPO"/systemd/*.service "$REPO"/systemd/*.socket "$REPO"/systemd/*.timer "$top/systemd/"
install -m 0644 "$REPO"/systemd/compat/*.service "$top/systemd/compat/"
for f in "$REPO"/bootstrap/*.sh "$REPO"/bootstrap/*.py; do
    if [[ -x $f ]]; then install -m 0755 "$f" "$top/bootstrap/"; else install -m 0644 "$f" "$top/bootstrap/"; fi
done
for f in "$REPO"/config/*; do
    case $(basename "$f") in
        demo.toml) ;; # the demo's own settings, not an example to deploy
        *) if [[ -f $f ]]; then install -m 0644 "$f" "$top/config/"; fi ;;
    esac
done
for f in "$REPO"/docs/*.md "$REPO"/README.md "$REPO"/LICENSE; do
    if [[ -f $f ]]; then
        case $f in
            */docs/*) install -m 0644 "$f" "$top/docs/" ;;
            *) install -m 0644 "$f" "$top/" ;;
        esac
    fi
done
if [[ -n $JAR ]]; then
    mkdir -p "$top/lib"
    install -m 0644 "$JAR" "$top/lib/$JAR_NAME"
fi
printf '%s\n' "$VERSION" >"$top/VERSION"

epoch=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
tarball=$OUT/$NAME.tar.gz
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -C "$STAGE" -cf - "$NAME" | gzip -n -9 >"$tarball.tmp"
mv -f "$tarball.tmp" "$tarball"
(cd "$OUT" && sha256sum "$NAME.tar.gz" >"$NAME.tar.gz.sha256")
log "wrote $tarball ($(du -h "$tarball" | cut -f1)), sha256 $(cut -d' ' -f1 "$tarball.sha256")"
printf '%s\n' "$tarball"
