#!/usr/bin/env bash
# Pack lib/ and submit a job:
#   ./spark-submit.sh <job> [--conf F] [--date D] [--set k=v] [--venv ARCHIVE] [--delta] [spark-submit options] [-- spark-submit args]
#
# --conf FILE (or --job-conf FILE) names the job's config; --conf key=value (a Spark property:
#   key without a slash, not an existing file) and --spark-conf key=value go to spark-submit.
# --venv ARCHIVE ships a packed environment (deploy/package.sh --venv) with --archives; executors
#   (and a cluster-mode driver) run ./environment/bin/python from it, not the submit host's path.
# --delta makes JVM Delta Lake required: the Delta jars pinned in deploy/delta-jars.txt for the
#   Spark line of the spark-submit used (the resolved .venv/delta-jars when they are those, else
#   --packages of the same coordinates), Delta's SQL extension and catalog, and the job runs with
#   storage.engine=spark-delta (fails at start rather than falling back to delta-rs).
#   Without --delta the resolved jars go along when they fit that Spark line; without them tables
#   use the delta-rs engine. CUSTSEG_DELTA_JARS=DIR ships another folder's jars; =none ships none
#   (a cluster whose Spark has Delta: --delta then adds only the settings).
# spark-submit's own options (--master, --deploy-mode, --jars, --files, ...) may stand anywhere;
# --jars/--packages/--files/--py-files/--archives are merged with what this script ships.
#   ./spark-submit.sh pipeline --date 2026-06-30 --conf conf/cluster.yaml --master spark://host:7077 --venv dist/custseg-venv.tar.gz --delta
# Uses $SPARK_HOME/bin/spark-submit when set, else the one from the project's venv.
# Secrets never go in the arguments (`ps` shows them to every user): the PII salt comes from
# CUSTSEG_PII_SALT in the environment; executors that need it (pii.key_delivery: worker_env)
# get spark.executorEnv.CUSTSEG_PII_SALT from a --properties-file, masked by the redaction regex.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
usage="usage: ./spark-submit.sh <job> [--conf F] [--date D] [--venv ARCHIVE] [--delta] [spark-submit args]"
job="${1:?$usage}"; shift
job_file="$here/jobs/$job.py"
[ -f "$job_file" ] || { echo "no such job: $job (jobs/: $(cd "$here/jobs" && ls *.py | sed 's/\.py$//' | tr '\n' ' '))" >&2; exit 2; }

spark_args=(); job_args=(); venv_archive=""; delta=auto; spark_only=0
jars=""; packages=""; files=""; py_files=""; archives=""
join() { if [ -n "$1" ]; then echo "$1,$2"; else echo "$2"; fi; }  # comma lists spark-submit takes
is_spark_property() { [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_.-]*= ]] && [ ! -f "$1" ]; }
conf_arg() {  # --conf VALUE: spark-submit's own setting, or the job's config file
  if [ "$spark_only" -eq 1 ] || is_spark_property "$1"; then spark_args+=(--conf "$1"); else job_args+=(--conf "$1"); fi
}
while [ $# -gt 0 ]; do
  opt="$1"
  case "$opt" in
    --master|--deploy-mode|--driver-memory|--driver-cores|--driver-java-options|--driver-library-path|--driver-class-path|\
    --executor-memory|--executor-cores|--num-executors|--total-executor-cores|--name|--queue|--repositories|\
    --exclude-packages|--properties-file|--proxy-user|--principal|--keytab|\
    --jars|--packages|--files|--py-files|--archives|--spark-conf|--conf|--job-conf|--venv)
      [ $# -ge 2 ] || { echo "$opt needs a value ($usage)" >&2; exit 2; } ;;
  esac
  case "$opt" in
    --) spark_only=1; shift ;;
    --master|--deploy-mode|--driver-memory|--driver-cores|--driver-java-options|--driver-library-path|--driver-class-path|\
    --executor-memory|--executor-cores|--num-executors|--total-executor-cores|--name|--queue|--repositories|\
    --exclude-packages|--properties-file|--proxy-user|--principal|--keytab)
      spark_args+=("$opt" "$2"); shift 2 ;;
    # spark-submit keeps only the last of each of these: merged with what this script ships
    --jars) jars=$(join "$jars" "$2"); shift 2 ;;
    --packages) packages=$(join "$packages" "$2"); shift 2 ;;
    --files) files=$(join "$files" "$2"); shift 2 ;;
    --py-files) py_files=$(join "$py_files" "$2"); shift 2 ;;
    --archives) archives=$(join "$archives" "$2"); shift 2 ;;
    --spark-conf) spark_args+=(--conf "$2"); shift 2 ;;
    --conf) conf_arg "$2"; shift 2 ;;
    --conf=*) conf_arg "${opt#--conf=}"; shift ;;
    --job-conf) job_args+=(--conf "$2"); shift 2 ;;
    --venv) venv_archive="$2"; shift 2 ;;
    --delta) delta=required; shift ;;
    *) if [ "$spark_only" -eq 1 ]; then spark_args+=("$opt"); else job_args+=("$opt"); fi; shift ;;
  esac
