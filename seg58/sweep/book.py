"""What every sweep does around its jobs, grid or search alike (one implementation): config checks
before launch, the sweep's tracking opened once (through the app's SweepHooks), each cell
written to <sweep dir>/sweep_summary.json when it is submitted and again when it ends (so `seg58
status` can watch and `seg58 collect` can finish a sweep whose driver is gone), lost runs closed,
and one clear error listing what did not complete. The book records: when to stop early is
policy.py's to decide, and what tracking keeps in the summary is the hooks' (written verbatim)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn

from seg58.base.errors import ConfigError, UsageError
from seg58.base.names import CONCURRENT_JOBS_ENV, SUMMARY_FILE
from seg58.base.status import CellStatus
from seg58.config.user_errors import UserFacingError
from seg58.sweep.cells import cell_of, format_cell, format_spent, format_summary
from seg58.sweep.checks import CellComposer, problems_of
from seg58.sweep.folds import cv_table, format_cv
from seg58.sweep.hooks import SweepHooks
from seg58.sweep.interrupt import SweepInterrupted
from seg58.sweep.ledger import LIVE_STATES, OK_STATES, Ledger
from seg58.sweep.retention import Retention, format_bytes

log = logging.getLogger(__name__)

PAST_OUTCOME = ("error", "objective", "stop", "stopped_by", "cancelled_by_sweep")  # not carried into a new try

__all__ = ["LIVE_STATES", "OK_STATES", "SweepBook", "unfinished_cells"]


class SweepBook:
    def __init__(self, sweep_dir: Path, kind: str, config_loader: Any = None, config: Any = None,
                 launcher: Any = None, hooks: SweepHooks | None = None, metric: str | None = None,
                 composer: Any = None):
        self.kind = kind
        self.config, self.launcher = config, launcher
        self.composer = composer or (CellComposer(config_loader, config) if config_loader is not None else None)
        self.hooks = hooks or SweepHooks()
        self.metric = metric  # the returned dict's key that is the objective (None: the task returns a float)
        self.ledger = Ledger(Path(sweep_dir))  # the cells, on disk as an event log and a summary
        self.hooked: dict[str, Any] = {}  # the hooks' own summary facts (seg58's: its MLflow parent run), verbatim
        self._facts: dict[str, Any] = {}  # sweep-level facts for the summary (the study, why it stopped, ...)
        self.tracking: dict[str, Any] = {"enabled": False}
        self.base: Any = None  # the first checked cell's composed config: where runs are tracked
        self.total: int | None = None  # cells planned (None: a search, open-ended)
        self._wall_before = 0.0  # the sweep's wall time before this process took it over (a resume)
        self._wall_start: float | None = None
        self.retention: Retention | None = None  # hydra.sweeper.keep_checkpoints, applied as cells end

    @classmethod
    def load(cls, sweep_dir: Path, hooks: SweepHooks | None = None) -> SweepBook:
        """The book of an existing sweep folder (for `seg58 status` / `seg58 collect`)."""
        if not (Path(sweep_dir) / SUMMARY_FILE).is_file():
            raise UsageError(f"{sweep_dir}: no {SUMMARY_FILE} there (not a seg58 sweep folder?)")
        ledger, data = Ledger.read(Path(sweep_dir))
        book = cls(Path(sweep_dir), data.get("kind", "grid"), hooks=hooks, metric=data.get("metric"))
        book.ledger = ledger
        book._adopt(data)
        return book

    def resume(self, facts: bool = True) -> None:
        """Continue this folder's sweep: its cells and, with `facts`, its tracking run and total (a
        resumed grid; a search reopens its run from search.json and counts its trials itself)."""
        if not (self.sweep_dir / SUMMARY_FILE).is_file():
            return  # a search that stopped before its first cell
        ledger, data = Ledger.read(self.sweep_dir)
        self.ledger.replace(ledger.cells)
        self._wall_before = float(data.get("wall_time_s") or 0.0)  # a budget's wall time counts it
        if self.retention is not None:
            self.retention.start(self.cells)
        if facts:
            self._adopt({k: v for k, v in data.items() if k not in ("stopped", "stop", "finished", "interrupted")})

    def _adopt(self, data: dict[str, Any]) -> None:
        self.hooked = {k: data[k] for k in self.hooks.summary_keys if k in data}
        self.tracking = data.get("tracking", {"enabled": False})
        self.total = data.get("total")
        own = ("sweep_dir", "kind", "tracking", "total", "metric", "cost", "wall_time_s", *self.hooks.summary_keys)
        self._facts = {k: v for k, v in data.items() if k not in own}

    # -- sweep-level facts --------------------------------------------------------------
    def note(self, **facts: Any) -> None:
        """Sweep-level facts for the summary (a search's study, its best trial, ...)."""
        self._facts.update(facts)

    def fact(self, key: str, default: Any = None) -> Any:
        return self._facts.get(key, default)

    @property
    def stopped(self) -> str | None:
        """Why the sweep stopped early (fail-fast, budget), else None."""
        return self._facts.get("stopped")

    @property
    def stop_kind(self) -> str | None:
        """`failures` (policy.py) or `budget` (budget.py) once the sweep stopped early, else None."""
        return (self._facts.get("stop") or {}).get("kind")

    def stop_early(self, reason: str, kind: str = "failures", **details: Any) -> str:
        """Record that the sweep stops early (policy.py or budget.py decided): written and logged at
        once; `stop` in the summary says which kind, with the details."""
        self._facts["stopped"] = reason
        self._facts["stop"] = {"kind": kind, "reason": reason, **details}
        self.write(force=True)
        (log.error if kind == "failures" else log.warning)("%s", reason)
        return reason

    def wall_time(self) -> float:
        """The sweep's own wall-clock seconds since it started, its earlier drivers' included."""
        now = time.monotonic() - self._wall_start if self._wall_start is not None else 0.0
        return self._wall_before + now

    @property
    def sweep_dir(self) -> Path:
        return self.ledger.sweep_dir

    @sweep_dir.setter
    def sweep_dir(self, folder: Path) -> None:  # a resumed search continues in its original folder
        self.ledger.close()
        self.ledger = Ledger(Path(folder))

    @property
    def cells(self) -> list[dict[str, Any]]:
        """Every cell, by number (a copy of the list: change cells through put)."""
        return self.ledger.cells

    def put(self, cell: dict[str, Any]) -> None:
        self.ledger.put(cell)
        self.write()

    # -- before launching -------------------------------------------------------------
    def problems(self, overrides: Sequence[str]) -> list[str]:
        """Every problem of one cell's composed config, each prefixed with the cell."""
        if self.base is None:
            self.base = self.composer.compose(overrides)
        return [f"[{' '.join(overrides)}] {p}" for p in self.composer.check(overrides, self.hooks.cell_problems)]

    def check(self, batch: Sequence[Sequence[str]]) -> None:
        """Refuse the whole batch, listing every bad cell, before any job starts."""
        problems = problems_of(batch, self.problems)
        if problems:
            raise UserFacingError(str(ConfigError(problems)))

    def start(self, arguments: list[str], concurrent_jobs: int, spec: str | None = None,
              resumed: dict[str, Any] | None = None) -> None:
        """Tell local jobs how many share the CPUs, open the sweep's tracking through the hooks
        (`resumed`: the hooks' facts of the sweep being continued; None: a new sweep)."""
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        self._wall_start = time.monotonic()
        # subprocesses on this machine, side by side. Asked of the launcher rather than by isinstance:
        # Hydra's plugin scan may load the launcher's module a second time (another class object).
        if getattr(self.launcher, "_EXECUTOR", None) == "local":
            os.environ[CONCURRENT_JOBS_ENV] = str(concurrent_jobs)
        self.tracking, self.hooked = self.hooks.open_sweep(self.base or self.config, self.sweep_dir, arguments,
                                                           spec or " ".join(arguments), resumed)

    # -- as jobs start and end --------------------------------------------------------
    def plan(self, cells: Sequence[Sequence[str]]) -> None:
        """Every cell in the summary from the start, so status shows them and rerun finds them."""
        self.total = len(cells)
        for num, overrides in enumerate(cells):
            self.ledger.put({"num": num, "overrides": list(overrides), "status": CellStatus.PENDING,
                             "output_dir": str(self.sweep_dir / str(num))}, log=False)
        self.write(force=True)

    def submitted(self, num: int, overrides: Sequence[str], job: Any = None, **extra: Any) -> None:
        cell = {"num": num, "overrides": list(overrides), "status": CellStatus.SUBMITTED, "submitted_at": time.time(),
                "output_dir": str(self.sweep_dir / str(num)), **extra}
        if job is not None and hasattr(job, "paths"):
            cell.update(job_id=job.job_id, stdout=str(job.paths.stdout), stderr=str(job.paths.stderr),
                        submitit_folder=str(job.paths.folder))
        self.put(cell)

    def running(self, num: int, overrides: Sequence[str], **extra: Any) -> None:
        """A cell this process is about to train itself (Hydra's basic launcher): RUNNING at once."""
        before = {k: v for k, v in self.ledger.get(num).items() if k not in PAST_OUTCOME}  # a resumed cell's last try
        self.put({**before, "num": num, "overrides": list(overrides), "status": CellStatus.RUNNING,
                  "submitted_at": time.time(), "output_dir": str(self.sweep_dir / str(num)), **extra})
        self.write(force=True)

    def record(self, num: int, ret: JobReturn, info: dict[str, Any] | None = None, **extra: Any) -> dict:
        """A cell's outcome, written at once and logged as one line (the sweep's live report)."""
        before = self.ledger.get(num)
        cell = cell_of(num, ret, info or {}, self.sweep_dir, self.metric)
        cell.update(extra)
        if cell.get("elapsed_s") is None and before.get("submitted_at"):
            cell["elapsed_s"] = round(time.time() - before["submitted_at"], 1)
        cell = {**before, **cell}
        self.put(cell)
        if self.retention is not None:
            self.retention.ended(cell)
        log.info("[%d/%s ended]%s", self.ledger.ended_towards_total, self.total or "?", format_cell(cell))
        return cell

    def cancel_unstarted(self, num: int, overrides: Sequence[str], reason: str, **extra: Any) -> None:
        self.put({"num": num, "overrides": list(overrides), "status": CellStatus.CANCELLED, "objective": None,
                  "error": f"not started: {reason}", "output_dir": str(self.sweep_dir / str(num)),
                  "cancelled_by_sweep": True, **extra})

    def cancel_rest(self, pool: Any, pending: Sequence[tuple[int, list[str]]], reason: str,
                    running: bool = True) -> list[JobReturn]:
        """The sweep stopped early: cancel the unstarted cells and, with `running`, the running ones
        (waiting for each to end). Cells a budget stopped are marked so (not failures: a resume runs them)."""
        extra = {"stopped_by": "budget"} if self.stop_kind == "budget" else {}
        returns = []
        for num, ret, info in pool.cancel_all() if running else []:
            self.record(num, ret, info, error=f"cancelled: {reason}", cancelled_by_sweep=True, **extra)
            returns.append(ret)
        for num, overrides in pending:
            self.cancel_unstarted(num, overrides, reason, **extra)
        return returns

    def facts(self) -> dict[str, Any]:
        cost = self.ledger.hours.result()  # the cells' compute hours so far
        wall = {"wall_time_s": round(self.wall_time(), 1)} if self._wall_start is not None or self._wall_before else {}
        return {"sweep_dir": str(self.sweep_dir), "kind": self.kind, **self.hooked, "tracking": self.tracking,
                "total": self.total, "metric": self.metric, **({"cost": cost} if cost else {}), **wall,
                **self._facts}

    def write(self, force: bool = False) -> None:
        """The summary file (throttled: the event log has every change at once; `force` now)."""
        self.ledger.write(self.facts(), force)

    def idle(self) -> None:
        """Called while waiting for jobs: the summary catches up with the event log."""
        self.ledger.flush_due(self.facts())

    def interrupt(self, pool: Any, continue_hint: str, on_ended: Any = None) -> None:
        """Ctrl-C (seg58/sweep/interrupt.py): the running cells interrupted and recorded INTERRUPTED,
        their runs and the sweep's closed as KILLED, the summary written, one line logged; raises SweepInterrupted.
        `on_ended(num, ret, info)` records each interrupted cell instead (a search tells its study)."""
        why = "interrupted (Ctrl-C)"
        for num, ret, info in pool.cancel_all(state=CellStatus.INTERRUPTED):
            if on_ended is not None:
                on_ended(num, ret, info)
            else:
                self.record(num, ret, info, error=why)
        for c in self.cells:
            if c["status"] == CellStatus.RUNNING:  # trained in this process: its training closed its run
                self.ledger.put({**c, "status": CellStatus.INTERRUPTED, "objective": None, "error": why})
        self._close_lost_runs()
        stopped = sum(c["status"] == CellStatus.INTERRUPTED for c in self.cells)
        waiting = sum(c["status"] in LIVE_STATES for c in self.cells)
        self._facts["interrupted"] = f"{why} at {time.strftime('%Y-%m-%d %H:%M:%S')}: {stopped} running cell(s) " \
                                    f"stopped, {waiting} not started"
        self.write(force=True)
        self.ledger.close()
        self.hooks.interrupt_sweep(self.tracking, self.hooked, self.sweep_dir)
        log.warning("%s; continue it in the same folder: %s", self._facts["interrupted"], continue_hint)
        raise SweepInterrupted(self._facts["interrupted"])

    # -- at the end -------------------------------------------------------------------
    def finish(self, rerun_hint: str, fail: bool | None = None, brief: bool = False) -> None:
        """Close lost runs, write the summary, publish the leaderboard; raise if any cell failed
        (or as `fail` says: a search fails only when no trial completed). `brief`: the error names
        the first failure only, the others being in the summary logged just before (a search, as
        hydra-optuna-sweeper reports to stdout and re-raises the first). Idempotent."""
        self._close_lost_runs()
        self._facts["finished"] = True
        if self.retention is not None and self.retention.freed:  # this driver's; a resume adds its own
            self._facts["checkpoints_freed_bytes"] = self.retention.freed + self.fact("checkpoints_freed_bytes", 0)
        cv = cv_table(self.cells, self.hooks.fold_key) if self.hooks.fold_key else []
        if cv:
            self._facts["cross_validation"] = cv
        self.write(force=True)
        self.ledger.close()
        cells = sorted(self.cells, key=lambda c: c["num"])
        log.info("sweep summary (%s):\n%s", self.sweep_dir / SUMMARY_FILE, format_summary(cells))
        if self.ledger.hours.measured:
            log.info("%s", format_spent(self.ledger.hours.result()))
        if self.retention is not None and self.retention.freed:
            log.info("checkpoints: %s freed (hydra.sweeper.keep_checkpoints=%s)", format_bytes(self.retention.freed),
                     self.retention.keep)
        if cv:
            log.info("%s", format_cv(cv, self.metric))
        unrun = [c for c in cells if c.get("stopped_by") == "budget"]
        if self.stop_kind == "budget":
            log.warning("%s; %d cell(s) not run or cut short (CANCELLED): %s and a new budget (the total)",
                        self.stopped, len(unrun), rerun_hint.split(", or ")[0])
        failed = [c for c in cells if c["status"] not in OK_STATES and c.get("stopped_by") != "budget"]
        broken = bool(failed) if fail is None else fail
        self.hooks.close_sweep(self.tracking, self.hooked, broken, self.sweep_dir)
        if broken and brief:
            first = f"\nthe first: #{failed[0]['num']} {failed[0].get('error') or failed[0]['status']}" \
                if self.stopped and failed else ""
            why = f"{self.stopped}\nno trial completed" if self.stop_kind == "budget" else \
                self.stopped or "no trial completed"
            raise UserFacingError(f"{why}{first}\n{len(failed) + len(unrun)} of {len(cells)} "
                                  f"trials did not complete (listed above, and in {self.sweep_dir / SUMMARY_FILE})\n"
                                  f"{rerun_hint}")
        if broken:
            why = f"{self.stopped}\n" if self.stopped else ""
            raise UserFacingError(f"{why}{len(failed)} of {len(cells)} sweep jobs did not complete:\n"
                                  f"{format_summary(failed)}\n{rerun_hint}")

    def _close_lost_runs(self) -> None:
        """Jobs that ended without a result (cancelled, killed) never closed their MLflow run."""
        for c in self.cells:
            if c["status"] not in (*OK_STATES, CellStatus.FAILED):
                run_id = self.close_lost_run(Path(c["output_dir"]), c["status"]) or c.get("mlflow_run_id")
                if run_id != c.get("mlflow_run_id"):
                    self.ledger.put({**c, "mlflow_run_id": run_id})

    def close_lost_run(self, job_dir: Path, state: str) -> str | None:
        return self.hooks.close_lost_run(self.tracking, job_dir, state)


def use_sweep_dir(config: Any, folder: Path) -> None:
    """A resumed sweep's jobs go to its original folder (their numbers continue there): every
    job's config is recomposed with the master's hydra overrides, so the folder goes there."""
    from omegaconf import read_write

    with read_write(config):
        config.hydra.sweep.dir = str(folder)
        config.hydra.overrides.hydra.append(f"hydra.sweep.dir={folder}")


def sweep_kind(folder: Path) -> str | None:
    """grid or search, as the folder's summary says; None when it has none."""
    import json

    summary = Path(folder) / SUMMARY_FILE
    return json.loads(summary.read_text()).get("kind") if summary.is_file() else None


def unfinished_cells(sweep_dir: Path) -> list[list[str]]:
    if not (sweep_dir / SUMMARY_FILE).is_file():
        raise UserFacingError(f"hydra.sweeper.rerun={sweep_dir}: no {SUMMARY_FILE} there (not a seg58 sweep?)")
    return [c["overrides"] for c in Ledger.read(sweep_dir)[0].cells if c["status"] not in OK_STATES]
