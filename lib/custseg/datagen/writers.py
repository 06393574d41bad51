"""Part files of the landing zone: one per (source, batch date, chunk), lines appended block by block."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from custseg.datagen.fmt import array_bytes

BUFFER = 1 << 20


class PartWriter:
    """Appends lines to `landing/<source>/<date>/part-<part>.<ext>`, creating files on first use.

    Keeps the line count of every file so that a row's physical line number (1-based,
    a CSV header is line 1) can be reported for the bad-record list.
    """

    def __init__(self, root: Path, part: int, batch_dates: list[str]) -> None:
        self.root = root
        self.part = part
        self.batch_dates = batch_dates
        self._files: dict[tuple[str, int], tuple[BinaryIO, str]] = {}
        self.lines: dict[tuple[str, int], int] = {}  # physical lines written, header included
        self.records: dict[tuple[str, int], int] = {}

    def relpath(self, source: str, batch: int, ext: str) -> str:
        return f"landing/{source}/{self.batch_dates[batch]}/part-{self.part:05d}.{ext}"

    def _file(self, source: str, batch: int, ext: str, header: str | None) -> BinaryIO:
        key = (source, batch)
        if key not in self._files:
            rel = self.relpath(source, batch, ext)
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "wb", buffering=BUFFER)  # noqa: SIM115 - closed in close()
            self._files[key] = (fh, rel)
            self.lines[key] = 0
            self.records[key] = 0
            if header:
                fh.write(header.encode())
                self.lines[key] = 1
        return self._files[key][0]

    def write(
        self,
        source: str,
        ext: str,
        header: str | None,
        lines: pa.Array,
        batch: np.ndarray,
        rows: np.ndarray,
    ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Write `lines` into their batch files; return (file, line, batch) of the given `rows`."""
        files = [""] * len(rows)
        line_no = np.zeros(len(rows), dtype=np.int64)
        for b in np.unique(batch):
            m = batch == b
            sub = lines if m.all() else pc.filter(lines, pa.array(m))
            fh = self._file(source, int(b), ext, header)
            key = (source, int(b))
            fh.write(array_bytes(sub))
            rank = np.cumsum(m) - 1
            sel = m[rows]
            line_no[sel] = self.lines[key] + rank[rows[sel]] + 1
            rel = self._files[key][1]
            for i in np.flatnonzero(sel):
                files[i] = rel
            self.lines[key] += int(m.sum())
            self.records[key] += int(m.sum())
        return files, line_no, batch[rows]

    def close(self) -> dict[tuple[str, int, int], tuple[str, int]]:
        """{(source, batch, part): (relative path, records)} of the files written."""
        out = {}
        for key, (fh, rel) in self._files.items():
            fh.close()
            out[(*key, self.part)] = (rel, self.records[key])
        return out
