"""Job `report`: gold tables -> one self-contained HTML report per snapshot.

./spark-submit.sh report --date 2026-06-30 [--conf conf/cluster.yaml] [--master spark://host:7077]
"""

from custseg.cli import job_entry

parse_args, main = job_entry("report")

if __name__ == "__main__":
    raise SystemExit(main())
