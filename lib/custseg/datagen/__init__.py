"""Deterministic synthetic multi-source customer logs with planted truth.

`generate(out_dir, ...)` writes the landing zone of DESIGN.md
(`landing/<source>/<YYYY-MM-DD>/part-NNNNN.<csv|jsonl>`) for crm_customers, products,
orders, events, feedback, social and campaign_responses, plus `truth/`: the planted
personas, churners and responder propensities (customers.csv), every resolvable raw
identifier (identities.csv), basket rules with their exact support / confidence / lift
(rules.csv), campaign treatment and control rates (campaigns.csv), every injected bad
record with file and line (bad_records.csv) and manifest.json.

Customers are generated in blocks of 1000 with their own random streams, so the output
depends only on the arguments (not on chunking or worker processes); blocks are grouped
into chunks, each chunk written to its own part files, which keeps memory flat at any scale.
"""

from __future__ import annotations

from custseg.datagen.bad_records import BAD_CLASSES
from custseg.datagen.blocks import SOURCES
from custseg.datagen.cli import main, parse_args
from custseg.datagen.personas import DEFAULT_SHARES, PERSONAS
from custseg.datagen.runner import GenerateSummary, generate

__all__ = [
    "BAD_CLASSES",
    "DEFAULT_SHARES",
    "PERSONAS",
    "SOURCES",
    "GenerateSummary",
    "generate",
    "main",
    "parse_args",
]
