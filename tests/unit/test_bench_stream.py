"""bench.stream_latency's parsing: the rates to run, and when each micro-batch's offers became readable."""

from __future__ import annotations

import json

import pandas as pd
from bench.stream_latency import offer_commits, rates


def test_rates_with_and_without_their_own_seconds():
    assert rates("500:120, 5000", 60) == [(500.0, 120.0), (5000.0, 60.0)]


def test_offer_commits_come_from_the_write_id_and_the_commit_timestamp(tmp_path):
    log = tmp_path / "_delta_log"
    log.mkdir()

    def commit(version: int, actions: list[dict]) -> None:
        (log / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")

    commit(0, [{"commitInfo": {"timestamp": 1_000}}, {"metaData": {}}])  # the table's creation: no write id
    commit(
        1,
        [
            {"commitInfo": {"timestamp": 2_500}},
            {"txn": {"appId": "custseg/stream/ingest/gold.realtime_offers", "version": 7}},
        ],
    )
    commit(
        2,
        [
            {"txn": {"appId": "custseg/stream/sessions/gold.realtime_offers", "version": 3}},
            {"commitInfo": {"timestamp": 4_000}},
        ],
    )
    commit(
        3,
        [
            {"commitInfo": {"timestamp": 5_000}},
            {"txn": {"appId": "custseg/stream/ingest/bronze.events_rt", "version": 8}},
        ],
    )
    got = offer_commits(tmp_path)
    assert list(zip(got["query"], got["batch_id"], got["committed_at"], strict=True)) == [
        ("ingest", 7, pd.Timestamp(2_500, unit="ms")),
        ("sessions", 3, pd.Timestamp(4_000, unit="ms")),
    ]
