"""Job `segment`: gold.customer_features -> customer_segments, segment_profiles, segment_quality, segment_migration.

./spark-submit.sh segment --date 2026-06-30 [--conf conf/cluster.yaml] [--master spark://host:7077]
"""

from custseg.cli import job_entry

parse_args, main = job_entry("segment")

if __name__ == "__main__":
    raise SystemExit(main())
