#!/usr/bin/env bash
# Build the EMR artefacts and optionally upload them:
#   deploy/emr/package.sh [--venv] [--upload s3://my-bucket/custseg]
# builds dist/custseg-lib.zip (spark-submit --py-files) and, with --venv, dist/custseg-venv.tar.gz
# (spark.archives; build it on Amazon Linux 2023 with the cluster's Python, see BOOTSTRAP.md);
# --upload copies them with jobs/*.py, conf/*.yaml and bootstrap-deps.sh to the prefix the steps use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"; root="$(cd "$here/../.." && pwd)"
dist="${DIST_DIR:-$root/dist}"
venv=(); prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) venv=(--venv); shift ;;
    --upload) prefix="${2:?--upload needs an s3:// prefix}"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
DIST_DIR="$dist" "$root/deploy/package.sh" --no-wheel "${venv[@]+"${venv[@]}"}"
if [ -n "$prefix" ]; then
  prefix="${prefix%/}"
  aws s3 cp "$dist/custseg-lib.zip" "$prefix/custseg-lib.zip"
  [ ${#venv[@]} -eq 0 ] || aws s3 cp "$dist/custseg-venv.tar.gz" "$prefix/custseg-venv.tar.gz"
  aws s3 cp --recursive --exclude "*" --include "*.py" "$root/jobs" "$prefix/jobs"
  aws s3 cp --recursive --exclude "*" --include "*.yaml" "$root/conf" "$prefix/conf"
  aws s3 cp "$here/bootstrap-deps.sh" "$prefix/bootstrap-deps.sh"
fi
