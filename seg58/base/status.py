"""A sweep cell's status: one place for the names. The values are what `sweep_summary.json`,
`seg58 status` and other tools read, so they stay as they are."""

from __future__ import annotations

from enum import Enum


class CellStatus(str, Enum):
    """Compares and serialises as its value (`CellStatus.COMPLETED == "COMPLETED"`)."""

    PENDING = "PENDING"  # planned, not yet handed to the launcher
    SUBMITTED = "SUBMITTED"  # handed to the launcher (a queue, a local pool)
    RUNNING = "RUNNING"  # training
    COMPLETED = "COMPLETED"  # ended on its own with a result
    PRUNED = "PRUNED"  # stopped early by the search's pruner: ended as designed
    FAILED = "FAILED"  # ended in an error
    CANCELLED = "CANCELLED"  # stopped from outside (scancel, max_failures)
    INTERRUPTED = "INTERRUPTED"  # stopped by Ctrl-C on the sweep: a resume runs its work again

    def __str__(self) -> str:
        return self.value


OK_STATES = (CellStatus.COMPLETED, CellStatus.PRUNED)
LIVE_STATES = (CellStatus.PENDING, CellStatus.SUBMITTED, CellStatus.RUNNING)  # no outcome yet
