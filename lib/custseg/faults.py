"""Fault injection at named points of a stage: a test hook, inert unless ``CUSTSEG_FAULT`` is set.

The reliability tests (tests/integration/test_faults.py) use it to kill a driver, or fill its
disk, in the middle of a stage, and then check that a rerun leaves exact tables. Never set it
in production. When the variable is unset each table write costs one environment lookup.

``CUSTSEG_FAULT=<stage>:<fault>[:<n>]`` (several separated by ``,``), where ``<n>`` (default 1)
counts the writes of that stage in this process, table writes (custseg.storage) and file writes
(custseg.fileio: reports, manifests) alike; a pipeline counts each stage apart:

- ``kill-after-write:<n>``: SIGKILL this process right after the n-th table write commits
  (a driver lost between two writes: the stage's first tables are new, the rest are not);
- ``kill-before-write:<n>``: SIGKILL it just before the n-th write starts;
- ``disk-full:<n>``: the n-th write fails while its files are being written, with the error
  a full disk gives ("No space left on device"): raised in the Spark tasks that write a table's
  data files (a write of no rows has nothing to fail), or by ``fileio`` halfway through a file.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

ENV = "CUSTSEG_FAULT"
FAULTS = ("kill-after-write", "kill-before-write", "disk-full")
DISK_FULL_MESSAGE = "[CUSTSEG_FAULT disk-full] java.io.IOException: No space left on device"


class FaultSpecError(ValueError):
    """A ``CUSTSEG_FAULT`` value that cannot be read."""


@dataclass(frozen=True)
class Fault:
    stage: str
    kind: str
    n: int = 1


def parse(text: str) -> list[Fault]:
    """The faults of a ``CUSTSEG_FAULT`` value; a malformed one raises FaultSpecError naming it."""
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        parts = item.split(":")
        if len(parts) not in (2, 3) or parts[1] not in FAULTS or (len(parts) == 3 and not parts[2].isdigit()):
            raise FaultSpecError(f"{ENV}: cannot read {item!r}; expected <stage>:<{'|'.join(FAULTS)}>[:<n>]")
        out.append(Fault(parts[0], parts[1], int(parts[2]) if len(parts) == 3 else 1))
    return out


_stage: str | None = None  # the stage running in this process (set by the job runner)
_writes = 0  # table writes started by that stage


@contextmanager
def stage(name: str):
    """Marks the stage whose table writes the faults count (custseg.cli wraps each stage in it)."""
    global _stage, _writes
    _stage, _writes = name, 0
    try:
        yield
    finally:
        _stage, _writes = None, 0


@contextmanager
def side_task(name: str):
    """Writes made inside count as stage ``name`` (from 1); the outer stage's count then resumes
    where it was. For work a stage does on the side (the stream's hourly export), so that it
    neither shifts the stage's own fault points nor escapes faults of its own."""
    global _stage, _writes
    outer = (_stage, _writes)
    _stage, _writes = name, 0
    try:
        yield
    finally:
        _stage, _writes = outer


def _armed(kind: str, n: int) -> bool:
    text = os.environ.get(ENV)
    if not text or _stage is None:
        return False
    return any(f.stage == _stage and f.kind == kind and f.n == n for f in parse(text))


def _kill(where: str) -> None:
    log.error("%s: killing this process (SIGKILL) %s of stage %s", ENV, where, _stage)
    for handler in logging.getLogger("custseg").handlers + logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def before_write(target: str) -> str | None:
    """Called before each table write (custseg.storage) and file write (custseg.fileio): counts
    it, kills the process before it (``kill-before-write``), or returns ``"disk-full"`` when the
    write must fail as on a full disk (the caller makes it fail while writing). None: write as usual."""
    global _writes
    if _stage is None or not os.environ.get(ENV):
        return None
    _writes += 1
    if _armed("kill-before-write", _writes):
        _kill(f"before write {_writes} ({target})")
    if _armed("disk-full", _writes):
        log.error("%s: write %d of stage %s (%s) will fail with a full disk", ENV, _writes, _stage, target)
        return "disk-full"
    return None


def disk_full_rows() -> Column:
    """A row filter that fails the tasks writing a DataFrame as a full disk does. Raised by
    the write tasks as they write rows, after their output files are opened: the job aborts
    with files begun and none committed, as when a disk fills up mid-write."""
    return F.raise_error(F.lit(DISK_FULL_MESSAGE)).isNull()


def disk_full_error(path: str) -> OSError:
    return OSError(errno.ENOSPC, f"No space left on device [{ENV} disk-full]", path)


def after_write(table: str) -> None:
    """Called by the Tables facade after each write commits: ``kill-after-write``."""
    if _stage is not None and os.environ.get(ENV) and _armed("kill-after-write", _writes):
        _kill(f"after write {_writes} ({table})")
