"""Job `basket`: silver.order_items -> frequent_itemsets, association_rules, cross_sell, recommendations, reco_quality.

./spark-submit.sh basket --date 2026-06-30 [--conf conf/cluster.yaml] [--master spark://host:7077]
"""

from custseg.cli import job_entry

parse_args, main = job_entry("basket")

if __name__ == "__main__":
    raise SystemExit(main())
