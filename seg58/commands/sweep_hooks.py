"""seg58's training plugged into the generic sweeper (seg58/sweep/hooks.py): every cell's config
checked like a single run's, the MLflow store created once and one parent run that the jobs'
runs nest under, lost runs closed, the leaderboard and the search's plots published at the end.
conf/config.yaml selects it: `hydra.sweeper.hooks._target_`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seg58.base.names import PARENT_EXPERIMENT_ENV, PARENT_RUN_ENV, RUN_ID_FILE
from seg58.sweep.hooks import CellProgress, SweepHooks

log = logging.getLogger(__name__)


PARENT_KEY = "mlflow_parent_run_id"  # the sweep's MLflow run, in sweep_summary.json (report, collect read it)


class SegmentationSweepHooks(SweepHooks):
    fold_key = "data.split_holdout"  # data.split_holdout=all: one cell per material, content or fold
    summary_keys = (PARENT_KEY,)

    def fold_values(self, cfg: Any) -> list[str] | None:
        from seg58.data.splits import ALL_FOLDS

        if cfg.data.split_holdout != ALL_FOLDS or cfg.data.split == "random":
            return None
        from seg58.config.factory import fold_values

        try:
            return fold_values(cfg) or None
        except Exception as e:  # no data yet, say: the cell's own checks name the problem
            log.debug("folds of %s not known: %s", cfg.data.root, e)
            return None

    def program(self, config: Any) -> list[str]:
        return [sys.executable, "-u", "-m", "seg58"]  # the driver adds --config-name when it is not the default

    def rerun_command(self, config: Any) -> str:
        """`seg58 collect` (no config) finishes detached sweeps, which run on SLURM."""
        choice = config.hydra.runtime.choices.get("launcher") if config is not None else "slurm"
        return f"python -m seg58 -m launcher={choice or 'local'}"

    def cell_problems(self, cfg: Any) -> list[str]:
        from seg58.config.config_checks import config_problems

        return config_problems(cfg)

    def open_sweep(self, cfg: Any, sweep_dir: Path, arguments: list[str], spec: str,
                   resumed: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        t = cfg.tracking
        if not t.enabled:
            return {"enabled": False}, {PARENT_KEY: None}
        from seg58.tracking.store import check_reachable
        from seg58.tracking.sweep_run import reopen_sweep_run, start_sweep_run

        # the store created once, before jobs race to create it (SQLite); credentials and write
        # permission checked before any job starts
        tracking = {"enabled": True, "uri": check_reachable(t.uri, t.experiment_name), "experiment": t.experiment_name,
                    "register": t.register}
        parent = (resumed or {}).get(PARENT_KEY)
        if parent:  # a resumed sweep: its run (KILLED when interrupted) runs again
            reopen_sweep_run(t.uri, parent)
        parent = parent or start_sweep_run(t.uri, t.experiment_name, sweep_dir, arguments, spec)
        os.environ[PARENT_RUN_ENV] = parent
        os.environ[PARENT_EXPERIMENT_ENV] = t.experiment_name
        return tracking, {PARENT_KEY: parent}

    def tracked_at(self, facts: dict[str, Any]) -> str | None:
        return f"MLflow parent run {facts[PARENT_KEY]}" if facts.get(PARENT_KEY) else None

    def close_sweep(self, tracking: dict[str, Any], facts: dict[str, Any], failed: bool, sweep_dir: Path) -> None:
        parent = facts.get(PARENT_KEY)
        if parent is None or not tracking.get("enabled"):
            return
        from seg58.tracking.sweep_run import finish_sweep_run, log_sweep_totals

        summary = _summary(sweep_dir)
        _log_cross_validation(tracking, parent, summary)
        log_sweep_totals(tracking["uri"], parent, summary.get("cost") or {}, summary.get("stop"))
        finish_sweep_run(tracking["uri"], parent, failed, str(sweep_dir), register=tracking.get("register"))

    def interrupt_sweep(self, tracking: dict[str, Any], facts: dict[str, Any], sweep_dir: Path) -> None:
        parent = facts.get(PARENT_KEY)
        if parent is None or not tracking.get("enabled"):
            return
        from seg58.tracking.sweep_run import kill_sweep_run

        kill_sweep_run(tracking["uri"], parent, f"interrupted (Ctrl-C); continue: hydra.sweeper.resume={sweep_dir}")

    def checkpoints(self, cell: Mapping[str, Any]) -> dict[str, list[Path]]:
        """last.pt (what a requeue or resume continues from) and best.pt of the cell's run, or of each
        of its folds (cross-validation in one job)."""
        from seg58.base.names import BEST_CHECKPOINT, LAST_CHECKPOINT

        folder = Path(cell["output_dir"])
        return {"resume": sorted(folder.rglob(LAST_CHECKPOINT)), "best": sorted(folder.rglob(BEST_CHECKPOINT))}

    def close_lost_run(self, tracking: dict[str, Any], job_dir: Path, state: str) -> str | None:
        if not tracking.get("enabled"):
            return None
        from seg58.tracking.store import mark_lost_run

        return mark_lost_run(tracking["uri"], job_dir / RUN_ID_FILE, state)

    def publish_study(self, tracking: dict[str, Any], facts: dict[str, Any], study: Any) -> None:
        parent = facts.get(PARENT_KEY)
        if parent is None or not tracking.get("enabled"):
            return
        from seg58.tracking.study_plots import publish_plots

        try:
            publish_plots(study, tracking["uri"], parent)
        except Exception as e:  # plots are a convenience: never fail a finished search for them
            log.warning("search plots not logged: %s: %s", type(e).__name__, e)

    def progress(self, tracking: dict[str, Any], cell: dict[str, Any], metric: str | None) -> CellProgress | None:
        if not tracking.get("enabled"):
            return None
        from seg58.tracking.run_progress import run_progress

        return CellProgress(*run_progress(tracking["uri"], Path(cell.get("output_dir", "")) / RUN_ID_FILE,
                                          metric or "val/miou"))


def _summary(sweep_dir: Path) -> dict[str, Any]:
    import json

    from seg58.base.names import SUMMARY_FILE

    return json.loads((sweep_dir / SUMMARY_FILE).read_text()) if (sweep_dir / SUMMARY_FILE).is_file() else {}


def _log_cross_validation(tracking: dict[str, Any], parent: str, summary: dict[str, Any]) -> None:
    """The folds' table (seg58/sweep/folds.py, in the summary) onto the sweep's run."""
    from seg58.sweep.folds import format_cv
    from seg58.tracking.cross_validation import log_cross_validation

    table = summary.get("cross_validation")
    if table:
        log_cross_validation(tracking["uri"], parent, table, format_cv(table, summary.get("metric")))