done

dist="$here/dist"; mkdir -p "$dist"
zip_file="$dist/custseg-lib.zip"
# Rebuild the zip only when lib/ changed, so repeated submits are quick.
if [ ! -f "$zip_file" ] || [ -n "$(find -L "$here/lib/custseg" -newer "$zip_file" \( -name '*.py' -o -name '*.yaml' \) -print -quit)" ]; then
  rm -f "$zip_file"
  (cd "$here/lib" && python3 - "$zip_file" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    # followlinks: custseg/conf links to conf/ in a checkout; the default configs ship in the zip
    # (custseg.config.packaged_conf_dir reads them with importlib.resources).
    for root, dirs, files in os.walk("custseg", followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.endswith(".egg-info"))
        for f in sorted(files):
            if f.endswith((".py", ".yaml", ".json")):
                z.write(os.path.join(root, f))
PY
  )
fi

submit="${SPARK_HOME:+$SPARK_HOME/bin/spark-submit}"
[ -n "$submit" ] || submit="$here/.venv/bin/spark-submit"
[ -x "$submit" ] || submit="$(command -v spark-submit || true)"
[ -n "$submit" ] || { echo "spark-submit not found: set SPARK_HOME or run 'make venv'" >&2; exit 2; }

# The Spark line (major.minor) of that spark-submit, from its spark-core jar: the Delta jars must
# be the ones built for it.
spark_jars="${SPARK_HOME:+$SPARK_HOME/jars}"
if [ -z "$spark_jars" ]; then
  spark_jars="$(cd "$(dirname "$(readlink -f "$submit")")/.." && pwd)/jars"
  [ -d "$spark_jars" ] || spark_jars="$(ls -d "$here"/.venv/lib/python3*/site-packages/pyspark/jars 2>/dev/null | head -1)"
fi
spark_core="$(ls "$spark_jars"/spark-core_*.jar 2>/dev/null | head -1 || true)"
spark_line=""
[[ "$(basename "${spark_core:-x}")" =~ ^spark-core_[0-9.]+-([0-9]+\.[0-9]+)\. ]] && spark_line="${BASH_REMATCH[1]}"

