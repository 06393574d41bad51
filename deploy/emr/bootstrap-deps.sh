#!/usr/bin/env bash
# EMR bootstrap action (runs on every node before Spark starts) for the zip variant (steps.json):
# installs custseg's Python dependencies, except pyspark, into the cluster's python3.
# Pins are the lock's (constraints.txt) for pyproject's core dependencies and the report's; delta-spark's Python API matches the cluster's Delta (emr-spark-8.0.0: 4.0.0).
set -euo pipefail
sudo python3 -m pip install --quiet \
  "pyyaml==6.0.3" "pyarrow==22.0.0" "pandas==2.3.3" "numpy==2.4.6" "scipy==1.17.1" "deltalake==1.6.6" \
  "matplotlib==3.11.2"  # the report stage draws its plots with matplotlib
sudo python3 -m pip install --quiet --no-deps "delta-spark==${DELTA_SPARK_VERSION:-4.0.0}"
