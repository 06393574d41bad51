#!/usr/bin/env bash
# Add the custseg steps for one batch date to a running EMR cluster.
#   deploy/emr/add-steps.sh <cluster-id> <s3-prefix> <YYYY-MM-DD> [steps.json|steps-venv.json]
# e.g. deploy/emr/add-steps.sh j-2AXXXXXXGAPLF s3://my-bucket/custseg 2026-06-30
# The prefix must hold what deploy/emr/package.sh --upload put there (zip, jobs/, conf/, venv).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cluster="${1:?cluster id}"; prefix="${2:?s3 prefix, e.g. s3://my-bucket/custseg}"; run_date="${3:?batch date YYYY-MM-DD}"
steps="${4:-$here/steps.json}"
[[ "$run_date" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || { echo "date must be YYYY-MM-DD: $run_date" >&2; exit 2; }
out="$(mktemp)"; trap 'rm -f "$out"' EXIT
sed -e "s|\${S3_PREFIX}|${prefix%/}|g" -e "s|\${RUN_DATE}|$run_date|g" "$steps" > "$out"
aws emr add-steps --cluster-id "$cluster" --steps "file://$out"
