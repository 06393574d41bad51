"""Job `maintain`: OPTIMIZE (compaction) and VACUUM of every table; not part of the pipeline.

./spark-submit.sh maintain --date 2026-06-30 [--conf conf/cluster.yaml] [--set maintenance.vacuum_retention_hours=336]
"""

from custseg.cli import job_entry

parse_args, main = job_entry("maintain")

if __name__ == "__main__":
    raise SystemExit(main())
