"""Watch a sweep while it runs and finish it afterwards, from any shell, for attached and detached
sweeps, grid and search alike (the `seg58 status` and `seg58 collect` commands).

status: one line per cell: scheduler state (sacct/squeue), steps reached, latest and best
metric (from the app's SweepHooks.progress), elapsed time. collect: once the sweep's driver has ended, records
every cell it did not (a driver that was killed or timed out), closes lost MLflow runs and the
parent run, and publishes the leaderboard, as the attached sweep does at its end. Idempotent."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from seg58.base.errors import UsageError
from seg58.base.names import DRIVER_FILE, SUMMARY_FILE
from seg58.base.status import CellStatus
from seg58.config.user_errors import UserFacingError
from seg58.sweep.accounting import billed_hours
from seg58.sweep.book import LIVE_STATES, OK_STATES, SweepBook
from seg58.sweep.cells import duration, format_spent, spent
from seg58.sweep.detach import load_driver
from seg58.sweep.hooks import SweepHooks
from seg58.sweep.launchers import collect_job
from seg58.sweep.lock import DriverLock
from seg58.sweep.retention import Retention, disk_use, format_bytes, sweep_setting

STILL_RUNNING_EXIT = 3
QUERY_ENDED_UP_TO = 100  # sweeps larger than this show their ended cells from the summary alone


def scheduler_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{job id: (state, elapsed)} from SLURM accounting, else the queue; {} without SLURM."""
    if not job_ids:
        return {}
    queries = (["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", "JobID,State,Elapsed"],
               ["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%T|%M"])
    for command in queries:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        states = {}
        for line in out.splitlines():
            parts = line.split("|")
            if len(parts) == 3:
                states[parts[0]] = (parts[1].split()[0], parts[2])
        if states:
            return states
    return {}