# JVM Delta Lake (see the header): jars or packages, then Delta's SQL settings.
delta_pins="$here/deploy/delta-jars.txt"
coords=""
[ -z "$spark_line" ] || coords=$(awk -v line="$spark_line" '!/^#/ && $1 == line {print $2}' "$delta_pins" | paste -sd, -)
delta_jars=""; delta_packages=""; delta_why=""
case "${CUSTSEG_DELTA_JARS:-}" in
  none) ;;
  "")
    venv_jars="$here/.venv/delta-jars"
    wanted=$(echo "$coords" | tr ',' '\n' | awk -F: 'NF == 3 {print $2 "-" $3 ".jar"}')
    fits=0
    if [ -n "$wanted" ]; then
      fits=1
      for j in $wanted; do [ -f "$venv_jars/$j" ] || fits=0; done
    fi
    if [ "$fits" -eq 1 ]; then
      delta_jars=$(for j in $wanted; do printf '%s\n' "$venv_jars/$j"; done | paste -sd, -)
    elif [ "$delta" = required ] && [ -n "$coords" ]; then
      delta_packages="$coords"  # spark-submit resolves them (Maven Central, or --repositories)
    elif [ -z "$spark_line" ]; then
      delta_why="cannot tell the Spark version of $submit (no spark-core jar in ${spark_jars:-its jars folder})"
    elif [ -z "$coords" ]; then
      delta_why="deploy/delta-jars.txt pins no Delta jars for Spark $spark_line"
    else
      delta_why="no Delta jars for Spark $spark_line in $venv_jars (make venv resolves them; --delta fetches them with --packages)"
    fi ;;
  *)
    delta_jars=$(ls "$CUSTSEG_DELTA_JARS"/*.jar 2>/dev/null | paste -sd, - || true)
    [ -n "$delta_jars" ] || delta_why="no jars in CUSTSEG_DELTA_JARS=$CUSTSEG_DELTA_JARS" ;;
esac
if [ -n "$delta_why" ]; then
  if [ "$delta" = required ]; then
    echo "--delta: $delta_why" >&2; exit 2
  fi
  echo "$delta_why: tables use the delta-rs engine" >&2
fi
if [ -n "$delta_jars$delta_packages" ] || [ "$delta" = required ]; then
  jars=$(join "$jars" "$delta_jars"); jars="${jars%,}"
  packages=$(join "$packages" "$delta_packages"); packages="${packages%,}"
  spark_args+=(--conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension
    --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog)
fi
# Required means required: the job fails at start when the session has no JVM Delta, instead
# of writing with delta-rs (a later --set storage.engine=... still wins).
[ "$delta" != required ] || job_args=(--set storage.engine=spark-delta "${job_args[@]+"${job_args[@]}"}")

# Spark's Kafka connector (deploy/kafka-jars.txt) goes along with the stream job: the resolved
# .venv/spark-kafka-jars when they are the ones pinned for this Spark line. CUSTSEG_KAFKA_JARS=DIR
# ships another folder's jars; =none ships none (a cluster whose Spark has it, as Databricks').
if [ "$job" = stream ]; then
  case "${CUSTSEG_KAFKA_JARS:-}" in
    none) ;;
    "")
      kafka_dir="$here/.venv/spark-kafka-jars"
      wanted=""
      [ -z "$spark_line" ] || wanted=$(awk -v line="$spark_line" \
        '!/^#/ && $1 == line && $2 == "connector" {split($3, c, ":"); print c[2] "-" c[3] ".jar"}' "$here/deploy/kafka-jars.txt")
      fits=0
      if [ -n "$wanted" ]; then
        fits=1
        for j in $wanted; do [ -f "$kafka_dir/$j" ] || fits=0; done
      fi
      if [ "$fits" -eq 1 ]; then
        jars=$(join "$jars" "$(for j in $wanted; do printf '%s\n' "$kafka_dir/$j"; done | paste -sd, -)")
      else
        echo "no Spark Kafka connector for Spark ${spark_line:-(unknown)} in $kafka_dir (make venv resolves it): a stream from Kafka needs it on the cluster (--packages org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version>, or CUSTSEG_KAFKA_JARS=DIR)" >&2
      fi ;;
    *)
      kafka_jars=$(ls "$CUSTSEG_KAFKA_JARS"/*.jar 2>/dev/null | paste -sd, - || true)
      [ -n "$kafka_jars" ] || { echo "no jars in CUSTSEG_KAFKA_JARS=$CUSTSEG_KAFKA_JARS" >&2; exit 2; }
      jars=$(join "$jars" "$kafka_jars") ;;
  esac
fi

# conf/ travels with the job (cluster deploy mode reads it from the working directory).
files=$(join "$files" "$(ls "$here"/conf/*.yaml | paste -sd, -)")
py_files=$(join "$py_files" "$zip_file")
# The driver's Python: PYSPARK_DRIVER_PYTHON, else PYSPARK_PYTHON, else the project's venv.
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$here/.venv/bin/python}"
if [ -n "$venv_archive" ]; then
  [ -f "$venv_archive" ] || [[ "$venv_archive" == *://* ]] || { echo "--venv: no such archive: $venv_archive" >&2; exit 2; }
  # Spark unpacks the archive as ./environment in every executor's (and a cluster-mode driver's)
  # working folder; a client-mode driver keeps the local Python.
  archives=$(join "$archives" "$venv_archive#environment")
  spark_args+=(--conf spark.pyspark.python=./environment/bin/python)
  deploy_mode=client
  for ((i = 0; i < ${#spark_args[@]}; i++)); do
    [ "${spark_args[$i]}" = "--deploy-mode" ] && deploy_mode="${spark_args[$((i + 1))]}"
  done
  [ "$deploy_mode" = cluster ] || spark_args+=(--conf "spark.pyspark.driver.python=${PYSPARK_DRIVER_PYTHON:-$PYSPARK_PYTHON}")
  unset PYSPARK_PYTHON PYSPARK_DRIVER_PYTHON  # the spark.pyspark.* settings decide
fi
export PYTHONPATH="$here/lib${PYTHONPATH:+:$PYTHONPATH}"
has_master=0
for a in "${spark_args[@]+"${spark_args[@]}"}"; do [ "$a" = "--master" ] && has_master=1; done
[ $has_master -eq 1 ] || spark_args+=(--master "${SPARK_MASTER:-local[2]}")
[ -z "$jars" ] || spark_args+=(--jars "$jars")
[ -z "$packages" ] || spark_args+=(--packages "$packages")
[ -z "$archives" ] || spark_args+=(--archives "$archives")

exec "$submit" \
  --name "custseg-$job" \
  --py-files "$py_files" \
  --files "$files" \
  --conf spark.sql.session.timeZone=UTC \
  --conf 'spark.redaction.regex=(?i)secret|password|token|access[.]?key|salt|credential|api[._-]?key|fs\.azure\.account\.key|fs\.s3a\.[a-z0-9.]*key' \
  "${spark_args[@]}" \
  "$job_file" "${job_args[@]+"${job_args[@]}"}"
