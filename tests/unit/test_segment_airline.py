"""Acceptance on the airline LRFMC matrix (../shared/datasets/airline_scale.npz, 62,043
members, already z-scored): KMeans k=5 inertia within 1% of scikit-learn's (n_init=10),
and the five value classes assigned. Skipped without ../shared."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_airline_kmeans_matches_sklearn_and_assigns_five_value_classes(spark, shared_datasets):
    import pandas as pd
    from sklearn.cluster import KMeans

    from custseg.segment.kmeans import fit_segments
    from custseg.segment.profile import value_class_of

    x = np.load(shared_datasets / "airline_scale.npz")["arr_0"]
    assert x.shape == (62043, 5)
    reference = KMeans(n_clusters=5, n_init=10, random_state=0).fit(x).inertia_
    pdf = pd.DataFrame(x, columns=list("LRFMC"))
    pdf.insert(0, "customer_key", [f"m{i}" for i in range(len(pdf))])
    df = spark.createDataFrame(pdf)
    # Two initialisations reach scikit-learn's inertia (9e-6 above it); a single one stops in
    # a local optimum 1.4% above, and a third only repeats the second's result (~15 s).
    fit = fit_segments(df, list("LRFMC"), k=5, seed=42, n_init=2, max_iter=100, standardize=False, impute="zero")
    try:
        assert fit.quality["rows"] == 62043
        assert abs(fit.quality["wss"] - reference) / reference < 0.01, (fit.quality["wss"], reference)
        classes = [value_class_of(dict(zip("LRFMC", c.z, strict=True))) for c in fit.centres]
        assert sorted(classes) == sorted(
            ["important-retain", "important-develop", "important-win-back", "general", "low-value"]
        ), classes
    finally:
        fit.unpersist()
