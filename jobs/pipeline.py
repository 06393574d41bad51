"""Job `pipeline`: every stage in order for one date.

./spark-submit.sh pipeline --date 2026-06-30 [--conf conf/cluster.yaml] [--master spark://host:7077]
"""

from custseg.cli import job_entry

parse_args, main = job_entry("pipeline")

if __name__ == "__main__":
    raise SystemExit(main())
