"""What every seg58 sweep does around its jobs, grid or search alike (one implementation):
config checks before launch, the MLflow store created once, one parent run, a record per
cell/trial written to <sweep dir>/sweep_summary.json as each ends, lost runs closed, and one
clear error listing what did not complete."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from seg58.env import CONCURRENT_JOBS_ENV, PARENT_EXPERIMENT_ENV, PARENT_RUN_ENV

log = logging.getLogger(__name__)

SUMMARY_FILE = "sweep_summary.json"
OK_STATES = ("COMPLETED", "PRUNED")  # a pruned trial ended as designed


class SweepBook:
    def __init__(self, config: Any, config_loader: Any, launcher: Any, kind: str):
        self.config, self.loader, self.launcher, self.kind = config, config_loader, launcher, kind
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.cells: list[dict[str, Any]] = []
        self.parent: str | None = None
        self.extra: dict[str, Any] = {}  # sweep-level facts for the summary (e.g. the study)
        self.base: Any = None  # the first checked cell's composed config: where runs are tracked

    @property
    def tracking(self) -> Any:
        return (self.base or self.config).tracking

    # -- before launching -------------------------------------------------------------
    def problems(self, overrides: Sequence[str]) -> list[str]:
        """Every problem of one cell's composed config, each prefixed with the cell."""
        from seg58.checks import config_problems

        cfg = self.loader.load_sweep_config(master_config=self.config, sweep_overrides=list(overrides))
        self.base = self.base or cfg
        return [f"[{' '.join(overrides)}] {p}" for p in config_problems(cfg)]

    def check(self, batch: Sequence[Sequence[str]]) -> None:
        """Refuse the whole batch, listing every bad cell, before any job starts."""
        from seg58.errors import ConfigError
        from seg58.user_errors import UserFacingError

        problems = [p for overrides in batch for p in self.problems(overrides)]
        if problems:
            raise UserFacingError(str(ConfigError(problems)))

    def start(self, arguments: list[str], concurrent_jobs: int, spec: str | None = None,
              parent: str | None = None) -> None:
        """Create the store once, tell local jobs how many share the CPUs, open the parent run
        (or reuse `parent` when a sweep is resumed)."""
        from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher

        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(self.launcher, LocalLauncher):  # subprocesses on this machine, all at once
            os.environ[CONCURRENT_JOBS_ENV] = str(concurrent_jobs)
        t = self.tracking
        if not t.enabled:
            return
        from seg58.mlflow_store import ensure_store, resolve_uri, start_sweep_run

        ensure_store(resolve_uri(t.uri))
        self.parent = parent or start_sweep_run(t.uri, t.experiment_name, self.sweep_dir, arguments,
                                                spec or " ".join(arguments))
        os.environ[PARENT_RUN_ENV] = self.parent
        os.environ[PARENT_EXPERIMENT_ENV] = t.experiment_name

    # -- as jobs end ------------------------------------------------------------------
    def record(self, num: int, ret: JobReturn, info: dict[str, Any] | None = None, **extra: Any) -> dict:
        cell = cell_of(num, ret, info or {}, self.sweep_dir)
        cell.update(extra)
        self.cells.append(cell)
        self.write()
        return cell

    def write(self) -> None:
        summary = {"sweep_dir": str(self.sweep_dir), "kind": self.kind, "mlflow_parent_run_id": self.parent,
                   **self.extra, "cells": sorted(self.cells, key=lambda c: c["num"])}
        tmp = self.sweep_dir / f".{SUMMARY_FILE}.tmp"
        tmp.write_text(json.dumps(summary, indent=2, default=str))
        os.replace(tmp, self.sweep_dir / SUMMARY_FILE)

    # -- at the end -------------------------------------------------------------------
    def finish(self, rerun_hint: str, fail: bool | None = None) -> None:
        """Close lost runs, write the summary, publish the leaderboard; raise if any cell failed
        (or as `fail` says: a search fails only when no trial completed)."""
        from seg58.user_errors import UserFacingError

        self._close_lost_runs()
        self.write()
        cells = sorted(self.cells, key=lambda c: c["num"])
        log.info("sweep summary (%s):\n%s", self.sweep_dir / SUMMARY_FILE, format_summary(cells))
        failed = [c for c in cells if c["status"] not in OK_STATES]
        broken = bool(failed) if fail is None else fail
        if self.parent is not None:
            from seg58.mlflow_store import finish_sweep_run

            finish_sweep_run(self.tracking.uri, self.parent, broken, str(self.sweep_dir))
        if broken:
            raise UserFacingError(f"{len(failed)} of {len(cells)} sweep jobs did not complete:\n"
                                  f"{format_summary(failed)}\n{rerun_hint}")

    def _close_lost_runs(self) -> None:
        """Jobs that ended without a result (cancelled, killed) never closed their MLflow run."""
        for c in self.cells:
            if c["status"] not in (*OK_STATES, "FAILED"):
                c["mlflow_run_id"] = self.close_lost_run(Path(c["output_dir"]), c["status"])

    def close_lost_run(self, job_dir: Path, state: str) -> str | None:
        if not self.tracking.enabled:
            return None
        from seg58.mlflow_store import mark_lost_run

        return mark_lost_run(self.tracking.uri, job_dir / "mlflow_run_id", state)


def cell_of(num: int, ret: JobReturn, info: dict[str, Any], sweep_dir: Path) -> dict[str, Any]:
    ok = ret.status == JobStatus.COMPLETED
    value = ret._return_value
    result = value if ok and isinstance(value, dict) else {}
    error = None if ok else value
    stopped = result.get("stopped") or ""
    state = info.get("state") or ("COMPLETED" if ok else "FAILED")
    if state == "COMPLETED" and stopped.startswith("pruned"):
        state = "PRUNED"
    output_dir = Path(str(ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg else sweep_dir / str(num)))
    return {
        "num": num,
        "overrides": list(ret.overrides or []),
        "status": state,
        "objective": _finite(result.get("objective", result.get("best_val_miou"))),
        "best_val_miou": _finite(result.get("best_val_miou")),
        "epochs_trained": result.get("epochs_trained"),
        "stopped": stopped or None,
        "error": None if error is None else f"{type(error).__name__}: {error}".strip()[:2000],
        "output_dir": str(output_dir),
        **{k: v for k, v in info.items() if k != "state"},
    }


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def format_summary(cells: list[dict]) -> str:
    lines = []
    for c in cells:
        where = f" slurm={c['job_id']}" if c.get("job_id") else ""
        score = f" objective={c['objective']:.4f}" if c.get("objective") is not None else ""
        epochs = f" epochs={c['epochs_trained']}" if c.get("epochs_trained") is not None else ""
        line = f"  #{c['num']} {c['status']:<10}{where}{score}{epochs}  {' '.join(c['overrides'])}"
        if c["status"] not in OK_STATES:
            log_path = c.get("stderr") or c.get("output_dir")
            line += f"\n      error: {(c['error'] or '').splitlines()[0] if c['error'] else '?'}"
            line += f"\n      log: {log_path}" if log_path else ""
        lines.append(line)
    return "\n".join(lines)


def unfinished_cells(sweep_dir: Path) -> list[list[str]]:
    from seg58.user_errors import UserFacingError

    summary = sweep_dir / SUMMARY_FILE
    if not summary.is_file():
        raise UserFacingError(f"hydra.sweeper.rerun={sweep_dir}: no {SUMMARY_FILE} there (not a seg58 sweep?)")
    cells = json.loads(summary.read_text())["cells"]
    return [c["overrides"] for c in cells if c["status"] not in OK_STATES]
