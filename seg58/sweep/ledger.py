"""A sweep's cells on disk at a cost per event that does not grow with the sweep.

Every change of a cell is one line appended to <sweep dir>/sweep_events.jsonl; the readable
summary, sweep_summary.json, is rewritten whole at most every FLUSH_S seconds (and whenever the
sweep-level facts change, and at the end). The summary records how far into the event log it
reaches (`events_offset`), so a reader (seg58 status, collect, a resumed search) loads the summary
and replays only the events written after it: exact while the sweep runs, or after its driver died
between two flushes. A 10,000-cell sweep writes ~30,000 short lines and a few dozen summaries,
not 30,000 summaries."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO, Any

from seg58.base.names import EVENTS_FILE, SUMMARY_FILE
from seg58.base.status import LIVE_STATES, OK_STATES, CellStatus

FLUSH_S = 2.0  # the summary file lags the event log by at most this (while events arrive)


class HoursTally:
    """Compute hours summed over cells: every `cost/<x>_hours` a cell reported (seg58's runs: GPU and
    CPU hours) as `<x>_hours`, with how many cells reported one. The ledger keeps one as cells come
    and go, so a sweep's summary and budget read it without walking every cell."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}  # cells reporting each key (a key no cell reports is left out)
        self.measured = 0

    def add(self, cell: dict[str, Any], sign: int = 1) -> None:
        hours = {k.removeprefix("cost/"): v for k, v in cell.items()
                 if k.startswith("cost/") and k.endswith("_hours") and isinstance(v, (int, float))}
        if not hours:
            return
        self.measured += sign
        for key, value in hours.items():
            self.sums[key] = self.sums.get(key, 0.0) + sign * value
            self.counts[key] = self.counts.get(key, 0) + sign

    def result(self) -> dict[str, Any]:
        """{<x>_hours: sum, ..., cells_measured: n}; {} before the first cell reported any."""
        if not self.measured:
            return {}
        return {**{k: round(v, 9) for k, v in self.sums.items() if self.counts[k]}, "cells_measured": self.measured}


class Ledger:
    """The cells by number, with running counts, persisted as an event log plus a summary."""

    def __init__(self, sweep_dir: Path, flush_s: float = FLUSH_S):
        self.sweep_dir, self.flush_s = Path(sweep_dir), flush_s
        self._cells: dict[int, dict[str, Any]] = {}
        self.ended = 0  # cells with an outcome
        self.failed = 0  # ... that failed on their own (not cancelled by the sweep)
        self.ended_own = 0  # ... that ended on their own
        self.interrupted = 0  # ... that were interrupted: a resumed sweep runs their work again
        self.hours = HoursTally()  # the compute the cells reported
        self._events: IO[str] | None = None
        self._offset = 0  # bytes of the event log the last summary includes
        self._written_at = 0.0
        self._dirty = False

    # -- the cells ---------------------------------------------------------------------
    @property
    def cells(self) -> list[dict[str, Any]]:
        return [self._cells[n] for n in sorted(self._cells)]

    def get(self, num: int) -> dict[str, Any]:
        return self._cells.get(num, {})

    def __len__(self) -> int:
        return len(self._cells)

    def put(self, cell: dict[str, Any], log: bool = True) -> None:
        """A cell's new state: the counts follow, the event log gets one line."""
        old = self._cells.get(cell["num"])
        if old is not None:
            self._count(old, -1)
        self._cells[cell["num"]] = cell
        self._count(cell, +1)
        if log:
            self._append(cell)

    def replace(self, cells: list[dict[str, Any]]) -> None:
        self._cells.clear()
        self.ended = self.failed = self.ended_own = self.interrupted = 0
        self.hours = HoursTally()
        for cell in cells:
            self.put(cell, log=False)

    def _count(self, cell: dict[str, Any], sign: int) -> None:
        self.hours.add(cell, sign)
        if cell["status"] in LIVE_STATES:
            return
        own = not cell.get("cancelled_by_sweep")
        self.ended += sign
        self.ended_own += sign * own
        self.failed += sign * (own and cell["status"] not in OK_STATES)
        self.interrupted += sign * (cell["status"] == CellStatus.INTERRUPTED)

    @property
    def ended_towards_total(self) -> int:
        """Ended cells that count towards the sweep's total: an interrupted cell does not (its work is
        retried by a resume, as another trial in a search), so a resumed sweep never counts past it."""
        return self.ended - self.interrupted

    # -- on disk -----------------------------------------------------------------------
    def _append(self, cell: dict[str, Any]) -> None:
        if self._events is None:
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
            path = self.sweep_dir / EVENTS_FILE
            torn = _last_byte(path) not in (b"", b"\n")  # a writer killed mid-line
            self._events = open(path, "a", encoding="utf-8")
            if torn:
                self._events.write("\n")
        self._events.write(json.dumps(cell, default=str, separators=(",", ":")) + "\n")
        self._events.flush()
        self._dirty = True

    def write(self, facts: dict[str, Any], force: bool = False) -> None:
        """The summary (sweep-level `facts` and every cell) when forced or flush_s has passed."""
        self._dirty = True
        if not force and time.monotonic() - self._written_at < self.flush_s:
            return
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        offset = self._events.tell() if self._events is not None else _size(self.sweep_dir / EVENTS_FILE)
        summary = {**facts, "events_offset": offset, "cells": self.cells}
        tmp = self.sweep_dir / f".{SUMMARY_FILE}.tmp"
        tmp.write_text(json.dumps(summary, indent=1, default=str))
        os.replace(tmp, self.sweep_dir / SUMMARY_FILE)
        self._offset, self._written_at, self._dirty = offset, time.monotonic(), False

    def flush_due(self, facts: dict[str, Any]) -> None:
        """While waiting for jobs: catch the summary up with the log when it lags."""
        if self._dirty:
            self.write(facts)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None

    @classmethod
    def read(cls, sweep_dir: Path) -> tuple[Ledger, dict[str, Any]]:
        """(the cells as of the last event, the summary's sweep-level facts)."""
        ledger = cls(sweep_dir)
        data = json.loads((Path(sweep_dir) / SUMMARY_FILE).read_text())
        ledger.replace(data.pop("cells"))
        offset = data.pop("events_offset", None)
        if offset is not None:
            for cell in _events_after(Path(sweep_dir) / EVENTS_FILE, offset):
                ledger.put(cell, log=False)
        return ledger, data


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _last_byte(path: Path) -> bytes:
    if _size(path) == 0:
        return b""
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def _events_after(path: Path, offset: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, "rb") as f:
        f.seek(offset)
        lines = f.read().split(b"\n")
    cells = []
    for line in lines:
        try:
            cells.append(json.loads(line))
        except ValueError:  # the last line of a log still being written
            continue
    return cells
