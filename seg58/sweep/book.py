"""What every sweep does around its jobs, grid or search alike (one implementation): config checks
before launch, the tracking parent run opened once (through the app's SweepHooks), each cell
written to <sweep dir>/sweep_summary.json when it is submitted and again when it ends (so `seg58
status` can watch and `seg58 collect` can finish a sweep whose driver is gone), fail-fast, lost
runs closed, and one clear error listing what did not complete."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from seg58.base.errors import ConfigError, UsageError
from seg58.base.names import CONCURRENT_JOBS_ENV, SUMMARY_FILE
from seg58.base.stop import is_pruned
from seg58.build.user_errors import UserFacingError
from seg58.sweep.folds import cv_table, format_cv
from seg58.sweep.hooks import SweepHooks

log = logging.getLogger(__name__)

OK_STATES = ("COMPLETED", "PRUNED")  # a pruned trial ended as designed
LIVE_STATES = ("PENDING", "SUBMITTED")  # waiting for a slot / submitted: no outcome yet (seg58 status)


class SweepBook:
    def __init__(self, sweep_dir: Path, kind: str, config_loader: Any = None, config: Any = None,
                 launcher: Any = None, max_failures: int | None = None, hooks: SweepHooks | None = None,
                 metric: str | None = None, max_failure_rate: float | None = None):
        self.sweep_dir, self.kind = Path(sweep_dir), kind
        self.config, self.loader, self.launcher = config, config_loader, launcher
        self.max_failures, self.max_failure_rate = max_failures, max_failure_rate
        self.hooks = hooks or SweepHooks()
        self.metric = metric  # the returned dict's key that is the objective (None: the task returns a float)
        self.rate_window = 1  # max_failure_rate applies once this many cells ended (the jobs in flight)
        self.cells: list[dict[str, Any]] = []
        self.parent: str | None = None
        self.extra: dict[str, Any] = {}  # sweep-level facts for the summary (the study, why it stopped, ...)
        self.tracking: dict[str, Any] = {"enabled": False}
        self.base: Any = None  # the first checked cell's composed config: where runs are tracked
        self.total: int | None = None  # cells planned (None: a search, open-ended)

    @classmethod
    def load(cls, sweep_dir: Path, hooks: SweepHooks | None = None) -> SweepBook:
        """The book of an existing sweep folder (for `seg58 status` / `seg58 collect`)."""
        path = Path(sweep_dir) / SUMMARY_FILE
        if not path.is_file():
            raise UsageError(f"{sweep_dir}: no {SUMMARY_FILE} there (not a seg58 sweep folder?)")
        data = json.loads(path.read_text())
        book = cls(Path(sweep_dir), data.get("kind", "grid"), hooks=hooks, metric=data.get("metric"))
        book.cells = data.pop("cells")
        book.parent = data.pop("mlflow_parent_run_id", None)
        book.tracking = data.pop("tracking", {"enabled": False})
        book.total = data.pop("total", None)
        book.extra = {k: v for k, v in data.items() if k not in ("sweep_dir", "kind")}
        return book

    # -- before launching -------------------------------------------------------------
    def problems(self, overrides: Sequence[str]) -> list[str]:
        """Every problem of one cell's composed config, each prefixed with the cell."""
        cfg = self.loader.load_sweep_config(master_config=self.config, sweep_overrides=list(overrides))
        self.base = self.base or cfg
        return [f"[{' '.join(overrides)}] {p}" for p in self.hooks.cell_problems(cfg)]

    def check(self, batch: Sequence[Sequence[str]]) -> None:
        """Refuse the whole batch, listing every bad cell, before any job starts."""
        problems = [p for overrides in batch for p in self.problems(overrides)]
        if problems:
            raise UserFacingError(str(ConfigError(problems)))

    def start(self, arguments: list[str], concurrent_jobs: int, spec: str | None = None,
              parent: str | None = None) -> None:
        """Tell local jobs how many share the CPUs, open the tracking parent run (or reuse
        `parent` when a sweep is resumed)."""
        from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher

        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(self.launcher, LocalLauncher):  # subprocesses on this machine, side by side
            os.environ[CONCURRENT_JOBS_ENV] = str(concurrent_jobs)
        self.rate_window = max(1, concurrent_jobs)  # like hydra-optuna-sweeper's rate over a batch
        self.tracking, self.parent = self.hooks.open_sweep(self.base or self.config, self.sweep_dir, arguments,
                                                           spec or " ".join(arguments), parent)

    # -- as jobs start and end --------------------------------------------------------
    def plan(self, cells: Sequence[Sequence[str]]) -> None:
        """Every cell in the summary from the start, so status shows them and rerun finds them."""
        self.total = len(cells)
        for num, overrides in enumerate(cells):
            self._put({"num": num, "overrides": list(overrides), "status": "PENDING",
                       "output_dir": str(self.sweep_dir / str(num))})
        self.write()

    def submitted(self, num: int, overrides: Sequence[str], job: Any = None, **extra: Any) -> None:
        cell = {"num": num, "overrides": list(overrides), "status": "SUBMITTED", "submitted_at": time.time(),
                "output_dir": str(self.sweep_dir / str(num)), **extra}
        if job is not None and hasattr(job, "paths"):
            cell.update(job_id=job.job_id, stdout=str(job.paths.stdout), stderr=str(job.paths.stderr),
                        submitit_folder=str(job.paths.folder))
        self._put(cell)
        self.write()

    def record(self, num: int, ret: JobReturn, info: dict[str, Any] | None = None, **extra: Any) -> dict:
        """A cell's outcome, written at once and logged as one line (the sweep's live report)."""
        before = next((c for c in self.cells if c["num"] == num), {})
        cell = cell_of(num, ret, info or {}, self.sweep_dir, self.metric)
        cell.update(extra)
        if cell.get("elapsed_s") is None and before.get("submitted_at"):
            cell["elapsed_s"] = round(time.time() - before["submitted_at"], 1)
        cell = {**before, **cell}
        self._put(cell)
        self.write()
        ended = sum(c["status"] not in LIVE_STATES for c in self.cells)
        log.info("[%d/%s ended]%s", ended, self.total or "?", format_cell(cell))
        return cell

    def cancel_unstarted(self, num: int, overrides: Sequence[str], reason: str) -> None:
        self._put({"num": num, "overrides": list(overrides), "status": "CANCELLED", "objective": None,
                   "error": f"not started: {reason}", "output_dir": str(self.sweep_dir / str(num)),
                   "cancelled_by_sweep": True})
        self.write()

    def cancel_rest(self, pool: Any, pending: Sequence[tuple[int, list[str]]], reason: str) -> list[JobReturn]:
        """Fail-fast: cancel the running cells (waiting for each to end) and the unstarted ones."""
        returns = []
        for num, ret, info in pool.cancel_all():
            self.record(num, ret, info, error=f"cancelled: {reason}", cancelled_by_sweep=True)
            returns.append(ret)
        for num, overrides in pending:
            self.cancel_unstarted(num, overrides, reason)
        return returns

    def _put(self, cell: dict[str, Any]) -> None:
        self.cells = [c for c in self.cells if c["num"] != cell["num"]] + [cell]

    def failures(self) -> int:
        return sum(c["status"] not in (*OK_STATES, *LIVE_STATES) and not c.get("cancelled_by_sweep")
                   for c in self.cells)

    def fail_fast(self) -> str | None:
        """Why the sweep stops early (hydra.sweeper.max_failures or max_failure_rate reached), else None."""
        if self.extra.get("stopped"):
            return None
        failed = self.failures()
        ended = sum(c["status"] not in LIVE_STATES and not c.get("cancelled_by_sweep") for c in self.cells)
        if self.max_failures is not None and failed >= self.max_failures:
            why = f"hydra.sweeper.max_failures={self.max_failures} reached"
        elif self.max_failure_rate is not None and ended >= self.rate_window and failed / ended > self.max_failure_rate:
            why = f"hydra.sweeper.max_failure_rate={self.max_failure_rate} exceeded ({failed} of {ended})"
        else:
            return None
        self.extra["stopped"] = f"{why}: {failed} cell(s) failed; the queued and running cells were cancelled"
        log.error("%s", self.extra["stopped"])
        return self.extra["stopped"]

    def write(self) -> None:
        summary = {"sweep_dir": str(self.sweep_dir), "kind": self.kind, "mlflow_parent_run_id": self.parent,
                   "tracking": self.tracking, "total": self.total, "metric": self.metric, **self.extra,
                   "cells": sorted(self.cells, key=lambda c: c["num"])}
        tmp = self.sweep_dir / f".{SUMMARY_FILE}.tmp"
        tmp.write_text(json.dumps(summary, indent=2, default=str))
        os.replace(tmp, self.sweep_dir / SUMMARY_FILE)

    # -- at the end -------------------------------------------------------------------
    def finish(self, rerun_hint: str, fail: bool | None = None) -> None:
        """Close lost runs, write the summary, publish the leaderboard; raise if any cell failed
        (or as `fail` says: a search fails only when no trial completed). Idempotent."""
        self._close_lost_runs()
        self.extra["finished"] = True
        cv = cv_table(self.cells, self.hooks.fold_key) if self.hooks.fold_key else []
        if cv:
            self.extra["cross_validation"] = cv
        self.write()
        cells = sorted(self.cells, key=lambda c: c["num"])
        log.info("sweep summary (%s):\n%s", self.sweep_dir / SUMMARY_FILE, format_summary(cells))
        if cv:
            log.info("%s", format_cv(cv, self.metric))
        failed = [c for c in cells if c["status"] not in OK_STATES]
        broken = bool(failed) if fail is None else fail
        self.hooks.close_sweep(self.tracking, self.parent, broken, self.sweep_dir)
        if broken:
            why = f"{self.extra['stopped']}\n" if self.extra.get("stopped") else ""
            raise UserFacingError(f"{why}{len(failed)} of {len(cells)} sweep jobs did not complete:\n"
                                  f"{format_summary(failed)}\n{rerun_hint}")

    def _close_lost_runs(self) -> None:
        """Jobs that ended without a result (cancelled, killed) never closed their MLflow run."""
        for c in self.cells:
            if c["status"] not in (*OK_STATES, "FAILED"):
                c["mlflow_run_id"] = self.close_lost_run(Path(c["output_dir"]), c["status"]) or c.get("mlflow_run_id")

    def close_lost_run(self, job_dir: Path, state: str) -> str | None:
        return self.hooks.close_lost_run(self.tracking, job_dir, state)


