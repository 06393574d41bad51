"""Job `ingest`: landing/<source>/<date>/ -> bronze.<source> and bronze.quarantine.

./spark-submit.sh ingest --date 2026-06-30 [--conf conf/cluster.yaml] [--master spark://host:7077]
"""

from custseg.cli import job_entry

parse_args, main = job_entry("ingest")

if __name__ == "__main__":
    raise SystemExit(main())
