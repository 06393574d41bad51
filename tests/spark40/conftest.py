"""Tests of the Spark 4.0 line, run by `make test-spark40` in .venv-spark40 (pyspark 4.0.x and
its delta-spark, deploy/spark-4.0.txt). On the Spark 4.2 line the shared end-to-end run
covers the same ground, so there they are not collected."""

import pyspark

collect_ignore_glob = [] if pyspark.__version__.startswith("4.0.") else ["test_*.py"]
