"""Job `stream_export`: hours of gold.realtime_offers -> activation files (docs/realtime.md).

./spark-submit.sh stream_export --hour 2026-12-07T14 [--conf conf/cluster.yaml] [--master spark://host:7077]
"""

from custseg.realtime.export_job import main, parse_args  # noqa: F401 - parse_args for tests and tools

if __name__ == "__main__":
    raise SystemExit(main())
