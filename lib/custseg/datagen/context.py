"""Run-wide settings shared by every block generator (picklable, sent to worker processes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from custseg.datagen.catalog import Catalog

BLOCK = 1000  # customers per block: the unit of randomness, so output does not depend on chunking
DAY = 86400
CUSTOMER_MOD = 10**7  # customer ids are "C" + 7 digits: an affine bijection of the index
CUSTOMER_MUL, CUSTOMER_ADD = 7_654_321, 1_234_567
DEVICE_MOD, DEVICE_MUL, DEVICE_ADD = 10**9, 387_420_489, 11_111_111
MAX_DEVICES = 3


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    channel: str
    send_day: int
    target_share: float
    control_share: float
    control_rate: float  # planted conversion probability without treatment
    multiplier: float  # treated: control_rate + multiplier * responder propensity


@dataclass
class Context:
    n_customers: int
    days: int
    seed: int
    bad_share: float
    end_day: int  # epoch days of the end date
    n_batches: int
    shares: np.ndarray
    catalog: Catalog
    campaigns: tuple[Campaign, ...]

    @property
    def start_day(self) -> int:
        return self.end_day - self.days

    @property
    def first_batch_day(self) -> int:
        return self.end_day - (self.n_batches - 1)

    @property
    def batch_dates(self) -> list[str]:
        days = np.arange(self.first_batch_day, self.end_day + 1).astype("datetime64[D]")
        return [str(d) for d in days]

    @property
    def n_blocks(self) -> int:
        return -(-self.n_customers // BLOCK)

    def rng(self, block: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, block, stream])

    def batch_of(self, seconds: np.ndarray) -> np.ndarray:
        """Landing batch index of records with these timestamps (earlier days -> batch 0)."""
        day = np.asarray(seconds, dtype=np.int64) // DAY
        return np.clip(day - self.first_batch_day, 0, self.n_batches - 1)


def customer_number(g: np.ndarray) -> np.ndarray:
    return (np.asarray(g, dtype=np.int64) * CUSTOMER_MUL + CUSTOMER_ADD) % CUSTOMER_MOD


def unknown_customer_numbers(ctx: Context, n: int, rng: np.random.Generator) -> np.ndarray:
    """Customer numbers that belong to no generated customer (indices past the last one)."""
    return customer_number(rng.integers(ctx.n_customers, CUSTOMER_MOD, n))


def device_number(g: np.ndarray, j: np.ndarray) -> np.ndarray:
    x = np.asarray(g, dtype=np.int64) * 4 + j
    return (x * DEVICE_MUL + DEVICE_ADD) % DEVICE_MOD
