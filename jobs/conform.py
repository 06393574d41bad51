"""Job `conform`: bronze -> silver (customers, products, orders, order_items, events, feedback, social, campaign_responses, identity_map).

./spark-submit.sh conform --date 2026-06-30 [--conf conf/cluster.yaml] [--master spark://host:7077]
"""

from custseg.cli import job_entry

parse_args, main = job_entry("conform")

if __name__ == "__main__":
    raise SystemExit(main())