def cell_of(num: int, ret: JobReturn, info: dict[str, Any], sweep_dir: Path, metric: str | None = None) -> dict:
    """A cell's record from its JobReturn. The task's return value: a number is the objective; a
    dict names it by `metric` and its other plain values (epochs, times, ...) are kept, its
    `stop` ({"kind": "pruned", "epoch": N}, seg58/base/stop.py) says whether it was pruned."""
    ok = ret.status == JobStatus.COMPLETED
    value = ret._return_value
    result = value if ok and isinstance(value, dict) else {}
    objective = objective_of_result(value, metric) if ok else None
    stop = result.get("stop")
    state = info.get("state") or ("COMPLETED" if ok else "FAILED")
    if state == "COMPLETED" and is_pruned(stop):
        state = "PRUNED"
    output_dir = Path(str(ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg else sweep_dir / str(num)))
    metrics = metric if isinstance(metric, (list, tuple)) else [metric]
    kept = {k: _plain(v) for k, v in result.items()
            if k not in (*metrics, "stop", "seconds") and (v is None or isinstance(v, (int, float, str, bool)))}
    return {
        **kept,
        "num": num,
        "overrides": list(ret.overrides or []),
        "status": state,
        "objective": objective,
        "elapsed_s": result.get("seconds"),
        "stop": stop,
        "error": None if ok else f"{type(value).__name__}: {value}".strip()[:2000],
        "output_dir": str(output_dir),
        **{k: v for k, v in info.items() if k != "state"},
    }


