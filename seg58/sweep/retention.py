"""hydra.sweeper.keep_checkpoints=k: a sweep's disk kept to what is worth keeping, as cells end.

- A cell that may still run (queued, running, requeued) or be resumed (INTERRUPTED, CANCELLED)
  keeps everything: its resume checkpoint is what a requeue or `hydra.sweeper.resume` continues from.
- A COMPLETED cell loses its resume checkpoint when it ends, and keeps its best checkpoint only
  while it is among the k best by the sweep's objective (the first, in a multi-objective search).
- PRUNED and FAILED cells keep nothing.

Which files those are is the app's (SweepHooks.checkpoints); with none, nothing is touched."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from seg58.base.status import CellStatus

log = logging.getLogger(__name__)

RESUME, BEST = "resume", "best"


def remove(paths: Iterable[Path]) -> int:
    """Delete these files; the bytes freed (files already gone count nothing)."""
    freed = 0
    for path in paths:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        freed += size
    return freed


def sizes(paths: Iterable[Path]) -> int:
    """What remove() would free, nothing deleted."""
    return sum(p.stat().st_size for p in paths if p.is_file())


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def disk_use(folder: Path) -> int:
    """Bytes of the files under a folder (a sweep's: its cells' outputs, checkpoints, logs)."""
    import os

    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def sweep_setting(sweep_dir: Path, key: str, default: Any) -> Any:
    """hydra.sweeper.<key> as a sweep ran with it (its multirun.yaml)."""
    from omegaconf import OmegaConf

    from seg58.base.names import MULTIRUN_CONFIG

    path = Path(sweep_dir) / MULTIRUN_CONFIG
    if not path.is_file():
        return default
    value = OmegaConf.select(OmegaConf.load(path), f"hydra.sweeper.{key}", default=default)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


class Retention:
    def __init__(self, keep: int | None, direction: Any,
                 files: Callable[[Mapping[str, Any]], Mapping[str, list[Path]]],
                 remover: Callable[[Iterable[Path]], int] = remove):
        self.keep = keep  # None: keep everything
        self.remover = remover  # sizes(): what a dry run would free
        first = direction[0] if isinstance(direction, (list, tuple)) else direction
        self.sign = 1.0 if str(first) == "maximize" else -1.0
        self.files = files
        self.top: list[tuple[float, int, dict]] = []  # (signed objective, num, cell): completed, keeping best
        self.freed = 0

    def start(self, cells: Iterable[Mapping[str, Any]]) -> None:
        """A resumed sweep: the rule applied to what the earlier drivers left."""
        for cell in sorted(cells, key=lambda c: c["num"]):
            self.ended(cell)

    def ended(self, cell: Mapping[str, Any]) -> int:
        """Apply the rule to a cell that just ended (and to the one it pushes out of the top k)."""
        if self.keep is None:
            return 0
        status, freed = cell["status"], 0
        if status in (CellStatus.PRUNED, CellStatus.FAILED):
            freed = self.remover(self._paths(cell, RESUME, BEST))
        elif status == CellStatus.COMPLETED:
            freed = self.remover(self._paths(cell, RESUME)) + self._rank(cell)
        self.freed += freed
        return freed

    def _rank(self, cell: Mapping[str, Any]) -> int:
        objective = cell.get("objective")
        objective = objective[0] if isinstance(objective, list) else objective
        self.top = [t for t in self.top if t[1] != cell["num"]]  # a cell run again
        if objective is None:
            return self.remover(self._paths(cell, BEST))
        self.top.append((self.sign * float(objective), cell["num"], dict(cell)))
        self.top.sort(key=lambda t: (-t[0], t[1]))  # best first; ties: the earlier cell stays
        if len(self.top) <= self.keep:
            return 0
        *_, out = self.top.pop()
        return self.remover(self._paths(out, BEST))

    @property
    def kept_best(self) -> set[int]:
        """The completed cells that keep their best checkpoint (the top k)."""
        return {t[1] for t in self.top}

    def _paths(self, cell: Mapping[str, Any], *kinds: str) -> list[Path]:
        found = self.files(cell) if cell.get("output_dir") else {}
        return [p for kind in kinds for p in found.get(kind, [])]
