#!/usr/bin/env bash
# Builds the EMRFS/S3A credentials provider jar (clients/emrfs) and the Java test drivers (tests/java).
#
# The jars it compiles against come from PyPI packages that ship them, so no Maven repository is needed:
#   sagemaker-pyspark 1.4.5: aws-java-sdk-bundle-1.11.901.jar, hadoop-aws-3.3.1.jar
#   pyspark 3.2.4:           hadoop-client-api/runtime-3.3.1.jar and the logging jars S3A needs
# The source archives are downloaded once (pinned by sha256) into the jar cache and the jars extracted from them;
# later runs only recompile.
#
# With --spark-venv it also makes sure a virtualenv with pyspark 3.2.4 (from the same cached archive) exists, for
# the Spark end-to-end test, and prints its python as the last line instead.
#
# Environment:
#   EMRFS_SPARK_VENV           pyspark venv     [$HOME/.cache/emrfs-role-agent/spark-venv]
#   EMRFS_JARS_CACHE           jar cache        [$HOME/.cache/emrfs-role-agent/jars]
#   EMRFS_PROVIDER_BUILD_DIR   build output     [${CARGO_TARGET_DIR:-<repo>/target}/java]
#   JAVAC                      compiler         [javac]
#
# Output (last line of stdout: the build directory):
#   <build>/emrfs-role-agent-provider.jar   the provider, Java 8 bytecode, no dependencies bundled
#   <build>/test-classes/                   the test drivers
#   <build>/runtime-classpath.txt           Hadoop S3A + SDK jars, ':'-separated, for running the drivers
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
want_spark=0
case ${1:-} in
  "") ;;
  --spark-venv) want_spark=1 ;;
  *) echo "usage: $0 [--spark-venv]" >&2; exit 2 ;;
esac
spark_venv=${EMRFS_SPARK_VENV:-$HOME/.cache/emrfs-role-agent/spark-venv}
cache=${EMRFS_JARS_CACHE:-$HOME/.cache/emrfs-role-agent/jars}
build=${EMRFS_PROVIDER_BUILD_DIR:-${CARGO_TARGET_DIR:-$repo/target}/java}
javac_bin=${JAVAC:-javac}

log() { echo "build-emrfs-provider: $*" >&2; }

if ! command -v "$javac_bin" >/dev/null 2>&1; then
  log "no Java compiler ($javac_bin); install a JDK 11 or newer (Debian: openjdk-17-jdk-headless)"
  exit 1
fi

# Archive, its sha256, and the jars taken from it.
sdk_archive=sagemaker_pyspark-1.4.5.tar.gz
sdk_sha256=05ca2d5081d7138ce29a8fb0a9cba077f28c825288ed07aed46a82e63c0bf1fb
sdk_jars=(aws-java-sdk-bundle-1.11.901.jar hadoop-aws-3.3.1.jar)
spark_archive=pyspark-3.2.4.tar.gz
spark_sha256=aaa592f2f03fbef34c91bfcfee389cf53cbff6662ae47bd5f700573ed9ed61f2
spark_jars=(hadoop-client-api-3.3.1.jar hadoop-client-runtime-3.3.1.jar slf4j-api-1.7.30.jar
  slf4j-log4j12-1.7.30.jar log4j-1.2.17.jar commons-logging-1.1.3.jar commons-lang3-3.12.0.jar
  htrace-core4-4.1.0-incubating.jar)

mkdir -p "$cache/archives"

# fetch_archive PACKAGE==VERSION ARCHIVE SHA256: the package's source archive in the cache, checked.
fetch_archive() {
  local req=$1 archive=$2 sha=$3
  if [[ ! -s "$cache/archives/$archive" ]]; then
    log "downloading $req (once; cached in $cache/archives)"
    local reqfile
    reqfile=$(mktemp)
    echo "$req --hash=sha256:$sha" >"$reqfile"
    python3 -m pip download --quiet --no-deps --require-hashes -r "$reqfile" -d "$cache/archives" >&2 ||
      { rm -f "$reqfile"; log "pip download of $req failed"; exit 1; }
    rm -f "$reqfile"
  fi
  echo "$sha  $cache/archives/$archive" | sha256sum --check --quiet - >&2
}

