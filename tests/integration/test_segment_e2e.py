"""The segment stage end to end: tables written, k and personas recovered, ids and names
stable across two snapshots, reruns idempotent; and on generated data with planted personas."""

from __future__ import annotations

import os

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from tests.integration.conftest import run_stages

pytestmark = pytest.mark.slow

PERSONA_COLUMNS = [
    "recency_days",
    "frequency",
    "monetary",
    "tenure_days",
    "avg_basket_value",
    "discount_coef",
    "page_views",
    "orders_last_90",
]
# Planted centres in "sd units" of each column (see _column_units): loyal, bargain, new,
# churning, occasional big spender, browser. discount_coef is paid / list price: low = deep discounts.
PERSONA_CENTRES = [
    [-2.0, 3.0, 3.0, 2.0, 0.0, 1.5, -1.0, 2.0],
    [0.0, 1.0, 0.0, 1.0, -1.5, -4.0, -1.0, 1.0],
    [-1.0, -2.0, -2.0, -4.0, 0.0, 1.0, 3.0, -1.0],
    [4.0, 1.5, 1.5, 2.0, 0.0, 1.0, -2.0, -2.0],
    [2.0, -1.5, 1.5, 2.0, 4.0, 1.5, -2.0, -1.0],
    [3.0, -3.0, -4.0, 0.0, -1.5, 1.0, 3.0, -3.0],
]
PERSONAS = ["loyal", "bargain", "new", "churning", "occasional", "browser"]
# column -> (offset, scale) applied to the blob value; logged columns are expm1'd so the
# stage's log1p brings them back to blobs.
_column_units = {
    "recency_days": (4.0, 0.5),
    "frequency": (1.5, 0.3),
    "monetary": (5.5, 0.4),
    "tenure_days": (6.0, 0.4),
    "avg_basket_value": (4.0, 0.3),
    "discount_coef": (0.9, 0.05),
    "page_views": (2.5, 0.3),
    "orders_last_90": (1.0, 0.2),
}
_logged = {"recency_days", "frequency", "monetary", "tenure_days", "avg_basket_value", "page_views", "orders_last_90"}


def persona_features(
    spark, rows: int, snapshot: str, seed: int, drift: float = 0.0, first_id: int = 0, noise_seed: int | None = None
):
    """gold.customer_features rows for planted personas (truth kept as a column for checks)."""
    from custseg.segment.synthetic import gaussian_blobs

    centres = [[v + drift for v in c] for c in PERSONA_CENTRES]
    blobs = gaussian_blobs(
        spark,
        rows,
        centres,
        sd=0.6,
        seed=seed,
        columns=[f"_{c}" for c in PERSONA_COLUMNS],
        first_id=first_id,
        partitions=2,
        noise_seed=noise_seed,
    )
    cols = []
    for c in PERSONA_COLUMNS:
        off, scale = _column_units[c]
        v = F.lit(off) + F.lit(scale) * F.col(f"_{c}")
        cols.append((F.expm1(v) if c in _logged else v).alias(c))
    persona = F.element_at(F.array(*[F.lit(p) for p in PERSONAS]), F.col("truth") + 1)
    p_alive = F.element_at(F.array(*[F.lit(v) for v in (0.95, 0.8, 0.9, 0.2, 0.6, 0.4)]), F.col("truth") + 1)
    out = blobs.select("customer_key", "truth", *cols, persona.alias("persona"), p_alive.alias("p_alive"))
    z = lambda c, m, s: (F.col(c) - F.lit(m)) / F.lit(s)  # noqa: E731
    return out.select(
        "customer_key",
        F.lit(snapshot).cast("date").alias("snapshot_date"),
        *PERSONA_COLUMNS,
        F.col("recency_days").cast("int").alias("recency_days_int"),
        F.when(F.col("persona") == "loyal", "Champions").otherwise("Other").alias("rfm_segment"),
        "p_alive",
        (F.col("monetary") * F.col("p_alive")).alias("clv"),
        F.when(F.col("persona") == "browser", "app").otherwise("store").alias("preferred_channel"),
        z("tenure_days", 500.0, 300.0).alias("l_z"),
        z("recency_days", 80.0, 80.0).alias("r_z"),
        z("frequency", 4.0, 3.0).alias("f_z"),
        z("monetary", 400.0, 400.0).alias("m_z"),
        ((F.col("discount_coef") - F.lit(0.9)) / F.lit(0.1)).alias("c_z"),
        "persona",
    )


FAST = ["--set", "segment.k_max=8", "--set", "segment.n_init=2", "--set", "segment.max_iter=30"]
# One bootstrap refit (not 2) and 10 iterations: the comparison runs twice here (second run and rerun).
AUTO = [
    "--set",
    "segment.algorithm=auto",
    "--set",
    "segment.comparison.max_iter=10",
    "--set",
    "segment.comparison.bootstrap=1",
]


@pytest.fixture(scope="module")
def two_snapshots(spark, tmp_path_factory):
    """Two weekly snapshots (the second with drift, 10% churned, 10% new) run through the stage."""
    from custseg.storage import StorageSettings, Tables

    home = tmp_path_factory.mktemp("segment")
    os.environ["CUSTSEG_HOME"] = str(home)
    tables = Tables(spark, StorageSettings(root=str(home / "tables")))
    first = persona_features(spark, 1800, "2026-06-23", seed=3)
    second = persona_features(spark, 1800, "2026-06-30", seed=3, drift=0.1, first_id=180, noise_seed=4)
    for df, d in ((first, "2026-06-23"), (second, "2026-06-30")):
        tables.overwrite(
            df.drop("persona"), "gold.customer_features", partition_by=["snapshot_date"], where={"snapshot_date": d}
        )
    truth = first.select("customer_key", "persona").unionByName(second.select("customer_key", "persona")).distinct()
    assert run_stages(spark, home, "2026-06-23", ["segment"], FAST) == 0
    # The second snapshot lets segment.algorithm auto pick by the segmentation comparison.
    assert run_stages(spark, home, "2026-06-30", ["segment"], FAST + AUTO) == 0
    return home, tables, truth


