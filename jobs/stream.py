"""Job `stream`: landing files (or Kafka) -> quarantine, bronze, silver in micro-batches (docs/realtime.md).

./spark-submit.sh stream [--trigger processing:10s|available-now|once] [--conf conf/cluster.yaml] [--master spark://host:7077]
"""

from custseg.realtime.job import main, parse_args  # noqa: F401 - parse_args for tests and tools

if __name__ == "__main__":
    raise SystemExit(main())