# fetch_jars PACKAGE==VERSION ARCHIVE SHA256 JAR...: the jars in the cache, extracted from the archive.
fetch_jars() {
  local req=$1 archive=$2 sha=$3
  shift 3
  local missing=()
  for jar in "$@"; do
    [[ -s "$cache/$jar" ]] || missing+=("$jar")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  fetch_archive "$req" "$archive" "$sha"

  log "extracting ${missing[*]} from $archive"
  local tmp top
  tmp=$(mktemp -d "$cache/extract.XXXXXX")
  top=${archive%.tar.gz}
  local members=()
  for jar in "${missing[@]}"; do members+=("$top/deps/jars/$jar"); done
  tar -xzf "$cache/archives/$archive" -C "$tmp" "${members[@]}"
  for jar in "${missing[@]}"; do mv "$tmp/$top/deps/jars/$jar" "$cache/$jar"; done
  rm -rf "$tmp"
}

fetch_jars "sagemaker-pyspark==1.4.5" "$sdk_archive" "$sdk_sha256" "${sdk_jars[@]}"
fetch_jars "pyspark==3.2.4" "$spark_archive" "$spark_sha256" "${spark_jars[@]}"

compile_cp="$cache/aws-java-sdk-bundle-1.11.901.jar:$cache/hadoop-client-api-3.3.1.jar:$cache/slf4j-api-1.7.30.jar"
runtime_cp=""
for jar in "${sdk_jars[@]}" "${spark_jars[@]}"; do runtime_cp+="${runtime_cp:+:}$cache/$jar"; done

stamp="$build/.up-to-date"
if [[ -f $stamp && -f "$build/emrfs-role-agent-provider.jar" ]] &&
  [[ -z $(find "$repo/clients/emrfs" "$repo/tests/java" "$repo/Cargo.toml" "$0" -newer "$stamp" -print -quit 2>/dev/null) ]]; then
  log "up to date"
else
  rm -f "$stamp"
  rm -rf "$build/classes" "$build/test-classes"
  mkdir -p "$build/classes" "$build/test-classes"

  mapfile -t main_sources < <(find "$repo/clients/emrfs/src/main/java" -name '*.java' | sort)
  log "compiling ${#main_sources[@]} provider source file(s) for Java 8"
  "$javac_bin" --release 8 -Xlint:all -Xlint:-options -Werror -encoding UTF-8 -cp "$compile_cp" \
    -d "$build/classes" "${main_sources[@]}"

  version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
  printf 'Manifest-Version: 1.0\nImplementation-Title: emrfs-role-agent-provider\nImplementation-Version: %s\n' \
    "${version:-0}" >"$build/MANIFEST.MF"
  rm -f "$build/emrfs-role-agent-provider.jar"
  jar --create --file "$build/emrfs-role-agent-provider.jar" --manifest "$build/MANIFEST.MF" -C "$build/classes" .

  if [[ -d "$repo/tests/java" ]]; then
    mapfile -t test_sources < <(find "$repo/tests/java" -name '*.java' | sort)
    if [[ ${#test_sources[@]} -gt 0 ]]; then
      log "compiling ${#test_sources[@]} test driver(s)"
      "$javac_bin" --release 8 -Xlint:all -Xlint:-options -encoding UTF-8 \
        -cp "$build/classes:$runtime_cp" -d "$build/test-classes" "${test_sources[@]}"
    fi
    cp "$repo"/tests/java/*.properties "$build/test-classes/" 2>/dev/null || true
  fi

  touch "$stamp"
fi
echo "$runtime_cp" >"$build/runtime-classpath.txt"
log "jar: $build/emrfs-role-agent-provider.jar"

if ((want_spark)); then
  stamp="$spark_venv/.built-from-$spark_sha256"
  if [[ ! -f $stamp ]] || ! "$spark_venv/bin/python" -c 'import pyspark' 2>/dev/null; then
    fetch_archive "pyspark==3.2.4" "$spark_archive" "$spark_sha256"
    log "building the pyspark virtualenv $spark_venv (once)"
    rm -rf "$spark_venv"
    python3 -m venv "$spark_venv"
    "$spark_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-deps \
      "$cache/archives/$spark_archive" "py4j==0.10.9.5" >&2
    touch "$stamp"
  fi
  echo "$spark_venv/bin/python"
else
  echo "$build"
fi
