#!/usr/bin/env bash
# Pack lib/ and submit a job:
#   ./spark-submit.sh <job> [--conf F] [--date D] [--set k=v] [-- spark-submit args]
# --conf FILE names the job's config; --conf key=value is passed to spark-submit (as --spark-conf).
# --venv ARCHIVE ships a packed venv (deploy/package.sh --venv) that executors run their Python from.
# Spark args may also come before the job args when they start with --master/--deploy-mode/...:
#   ./spark-submit.sh pipeline --date 2026-06-30 --master spark://host:7077
# Uses $SPARK_HOME/bin/spark-submit when set, else the one from the project's venv.
# Secrets never go in the arguments (`ps` shows them to every user): the PII salt comes from
# CUSTSEG_PII_SALT in the environment; executors that need it (pii.key_delivery: worker_env)
# get spark.executorEnv.CUSTSEG_PII_SALT from a --properties-file, masked by the redaction regex.
# JVM Delta Lake: the jars `make venv` resolved (.venv/delta-jars, pinned in
# deploy/delta-jars.txt) go with --jars, so driver and executors load them, unless
# CUSTSEG_DELTA_JARS names another folder or "none" (a cluster whose Spark has Delta).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
job="${1:?usage: ./spark-submit.sh <job> [--conf F] [--date D] [spark-submit args]}"; shift
job_file="$here/jobs/$job.py"
[ -f "$job_file" ] || { echo "no such job: $job (jobs/: $(cd "$here/jobs" && ls *.py | sed 's/\.py$//' | tr '\n' ' '))" >&2; exit 2; }

spark_args=(); job_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; spark_args+=("$@"); break ;;
    --master|--deploy-mode|--driver-memory|--executor-memory|--executor-cores|--num-executors|--total-executor-cores|--name|--queue|--packages|--jars|--repositories|--properties-file)
      spark_args+=("$1" "$2"); shift 2 ;;
    --spark-conf) spark_args+=(--conf "$2"); shift 2 ;;
    # --conf k=v is spark-submit's own setting; --conf FILE (or --job-conf FILE) the job's config file
    --conf) if [[ "$2" == *=* && ! -f "$2" ]]; then spark_args+=(--conf "$2"); else job_args+=(--conf "$2"); fi; shift 2 ;;
    --job-conf) job_args+=(--conf "$2"); shift 2 ;;
    # a packed venv (deploy/package.sh --venv): executors run its Python, not the submit host's path
    --venv) venv_archive="$2"; shift 2 ;;
    *) job_args+=("$1"); shift ;;
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

# conf/ travels with the job (cluster deploy mode reads it from the working directory).
files=$(ls "$here"/conf/*.yaml | tr '\n' ',' | sed 's/,$//')
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$here/.venv/bin/python}"
if [ -n "${venv_archive:-}" ]; then
  [ -f "$venv_archive" ] || [[ "$venv_archive" == *://* ]] || { echo "--venv: no such archive: $venv_archive" >&2; exit 2; }
  # Spark unpacks the archive as ./environment in every executor's (and a cluster-mode driver's)
  # working folder; a client-mode driver keeps the local Python.
  spark_args+=(--archives "$venv_archive#environment" --conf spark.pyspark.python=./environment/bin/python)
  deploy_mode=client
  for ((i = 0; i < ${#spark_args[@]}; i++)); do
    [ "${spark_args[$i]}" = "--deploy-mode" ] && deploy_mode="${spark_args[$((i + 1))]}"
  done
  [ "$deploy_mode" = cluster ] || spark_args+=(--conf "spark.pyspark.driver.python=$PYSPARK_PYTHON")
  unset PYSPARK_PYTHON  # spark.pyspark.python decides; the env var would override it
fi
export PYTHONPATH="$here/lib${PYTHONPATH:+:$PYTHONPATH}"
has_master=0
for a in "${spark_args[@]+"${spark_args[@]}"}"; do [ "$a" = "--master" ] && has_master=1; done
[ $has_master -eq 1 ] || spark_args+=(--master "${SPARK_MASTER:-local[2]}")

delta_dir="${CUSTSEG_DELTA_JARS:-$here/.venv/delta-jars}"
if [ "$delta_dir" != "none" ] && ls "$delta_dir"/*.jar >/dev/null 2>&1; then
  jars=$(ls "$delta_dir"/*.jar | tr '\n' ',' | sed 's/,$//')
  spark_args+=(--jars "$jars"
    --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension
    --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog)
elif [ "$delta_dir" != "none" ]; then
  echo "no JVM Delta jars in $delta_dir (make venv resolves them): tables use the delta-rs engine" >&2
fi

exec "$submit" \
  --name "custseg-$job" \
  --py-files "$zip_file" \
  --files "$files" \
  --conf spark.sql.session.timeZone=UTC \
  --conf 'spark.redaction.regex=(?i)secret|password|token|access[.]?key|salt|credential|api[._-]?key|fs\.azure\.account\.key|fs\.s3a\.[a-z0-9.]*key' \
  --conf "spark.executorEnv.PYTHONPATH=$zip_file" \
  "${spark_args[@]}" \
  "$job_file" "${job_args[@]}"
