#!/usr/bin/env bash
# Builds the JVM clients jar (clients/, Maven) and the Java test drivers (tests/java), runs the clients' unit tests
# (JUnit 5 in clients/src/test/java, by Surefire, on the three runtimes clients/pom.xml names; a failing test fails
# this script, with Surefire's report), and resolves the class paths the end-to-end tests run the drivers on
# (tests/java/runtimes: real Hadoop and AWS SDK artefacts).
#
# Everything comes from Maven Central through Maven, cached in the local repository ($HOME/.m2 by default;
# MAVEN_OPTS / -Dmaven.repo.local move it). A first run downloads about 200 MB; later runs reuse the cache (no
# network needed), and skip Maven entirely while no source, POM or this script changed since a green build.
# The unit tests alone: mvn -f clients/pom.xml test (about a minute on a warm cache).
#
# With --spark-venv it also makes sure a virtualenv with pyspark 3.5.9 (from PyPI, pinned by sha256) exists, for
# the Spark end-to-end tests, and prints its python as the last line instead. --spark-venv-only does only that
# (no JDK build, no Maven): for Spark SQL over local files, which needs none of the jars.
#
# Environment:
#   EMRFS_SPARK_VENV           pyspark venv     [$HOME/.cache/emrfs-role-agent/spark-venv]
#   EMRFS_JARS_CACHE           download cache for the pyspark archive [$HOME/.cache/emrfs-role-agent/jars]
#   EMRFS_PROVIDER_BUILD_DIR   build output     [${CARGO_TARGET_DIR:-<repo>/target}/java]
#   MVN                        Maven            [mvn]
#
# Output (last line of stdout: the build directory):
#   <build>/emrfs-role-agent-provider.jar   the clients, Java 8 bytecode, no dependencies bundled
#   <build>/emrfs-role-agent-hooks.jar      the JVM-wide S3 hooks switch (clients/hooks): the SDKs' global hook
#                                           lists, naming classes of the provider jar
#   <build>/test-classes/                   the test drivers (and the unit tests)
#   <build>/maven/surefire-reports/         the unit tests' reports
#   <build>/runtimes/<name>.txt             ':'-separated class path per runtime (tests/java/runtimes/pom.xml)
#   <build>/runtime-classpath.txt           the hadoop-3.3.6 runtime (Hadoop S3A + SDK v1)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
want_spark=0
case ${1:-} in
  "") ;;
  --spark-venv) want_spark=1 ;;
  --spark-venv-only) want_spark=2 ;;
  *) echo "usage: $0 [--spark-venv | --spark-venv-only]" >&2; exit 2 ;;
esac
spark_venv=${EMRFS_SPARK_VENV:-$HOME/.cache/emrfs-role-agent/spark-venv}
cache=${EMRFS_JARS_CACHE:-$HOME/.cache/emrfs-role-agent/jars}
build=${EMRFS_PROVIDER_BUILD_DIR:-${CARGO_TARGET_DIR:-$repo/target}/java}
mvn_bin=${MVN:-mvn}

log() { echo "build-emrfs-provider: $*" >&2; }

# The pyspark virtualenv, made once; prints its python.
spark_venv_python() {
  spark_version=3.5.9
  spark_archive=pyspark-$spark_version.tar.gz
  spark_sha256=ea27adc39ddac9413b8951e45aa748cbed6c785971b81386efc41938f6243d93
  venv_stamp="$spark_venv/.built-from-$spark_sha256"
  if [[ ! -f $venv_stamp ]] || ! "$spark_venv/bin/python" -c 'import pyspark' 2>/dev/null; then
    mkdir -p "$cache/archives"
    if [[ ! -s "$cache/archives/$spark_archive" ]]; then
      log "downloading pyspark==$spark_version (once, about 320 MB; cached in $cache/archives)"
      reqfile=$(mktemp)
      echo "pyspark==$spark_version --hash=sha256:$spark_sha256" >"$reqfile"
      python3 -m pip download --quiet --no-deps --require-hashes -r "$reqfile" -d "$cache/archives" >&2 ||
        { rm -f "$reqfile"; log "pip download of pyspark==$spark_version failed"; exit 1; }
      rm -f "$reqfile"
    fi
    echo "$spark_sha256  $cache/archives/$spark_archive" | sha256sum --check --quiet - >&2
    log "building the pyspark virtualenv $spark_venv (once)"
    rm -rf "$spark_venv"
    python3 -m venv "$spark_venv"
    "$spark_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-deps \
      "$cache/archives/$spark_archive" "py4j==0.10.9.7" >&2
    touch "$venv_stamp"
  fi
  echo "$spark_venv/bin/python"
}
if ((want_spark == 2)); then
  spark_venv_python
  exit 0
