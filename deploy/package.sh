#!/usr/bin/env bash
# Build what clusters run (`make dist` calls this):
#   dist/custseg-lib.zip          the custseg package for spark-submit --py-files (EMR, standalone, YARN)
#   dist/custseg-<ver>-*.whl      the wheel with the custseg-<stage> console scripts (Databricks python_wheel_task, pip)
#   dist/custseg-venv.tar.gz      with --venv: a venv-pack archive of custseg and its Python dependencies,
#                                 without pyspark (the cluster's Spark provides it), for spark.archives
#
# usage: deploy/package.sh [--no-wheel] [--venv]      (DIST_DIR overrides dist/, PYTHON the interpreter)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dist="${DIST_DIR:-$root/dist}"
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
wheel=1; venv=0
for arg in "$@"; do
  case "$arg" in
    --no-wheel) wheel=0 ;;
    --venv) venv=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg (try --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$dist"

# 1. zip: every module of lib/custseg, sorted, with fixed timestamps so an unchanged tree gives
#    the same bytes (and the same checksum on S3).
"$py" - "$root/lib" "$dist/custseg-lib.zip" <<'PY'
import os, sys, zipfile
lib, out = sys.argv[1], sys.argv[2]
tmp = out + ".tmp"
files = []
for folder, dirs, names in os.walk(os.path.join(lib, "custseg"), followlinks=True):  # custseg/conf links to conf/
    dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.endswith(".egg-info"))
    files += [os.path.join(folder, n) for n in names if n.endswith((".py", ".yaml", ".json"))]
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    for path in sorted(files):
        info = zipfile.ZipInfo(os.path.relpath(path, lib), date_time=(2000, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as fh:
            z.writestr(info, fh.read())
os.replace(tmp, out)
print(f"{out}: {len(files)} files")
PY

# 2. wheel (pip builds it in an isolated environment with the build backend of pyproject.toml)
if [ "$wheel" -eq 1 ]; then
  rm -f "$dist"/custseg-*.whl
  "$py" -m pip wheel --quiet --no-deps --wheel-dir "$dist" "$root"
  ls "$dist"/custseg-*.whl
fi

# 3. packed venv for clusters that need our Python dependencies (spark-submit.sh --venv; EMR:
#    spark.archives=...#environment). Build it on the cluster's OS, CPU architecture and Python
#    version (e.g. in an amazonlinux:2023 container); VENV_PYTHON_PREFIX is where that Python
#    lives on the nodes (default /usr: bin/python links to /usr/bin/python3.X there).
#    No pyspark: the cluster's Spark brings it (its workers put $SPARK_HOME/python/lib/pyspark.zip
#    on the Python path), and a second copy would shadow the runtime's. With uv (make venv
#    installs it into .venv) the packages come from uv's cache: seconds instead of downloads.
if [ "$venv" -eq 1 ]; then
  build="$(mktemp -d)"
  trap 'rm -rf "$build"' EXIT
  "$py" -m venv --without-pip "$build/venv"
  uv="${UV:-$(dirname "$py")/uv}"
  [ -x "$uv" ] || uv="$(command -v uv || true)"
  install() {
    if [ -n "$uv" ]; then
      "$uv" pip install --quiet --python "$build/venv/bin/python" "$@"
    else
      "$py" -m pip --python "$build/venv/bin/python" install --quiet "$@"
    fi
  }
  # The project's dependencies and the report's (matplotlib), except pyspark and delta-spark:
  # the cluster ships Spark and Delta.
  "$py" - "$root/pyproject.toml" > "$build/requirements.txt" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
deps = project["dependencies"] + project["optional-dependencies"]["report"]
print("\n".join(d for d in deps if not d.replace("_", "-").lower().startswith(("pyspark", "delta-spark"))))
PY
  install -c "$root/constraints.txt" -r "$build/requirements.txt" venv-pack==0.2.0
  # delta-spark's Python API (delta.tables) matching the cluster's Delta, without its pyspark pin.
  install --no-deps "delta-spark==${DELTA_SPARK_VERSION:-4.0.0}" "$root"
  # venv-pack 0.2.0 rewrites a link to <base>/bin/python into <prefix>/bin/python3.X by string
  # replacement, so today's venv link <base>/bin/python3.X became <prefix>/bin/python3.X3.X, a
  # link to nothing ("Cannot run program ./environment/bin/python" on every executor). Point the
  # venv's absolute links at <base>/bin/python first (they are not run again here).
  for link in "$build/venv/bin"/python*; do
    target="$(readlink "$link" || true)"
    [[ "$target" != /* ]] || ln -sfn "$(dirname "$target")/python" "$link"
  done
  "$build/venv/bin/venv-pack" --quiet --python-prefix "${VENV_PYTHON_PREFIX:-/usr}" -p "$build/venv" \
    -o "$dist/custseg-venv.tar.gz" -f
  ls -l "$dist/custseg-venv.tar.gz"
fi
