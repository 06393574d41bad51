"""Job `features`: silver -> gold.customer_features (RFM, LRFMC, behaviour, churn, CLV) for the snapshot date.

./spark-submit.sh features --date 2026-06-30 [--conf conf/cluster.yaml] [--master spark://host:7077]
"""

from custseg.cli import job_entry

parse_args, main = job_entry("features")

if __name__ == "__main__":
    raise SystemExit(main())
