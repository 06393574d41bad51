"""RFM against hand-computed values: ties at score boundaries, single orders, returns,
customers without orders in the window, and null keys."""

from datetime import date, datetime
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql.types import (
    DecimalType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from custseg.features.rfm import RFM_COLUMNS, rfm_features

AS_OF = date(2026, 6, 30)
ORDERS = StructType(
    [
        StructField("customer_key", StringType(), True),
        StructField("order_id", StringType(), True),
        StructField("order_ts", TimestampType(), True),
        StructField("status", StringType(), True),
        StructField("net_revenue", DecimalType(16, 2), True),
    ]
)


def _orders(spark):
    rows = []

    def add(cust, n, last, amount, status="completed", step_days=7):
        for i in range(n):
            ts = datetime.fromordinal(last.toordinal() - i * step_days).replace(hour=12)
            rows.append((cust, f"{cust}-{status}-{i}", ts, status, Decimal(str(amount))))

    add("c01", 1, date(2026, 6, 29), 100)
    add("c02", 1, date(2026, 6, 20), 20)
    add("c03", 1, date(2026, 5, 31), 20)
    rows.append(("c04", "c04-a", datetime(2026, 6, 25, 9), "completed", Decimal("50")))
    rows.append(("c04", "c04-b", datetime(2026, 1, 1, 9), "completed", Decimal("50")))
    add("c05", 2, date(2026, 4, 1), 30, step_days=120)
    add("c06", 3, date(2026, 3, 2), 40)
    add("c07", 4, date(2026, 6, 28), 50)
    add("c08", 5, date(2026, 6, 10), 60)
    add("c09", 6, date(2025, 12, 30), 100)
    add("c10", 10, date(2026, 6, 30), 100)
    add("c10", 1, date(2026, 6, 29), 999, status="returned")  # returns never count
    add("c10", 1, date(2026, 6, 28), 999, status="cancelled")
    add("c11", 1, date(2026, 6, 1), 80, status="returned")  # only returns
    add("c12", 1, date(2025, 1, 1), 500)  # bought, but before the window
    rows.append((None, "guest-1", datetime(2026, 6, 1), "completed", Decimal("10")))  # guest order
    rows.append(("c01", "c01-future", datetime(2026, 7, 5), "completed", Decimal("70")))  # after snapshot
    return spark.createDataFrame(rows, ORDERS)


def _customers(spark):
    keys = [f"c{i:02d}" for i in range(1, 14)]  # c13 never ordered
    return spark.createDataFrame([(k,) for k in keys], "customer_key string")


EXPECTED_SCHEMA = StructType(
    [
        StructField("customer_key", StringType(), True),
        StructField("recency_days", IntegerType(), True),
        StructField("frequency", IntegerType(), True),
        StructField("monetary", DecimalType(16, 2), True),
        StructField("r_score", IntegerType(), True),
        StructField("f_score", IntegerType(), True),
        StructField("m_score", IntegerType(), True),
        StructField("rfm_cell", StringType(), True),
        StructField("rfm_segment", StringType(), True),
    ]
)


def test_rfm_quantile_scores_match_hand_computation(spark):
    actual = rfm_features(_orders(spark), _customers(spark), AS_OF, window_days=365, bins=5)
    d = Decimal
    expected = spark.createDataFrame(
        [
            # frequency cuts [1,2,3,5]; -recency cuts [-120,-30,-10,-2]; monetary cuts [20,100,120,300]
            ("c01", 1, 1, d("100.00"), 5, 1, 2, "512", "New"),
            ("c02", 10, 1, d("20.00"), 3, 1, 1, "311", "About to Sleep"),
            ("c03", 30, 1, d("20.00"), 2, 1, 1, "211", "Hibernating"),
            ("c04", 5, 2, d("100.00"), 4, 2, 2, "422", "Potential Loyalist"),
            ("c05", 90, 2, d("60.00"), 2, 2, 2, "222", "Hibernating"),
            ("c06", 120, 3, d("120.00"), 1, 3, 3, "133", "At Risk"),
            ("c07", 2, 4, d("200.00"), 4, 4, 4, "444", "Loyal"),
            ("c08", 20, 5, d("300.00"), 3, 4, 4, "344", "Loyal"),
            ("c09", 182, 6, d("600.00"), 1, 5, 5, "155", "Can't Lose Them"),
            ("c10", 0, 10, d("1000.00"), 5, 5, 5, "555", "Champions"),
            ("c11", None, 0, d("0.00"), 1, 1, 1, "111", "Lost"),
            ("c12", 545, 0, d("0.00"), 1, 1, 1, "111", "Lost"),
            ("c13", None, 0, d("0.00"), 1, 1, 1, "111", "Lost"),
        ],
        EXPECTED_SCHEMA,
    )
    assert actual.columns == RFM_COLUMNS
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_rfm_fixed_thresholds(spark):
    fixed = {"recency_days": [30, 90, 180, 365], "frequency": [1, 2, 4, 8], "monetary": [50, 150, 400, 1000]}
    actual = rfm_features(
        _orders(spark), _customers(spark), AS_OF, window_days=365, bins=5, binning="fixed", fixed=fixed
    ).select("customer_key", "r_score", "f_score", "m_score")
    expected = spark.createDataFrame(
        [
            # recency <=30 -> 5, (30,90] -> 4, (90,180] -> 3, (180,365] -> 2, >365 -> 1
            ("c01", 5, 1, 2),
            ("c02", 5, 1, 1),
            ("c03", 5, 1, 1),
            ("c04", 5, 2, 2),
            ("c05", 4, 2, 2),
            ("c06", 3, 3, 2),
            ("c07", 5, 3, 3),
            ("c08", 5, 4, 3),
            ("c09", 2, 4, 4),
            ("c10", 5, 5, 4),
            ("c11", 1, 1, 1),
            ("c12", 1, 1, 1),
            ("c13", 1, 1, 1),
        ],
        "customer_key string, r_score int, f_score int, m_score int",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
