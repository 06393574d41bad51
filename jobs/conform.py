"""Job `conform`: bronze -> silver (customers, products, orders, order_items).

    ./spark-submit.sh conform --date 2026-06-30 [--conf conf/cluster.yaml] [spark args]
"""

import sys

from custseg.cli import job_main, parse_job_args

STAGE = "conform"


def parse_args(argv=None):
    return parse_job_args(STAGE, argv)


def main(argv=None) -> int:
    return job_main(STAGE, argv)


if __name__ == "__main__":
    sys.exit(main())