def status_table(sweep_dir: Path, hooks: SweepHooks | None = None) -> str:
    driver = load_driver(sweep_dir)
    summary = sweep_dir / SUMMARY_FILE
    lines = [f"sweep {sweep_dir}"]
    ids = [driver["job_id"]] if driver else []
    book = SweepBook.load(sweep_dir, hooks) if summary.is_file() else None
    cells = sorted(book.cells, key=lambda c: c["num"]) if book else []
    states = scheduler_states(ids + [c["job_id"] for c in cells if c.get("job_id") and c.get("executor") != "local"])
    if driver:
        state, elapsed = states.get(driver["job_id"], ("?", "-"))
        lines.append(f"driver: SLURM job {driver['job_id']} {state} ({elapsed})  log: {driver['stdout']}")
    if book is None:
        lines.append("no cells yet: the driver has not started the sweep")
        return "\n".join(lines)
    counts: dict[str, int] = {}
    rows = [("#", "state", "job", "epoch", book.metric or "objective", "best", "elapsed", "overrides")]
    for c in cells:
        state, elapsed = c["status"], duration(c.get("elapsed_s"))
        if c["status"] in LIVE_STATES and c.get("job_id") in states:
            state, elapsed = states[c["job_id"]]
        epochs, last, best, seconds = _progress(book, c, len(cells))
        if elapsed == "-" and seconds is not None:
            elapsed = duration(seconds)
        counts[state] = counts.get(state, 0) + 1
        rows.append((str(c["num"]), state, c.get("job_id") or "-", "-" if epochs is None else str(epochs),
                     _fmt(last), _fmt(best), elapsed, " ".join(c["overrides"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines.append(f"{book.kind}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                 + (f" of {book.total}" if book.total and book.kind == "search" else ""))
    if book.stopped:
        lines.append(f"stopped early: {book.stopped}")
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows]
    compute = format_spent(spent(cells), book.total or len(cells))
    if compute:  # spent so far, and the estimated total at the same rate per cell
        lines.append(compute)
    lines.append(f"disk: {format_bytes(disk_use(sweep_dir))} in {sweep_dir}")
    if book.fact("finished"):
        where = book.hooks.tracked_at(book.hooked)
        lines.append("finished" + (f": {where}" if where else ""))
    return "\n".join(lines)


def _progress(book: SweepBook, cell: dict[str, Any], n_cells: int) -> tuple:
    """(epochs, latest, best, seconds) of a cell: from the tracking store (one query per cell) while
    it runs, or for every cell of a sweep of up to QUERY_ENDED_UP_TO cells; from the summary for an
    ended cell of a larger sweep (`seg58 status` of 10,000 cells stays a matter of seconds)."""
    if cell["status"] in LIVE_STATES or n_cells <= QUERY_ENDED_UP_TO:
        return book.hooks.progress(book.tracking, cell, book.metric) or (None, None, None, None)
    objective = cell.get("objective")
    objective = objective[0] if isinstance(objective, list) else objective
    return cell.get("epochs_trained"), None, objective, cell.get("elapsed_s")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def require_sweep(sweep_dir: Path) -> None:
    if not (sweep_dir / SUMMARY_FILE).is_file() and load_driver(sweep_dir) is None:
        raise UsageError(f"{sweep_dir}: neither {SUMMARY_FILE} nor {DRIVER_FILE} there (not a seg58 sweep folder?)")


def _job(cell: dict[str, Any]) -> Any:
    import submitit

    cls = submitit.LocalJob if cell.get("executor") == "local" else submitit.SlurmJob
    return cls(folder=cell["submitit_folder"], job_id=cell["job_id"])


def _driver_done(driver: dict[str, Any]) -> bool:
    import submitit

    return submitit.SlurmJob(folder=driver["submitit_folder"], job_id=driver["job_id"]).done(force_check=True)


def collect(sweep_dir: Path, wait: bool, hooks: SweepHooks | None = None, poll_s: float = 5.0) -> int:
    """0: every cell completed; 1: some did not (listed); 3: still running (without --wait)."""
    driver = load_driver(sweep_dir)
    while driver and not _driver_done(driver):
        if not wait:
            print(status_table(sweep_dir, hooks))
            print(f"the sweep is still running (driver job {driver['job_id']}); `seg58 collect {sweep_dir} "
                  "--wait` blocks until it ends")
            return STILL_RUNNING_EXIT
        time.sleep(poll_s)
    with DriverLock(sweep_dir, "seg58 collect"):  # refused while an attached sweep drives the folder
        return _collect(sweep_dir, wait, hooks)


def _collect(sweep_dir: Path, wait: bool, hooks: SweepHooks | None) -> int:
    book = SweepBook.load(sweep_dir, hooks)  # the driver is gone: what it did not record, record now
    book.retention = Retention(sweep_setting(sweep_dir, "keep_checkpoints", 3),
                               sweep_setting(sweep_dir, "direction", "minimize"), book.hooks.checkpoints)
    book.retention.start(book.cells)  # the k best among what the driver recorded too
    for cell in [c for c in book.cells if c["status"] in LIVE_STATES]:
        if cell["status"] == CellStatus.RUNNING and not cell.get("job_id"):  # trained in the driver's own process
            book.put({**cell, "status": CellStatus.INTERRUPTED, "objective": None,
                      "error": "the sweep's process ended while it trained this cell"})
            continue
        if cell["status"] == CellStatus.PENDING or not cell.get("job_id"):
            book.cancel_unstarted(cell["num"], cell["overrides"], "the sweep ended before submitting it")
            continue
        job = _job(cell)
        if not wait and not job.done(force_check=True):
            print(status_table(sweep_dir, hooks))
            print(f"cell #{cell['num']} (job {cell['job_id']}) is still running; `seg58 collect {sweep_dir} --wait`")
            return STILL_RUNNING_EXIT
        ret, info = collect_job(job, cell["overrides"], cell.get("executor", "slurm"))
        if info["executor"] == "slurm":  # what accounting billed, as the driver would have recorded it
            info.update(billed_hours(cell["job_id"]))
        book.record(cell["num"], ret, info)
    command = book.hooks.rerun_command(None)
    hint = (f"continue it: {command} hydra.sweeper.resume={sweep_dir}" if book.kind == "search"
            else f"rerun only those: {command} hydra.sweeper.rerun={sweep_dir}")
    try:
        book.finish(hint, fail=None if book.kind == "grid" else not any(c["status"] in OK_STATES for c in book.cells))
    except UserFacingError as e:
        print(f"seg58 collect: {e}")
        return 1
    print(f"collected {len(book.cells)} cell(s) of {sweep_dir}: all completed"
          + (f"; leaderboard on {where}" if (where := book.hooks.tracked_at(book.hooked)) else ""))
    return 0
