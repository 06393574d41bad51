"""Job `marketing`: features + segments + cross-sell -> campaign_audiences, campaign_plan, campaign_results, exports.

./spark-submit.sh marketing --date 2026-06-30 [--conf conf/cluster.yaml] [--master spark://host:7077]
"""

from custseg.cli import job_entry

parse_args, main = job_entry("marketing")

if __name__ == "__main__":
    raise SystemExit(main())