def test_k_and_personas_recovered(two_snapshots):
    from custseg.segment.quality import adjusted_rand_index

    _, tables, truth = two_snapshots
    seg = tables.read("gold.customer_segments").where("snapshot_date = '2026-06-23'")
    quality = tables.read("gold.segment_quality").where("snapshot_date = '2026-06-23'")
    chosen = quality.where("kind = 'k_selection' AND metric = 'chosen' AND value = 1").select("k").first()["k"]
    assert chosen == 6
    assert quality.where("kind = 'k_selection' AND metric = 'silhouette'").count() == 7  # k = 2..8
    ari = adjusted_rand_index(seg.join(truth, "customer_key", how="inner"), "segment_id", "persona")
    assert ari >= 0.8, ari


def test_profiles_named_and_value_classes(two_snapshots):
    _, tables, _ = two_snapshots
    prof = tables.read("gold.segment_profiles").where("snapshot_date = '2026-06-23'")
    rows = {r["segment_id"]: r for r in prof.collect()}
    assert sorted(rows) == [1, 2, 3, 4, 5, 6]
    names = [r["segment_name"] for r in rows.values()]
    assert len(set(names)) == 6
    assert {"High-value loyal", "New", "Bargain hunters", "Occasional big spenders"} <= set(names), names
    assert abs(sum(r["customer_share"] for r in rows.values()) - 1.0) < 1e-9
    assert all(r["value_class"] is not None for r in rows.values())
    assert set(rows[1]["centre_z"]) == set(PERSONA_COLUMNS)


def test_second_snapshot_keeps_ids_and_names(spark, two_snapshots):
    _, tables, _ = two_snapshots
    prof = tables.read("gold.segment_profiles")
    a = {r["segment_id"]: r["segment_name"] for r in prof.where("snapshot_date = '2026-06-23'").collect()}
    b = {
        r["segment_id"]: (r["segment_name"], r["is_new"]) for r in prof.where("snapshot_date = '2026-06-30'").collect()
    }
    assert {sid: name for sid, (name, _) in b.items()} == a
    assert not any(new for _, new in b.values())
    q = tables.read("gold.segment_quality").where("snapshot_date = '2026-06-30' AND kind = 'overall'")
    metrics = {r["metric"]: r["value"] for r in q.collect()}
    assert metrics["ari_previous"] >= 0.9
    assert metrics["customers_in_both"] == 1800 - 180
    mig = tables.read("gold.segment_migration").where("snapshot_date = '2026-06-30'")
    totals = (
        mig.groupBy()
        .agg(
            F.sum(F.when(F.col("from_segment_id").isNull(), F.col("customers"))).alias("arrived"),
            F.sum(F.when(F.col("to_segment_id").isNull(), F.col("customers"))).alias("left"),
            F.sum(F.when(F.col("from_segment_id") == F.col("to_segment_id"), F.col("customers"))).alias("stayed"),
        )
        .first()
    )
    assert (totals["arrived"], totals["left"]) == (180, 180)
    assert totals["stayed"] >= 0.95 * (1800 - 180)


def test_auto_uses_the_algorithm_the_comparison_recommends(two_snapshots):
    from custseg.segment.comparison import COMPARISON_SCHEMA

    _, tables, _ = two_snapshots
    assert not tables.exists("gold.segmentation_comparison") or (
        tables.read("gold.segmentation_comparison").where("snapshot_date = '2026-06-23'").count() == 0
    )  # off by default: the first run wrote none
    comp = tables.read("gold.segmentation_comparison").where("snapshot_date = '2026-06-30'")
    assert comp.columns == [f.name for f in COMPARISON_SCHEMA.fields]
    rows = {r["candidate"]: r for r in comp.collect()}
    assert set(rows) == {"rfm_cells", "kmeans", "bisecting", "gmm"}
    assert all(r["k"] == 6 for n, r in rows.items() if n != "rfm_cells")
    picked = [n for n, r in rows.items() if r["recommended"]]
    assert len(picked) == 1 and rows[picked[0]]["used"]
    algo = tables.read("gold.segment_profiles").where("snapshot_date = '2026-06-30'").select("algorithm").first()[0]
    assert algo == picked[0]
    # six well-apart personas: whichever clustering wins recovers them and is stable over the week
    assert rows[algo]["ari_previous"] >= 0.9 and rows[algo]["customers_in_both"] > 0
    assert rows[algo]["surrogate_fidelity"] > rows["rfm_cells"]["surrogate_fidelity"] - 0.2
    assert rows[algo]["effectiveness_basis"] == "value:monetary"  # no campaign responses in this test


def test_rerun_same_date_is_idempotent(spark, two_snapshots):
    home, tables, _ = two_snapshots
    before = tables.read("gold.customer_segments").where("snapshot_date = '2026-06-30'").persist()
    before.count()
    version = tables.version("gold.customer_segments")
    assert run_stages(spark, home, "2026-06-30", ["segment"], FAST + AUTO) == 0
    assert tables.version("gold.customer_segments") > version
    after = tables.read("gold.customer_segments").where("snapshot_date = '2026-06-30'")
    assert_df_equality(after, before, ignore_row_order=True)
    assert tables.read("gold.segment_profiles").where("snapshot_date = '2026-06-30'").count() == 6