fi

for tool in javac "$mvn_bin"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "$tool not found; install a JDK 11 or newer and Maven (Debian: openjdk-17-jdk-headless maven;"
    log "scripts/setup-test-env.sh installs both)"
    exit 1
  fi
done

runtimes=(hadoop-3.3.6 hadoop-3.4.1 hadoop-3.4.1-sdk-current spark-3.5 jvm-global spark-3.5-iceberg)

# mvn ARGS...: quiet, batch mode, output only on failure.
run_mvn() {
  local out
  out=$(mktemp)
  if ! nice -n 10 "$mvn_bin" -B -q -Dstyle.color=never "$@" >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out"
    log "mvn $* failed"
    exit 1
  fi
  rm -f "$out"
}

stamp="$build/.up-to-date"
outputs_present() {
  [[ -f "$build/emrfs-role-agent-provider.jar" && -f "$build/emrfs-role-agent-hooks.jar" &&
    -d "$build/test-classes" ]] || return 1
  local r
  for r in "${runtimes[@]}"; do [[ -s "$build/runtimes/$r.txt" ]] || return 1; done
}
if [[ -f $stamp ]] && outputs_present &&
  [[ -z $(find "$repo/clients" "$repo/tests/java" "$repo/Cargo.toml" "$0" -newer "$stamp" \
    -not -path '*/target/*' -print -quit 2>/dev/null) ]]; then
  log "up to date"
else
  rm -f "$stamp"
  version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
  maven_dir="$build/maven"
  log "building and testing clients/ with Maven (first run downloads the dependencies into the local Maven repository)"
  out=$(mktemp)
  if ! nice -n 10 "$mvn_bin" -B -Dstyle.color=never -f "$repo/clients/pom.xml" -Dclients.build.dir="$maven_dir" \
    -Dagent.version="${version:-0}" clean package >"$out" 2>&1; then
    grep -v '^\[INFO\] Download' "$out" >&2
    rm -f "$out"
    log "the clients' build or unit tests failed (reports: $maven_dir/surefire-reports)"
    exit 1
  fi
  # Surefire's summary per run (one line per execution of clients/pom.xml).
  sed -n 's/^\[INFO\] --- maven-surefire-plugin:[^ ]* (\([^)]*\)).*/\1/p; s/^\[INFO\] \(Tests run: [0-9]*, Failures: [0-9]*, Errors: [0-9]*, Skipped: [0-9]*\)$/\1/p' \
    "$out" | paste -d' ' - - | sed 's/^/build-emrfs-provider: client unit tests, /' >&2
  rm -f "$out"
  rm -rf "$build/test-classes"
  mkdir -p "$build"
  cp "$maven_dir/emrfs-role-agent-provider.jar" "$build/emrfs-role-agent-provider.jar"
  cp -r "$maven_dir/test-classes" "$build/test-classes"
  run_mvn -f "$repo/clients/hooks/pom.xml" -Dhooks.build.dir="$build/maven-hooks" -Dagent.version="${version:-0}" \
    clean package
  cp "$build/maven-hooks/emrfs-role-agent-hooks.jar" "$build/emrfs-role-agent-hooks.jar"

  log "resolving the test runtimes: ${runtimes[*]}"
  rm -rf "$build/runtimes"
  run_mvn -f "$repo/tests/java/runtimes/pom.xml" -Druntimes.classpath.dir="$build/runtimes" \
    dependency:build-classpath
  for r in "${runtimes[@]}"; do
    [[ -s "$build/runtimes/$r.txt" ]] || { log "runtime $r has no class path"; exit 1; }
  done
  cp "$build/runtimes/hadoop-3.3.6.txt" "$build/runtime-classpath.txt"
  touch "$stamp"
fi
log "jars: $build/emrfs-role-agent-provider.jar $build/emrfs-role-agent-hooks.jar"

if ((want_spark)); then
  spark_venv_python
else
  echo "$build"
fi
