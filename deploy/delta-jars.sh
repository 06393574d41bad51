#!/usr/bin/env bash
# Resolve the JVM Delta Lake jars pinned in deploy/delta-jars.txt for the venv's Spark line
# into <venv>/delta-jars, through Maven (~/.m2 is the cache: after the first resolve this
# works offline). Sessions started by custseg, the tests and spark-submit.sh put that folder
# on the class path; without it they run the delta-rs engine.
#
#   deploy/delta-jars.sh [VENV]      (default .venv)
#
# Exit 0 with one line on stderr when Maven cannot be had or reached (custseg then runs on
# delta-rs), except under CI=true, where a missing jar fails the set-up. A pin that does not
# match the installed delta-spark always fails.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-.venv}"
pins="$here/deploy/delta-jars.txt"
out="$venv/delta-jars"
py="$venv/bin/python"
plugin="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

fallback() {  # one line saying why, then delta-rs (or a failure under CI)
  if [ "${CI:-}" = "true" ]; then
    echo "ERROR: Delta jars not resolved: $1 (CI=true: the spark-delta engine must be tested)" >&2
    exit 1
  fi
  echo "Delta jars not resolved: $1. custseg runs on the delta-rs engine (rerun 'make venv' to retry)." >&2
  exit 0
}

versions=$("$py" -c \
  'import importlib.metadata as m, pyspark; print(".".join(pyspark.__version__.split(".")[:2]), m.version("delta-spark"))')
read -r spark_line delta_pip <<< "$versions"
coords=$(awk -v line="$spark_line" '!/^#/ && $1 == line {print $2}' "$pins")
[ -n "$coords" ] || { echo "ERROR: no Delta jars pinned for Spark $spark_line in $pins" >&2; exit 1; }
pinned=$(echo "$coords" | awk -F: '$2 ~ /^delta-spark/ {print $3}')
if [ "$pinned" != "$delta_pip" ]; then
  echo "ERROR: $pins pins delta-spark jars $pinned for Spark $spark_line, but pip installed delta-spark $delta_pip" >&2
  exit 1
fi

jar_names=$(echo "$coords" | awk -F: '{print $2 "-" $3 ".jar"}')
missing=0
for j in $jar_names; do [ -f "$out/$j" ] || missing=1; done
if [ $missing -eq 0 ]; then exit 0; fi

command -v mvn >/dev/null 2>&1 || fallback "mvn not found (install Maven, e.g. apt-get install maven)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
{
  echo '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
  echo '<groupId>custseg</groupId><artifactId>delta-jars</artifactId><version>0</version><dependencies>'
  echo "$coords" | awk -F: '{printf "<dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version><exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions></dependency>\n", $1, $2, $3}'
  echo '</dependencies></project>'
} > "$work/pom.xml"
# Only the pinned jars, not their dependencies (see deploy/delta-jars.txt): the wildcard
# exclusions keep Maven from even downloading those. Offline first: once ~/.m2 holds the
# jars no network is needed.
args=(-B -q -Dstyle.color=never -f "$work/pom.xml" "$plugin:copy-dependencies" -DexcludeTransitive=true -DoutputDirectory="$work/jars")
log="$venv/delta-jars-mvn.log"
if ! mvn -o "${args[@]}" > "$log" 2>&1; then
  echo "resolving Delta jars for Spark $spark_line from Maven Central: $(echo $jar_names)" >&2
  if ! mvn "${args[@]}" > "$log" 2>&1; then
    if grep -q -E 'Could not transfer|Unknown host|Connect|timed out|Failed to read artifact descriptor' "$log"; then
      fallback "Maven Central could not be reached (mvn log: $log)"
    fi
    fallback "mvn failed (log: $log)"
  fi
fi
rm -f "$log"
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
for j in $jar_names; do cp "$work/jars/$j" "$out.tmp/"; done
rm -rf "$out" && mv "$out.tmp" "$out"
echo "Delta jars for Spark $spark_line in $out: $(cd "$out" && ls *.jar | tr '\n' ' ')" >&2