def objective_of_result(value: Any, metric: Any) -> float | list[float] | None:
    """The objective a task returned: a number; a dict's `metric` value; with a list of metrics
    (multi-objective) the list of their values, as a list or tuple of numbers too. None when
    missing or not finite."""
    if isinstance(metric, (list, tuple)):
        values = [value.get(m) for m in metric] if isinstance(value, dict) else value
        if not isinstance(values, (list, tuple)) or len(values) != len(metric):
            return None
        finite = [_finite(v) for v in values]
        return None if None in finite else finite
    if isinstance(value, (list, tuple)) and metric is None:  # hydra-optuna-sweeper's multi-objective return
        finite = [_finite(v) for v in value]
        return None if not finite or None in finite else finite
    if isinstance(value, dict):
        return _finite(value.get(metric)) if metric is not None else None
    return None if isinstance(value, bool) else _finite(value)


def _plain(value: Any) -> Any:
    return _finite(value) if isinstance(value, float) else value


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def format_objective(value: float | list[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in value) + "]" if isinstance(value, list) else f"{value:.4f}"


def format_cell(c: dict[str, Any]) -> str:
    where = f" slurm={c['job_id']}" if c.get("job_id") and c.get("executor", "slurm") == "slurm" else ""
    score = "" if c.get("objective") is None else f" objective={format_objective(c['objective'])}"
    epochs = f" epochs={c['epochs_trained']}" if c.get("epochs_trained") is not None else ""
    took = f" in {duration(c['elapsed_s'])}" if c.get("elapsed_s") is not None else ""
    line = f"  #{c['num']} {c['status']:<10}{where}{score}{epochs}{took}  {' '.join(c['overrides'])}"
    if c["status"] not in (*OK_STATES, *LIVE_STATES):
        log_path = c.get("stderr") or c.get("output_dir")
        line += f"\n      error: {(c['error'] or '').splitlines()[0] if c.get('error') else '?'}"
        line += f"\n      log: {log_path}" if log_path else ""
    return line


def format_summary(cells: list[dict]) -> str:
    return "\n".join(format_cell(c) for c in cells)


def unfinished_cells(sweep_dir: Path) -> list[list[str]]:
    summary = sweep_dir / SUMMARY_FILE
    if not summary.is_file():
        raise UserFacingError(f"hydra.sweeper.rerun={sweep_dir}: no {SUMMARY_FILE} there (not a seg58 sweep?)")
    cells = json.loads(summary.read_text())["cells"]
    return [c["overrides"] for c in cells if c["status"] not in OK_STATES]
