"""How an application plugs into the sweeper. Every method has a default that fits any Hydra app
(a task function that returns a float, or a dict whose `hydra.sweeper.metric` key is the
objective), so a plain app needs none; seg58's training plugs its config checks and MLflow
parent run in through a subclass (seg58/commands/sweep_hooks.py), chosen with
`hydra.sweeper.hooks._target_`."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple


class CellProgress(NamedTuple):
    """How far a running cell is, for `seg58 status` (None: unknown)."""

    steps: int | None
    latest: float | None
    best: float | None
    seconds: float | None


class SweepHooks:
    fold_key: str | None = None  # the override naming a cross-validation's fold (None: the app has no folds)
    # top-level keys of sweep_summary.json (and a search's search.json) these hooks own: written as
    # open_sweep returns them, handed back when the sweep is resumed; the sweeper never reads them
    summary_keys: tuple[str, ...] = ()

    def fold_values(self, cfg: Any) -> list[str] | None:
        """When this cell's composed config asks for every fold (its fold key set to `all`), the
        folds, one cell each (seg58/sweep/folds.py); None otherwise."""
        return None

    def program(self, config: Any) -> list[str]:
        """The command that runs this app again (a detached sweep's driver, rerun hints)."""
        return [sys.executable, "-u", os.path.abspath(sys.argv[0])]

    def rerun_command(self, config: Any) -> str:
        """The start of the command line that sweeps again (completed by the sweep: resume, rerun)."""
        return " ".join(["python", *self.program(config)[2:], "-m"])

    def cell_problems(self, cfg: Any) -> list[str]:
        """Everything wrong with one cell's composed config, each naming its key; [] = it can run.
        Called for every cell before the first job starts."""
        return []

    def open_sweep(self, cfg: Any, sweep_dir: Path, arguments: list[str], spec: str,
                   resumed: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Before the first job: (what the summary keeps under "tracking", the hooks' own summary
        facts, of `summary_keys`, such as the id of the sweep's own tracking run). `resumed`: those
        facts of the sweep being continued (None: a new sweep)."""
        return {"enabled": False}, {}

    def close_sweep(self, tracking: dict[str, Any], facts: dict[str, Any], failed: bool, sweep_dir: Path) -> None:
        """After the last cell: close the sweep's tracking run (leaderboards and the like)."""

    def interrupt_sweep(self, tracking: dict[str, Any], facts: dict[str, Any], sweep_dir: Path) -> None:
        """Ctrl-C: close the sweep's tracking run as interrupted (no leaderboard: it may continue)."""

    def tracked_at(self, facts: dict[str, Any]) -> str | None:
        """Where the sweep's results are tracked, for `seg58 status` and `collect`; None: nowhere."""
        return None

    def close_lost_run(self, tracking: dict[str, Any], job_dir: Path, state: str) -> str | None:
        """A job that ended without a result (cancelled, killed) never closed its tracking run:
        close it; returns its id."""
        return None

    def checkpoints(self, cell: Mapping[str, Any]) -> dict[str, list[Path]]:
        """A cell's checkpoint files under its output_dir, as {"resume": [...], "best": [...]}, for
        hydra.sweeper.keep_checkpoints (seg58/sweep/retention.py); {}: the app keeps none."""
        return {}

    def publish_study(self, tracking: dict[str, Any], facts: dict[str, Any], study: Any) -> None:
        """A finished search's study (plots onto the sweep's tracking run)."""

    def progress(self, tracking: dict[str, Any], cell: dict[str, Any], metric: str | None) -> CellProgress | None:
        """How far a cell has come in `metric` (the sweep's hydra.sweeper.metric), for `seg58 status`."""
        return None
