"""Job `ingest`: landing/<source>/<date>/ -> bronze.<source> and bronze.quarantine.

    ./spark-submit.sh ingest --date 2026-06-30 [--conf conf/cluster.yaml] [spark args]
"""

import sys

from custseg.cli import job_main, parse_job_args

STAGE = "ingest"


def parse_args(argv=None):
    return parse_job_args(STAGE, argv)


def main(argv=None) -> int:
    return job_main(STAGE, argv)


if __name__ == "__main__":
    sys.exit(main())
