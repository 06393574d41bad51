#!/usr/bin/env bash
# Resolve the Kafka jars pinned in deploy/kafka-jars.txt through Maven (~/.m2 is the cache:
# after the first resolve this works offline):
#   - Spark's Kafka connector for the venv's Spark line into <venv>/spark-kafka-jars (sessions
#     started by custseg and the tests put it on the class path; spark-submit.sh ships it);
#   - unless --connector-only, Apache Kafka's broker and its runtime dependencies into
#     <venv>/kafka-broker (the tests' single-node KRaft broker, tests/kafka_broker.py).
#
#   deploy/kafka-jars.sh [VENV] [--connector-only]      (default .venv)
#
# Exit 0 with one line on stderr when Maven cannot be had or reached (the Kafka source is then
# unavailable and the Kafka tests skip), except under CI=true, where a missing jar fails the set-up.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-.venv}"
broker=1
[ "${2:-}" = "--connector-only" ] && broker=0
pins="$here/deploy/kafka-jars.txt"
py="$venv/bin/python"
plugin="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

fallback() {  # one line saying why, then no Kafka (or a failure under CI)
  if [ "${CI:-}" = "true" ]; then
    echo "ERROR: Kafka jars not resolved: $1 (CI=true: the Kafka tests must run)" >&2
    exit 1
  fi
  echo "Kafka jars not resolved: $1. The Kafka source and its tests are unavailable (rerun 'make venv' to retry)." >&2
  exit 0
}

spark_line=$("$py" -c 'import pyspark; print(".".join(pyspark.__version__.split(".")[:2]))')
connector=$(awk -v line="$spark_line" '!/^#/ && $1 == line && $2 == "connector" {print $3}' "$pins")
[ -n "$connector" ] || { echo "ERROR: no Kafka connector pinned for Spark $spark_line in $pins" >&2; exit 1; }
broker_coord=$(awk '!/^#/ && $2 == "broker" {print $3}' "$pins")

# <dependency> elements; $1: the coordinates, $2: "only" excludes every transitive dependency.
deps_xml() {
  echo "$1" | awk -F: -v only="$2" '{
    printf "<dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version>", $1, $2, $3
    if (only == "only") printf "<exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>"
    print "</dependency>"}'
}

# resolve NAME COORDS MODE OUT: copy the jars into OUT (replaced whole, atomically); MODE "only"
# copies just the pinned jars, "runtime" them and their runtime dependencies.
resolve() {
  local name="$1" coords="$2" mode="$3" out="$4" work log
  local stamp="$out/.pins"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$coords" ] && ls "$out"/*.jar > /dev/null 2>&1; then
    return 0
  fi
  command -v mvn > /dev/null 2>&1 || fallback "mvn not found (install Maven, e.g. apt-get install maven)"
  work="$(mktemp -d)"
  {
    echo '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
    echo "<groupId>custseg</groupId><artifactId>$name</artifactId><version>0</version><dependencies>"
    deps_xml "$coords" "$mode"
    echo '</dependencies></project>'
  } > "$work/pom.xml"
  local args=(-B -q -Dstyle.color=never -f "$work/pom.xml" "$plugin:copy-dependencies"
    -DincludeScope=runtime -DoutputDirectory="$work/jars")
  [ "$mode" = "only" ] && args+=(-DexcludeTransitive=true)
  log="$venv/$name-mvn.log"
  if ! mvn -o "${args[@]}" > "$log" 2>&1; then
    echo "resolving $name from Maven Central: $(echo $coords)" >&2
    if ! mvn "${args[@]}" > "$log" 2>&1; then
      rm -rf "$work"
      if grep -q -E 'Could not transfer|Unknown host|Connect|timed out|Failed to read artifact descriptor' "$log"; then
        fallback "Maven Central could not be reached (mvn log: $log)"
      fi
      fallback "mvn failed (log: $log)"
    fi
  fi
  rm -f "$log"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  cp "$work"/jars/*.jar "$out.tmp/"
  echo "$coords" > "$out.tmp/.pins"
  rm -rf "$work" "$out" && mv "$out.tmp" "$out"
  echo "$name for Spark $spark_line in $out: $(ls "$out" | wc -l) jars" >&2
}

resolve spark-kafka-jars "$connector" only "$venv/spark-kafka-jars"
if [ $broker -eq 1 ]; then
  [ -n "$broker_coord" ] || { echo "ERROR: no Kafka broker pinned in $pins" >&2; exit 1; }
  resolve kafka-broker "$broker_coord" runtime "$venv/kafka-broker"
fi
