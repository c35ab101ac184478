"""`seg58 status <sweep dir>` and `seg58 collect <sweep dir>`: watch a sweep while it runs and
finish it afterwards, from any shell, for attached and detached sweeps, grid and search alike.

status: one line per cell: scheduler state (sacct/squeue), epoch reached, latest and best
validation mIoU (from MLflow), elapsed time. collect: once the sweep's driver has ended, records
every cell it did not (a driver that was killed or timed out), closes lost MLflow runs and the
parent run, and publishes the leaderboard, as the attached sweep does at its end. Idempotent."""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path
from typing import Any

from hydra_plugins.seg58_sweeper.bookkeeping import LIVE_STATES, OK_STATES, SUMMARY_FILE, SweepBook, duration
from hydra_plugins.seg58_sweeper.detach import load_driver
from hydra_plugins.seg58_sweeper.slurm_launcher import collect_job

STILL_RUNNING_EXIT = 3
METRIC = "val/miou"


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


def _run_progress(client: Any, cell: dict[str, Any]) -> tuple[int | None, float | None, float | None, float | None]:
    """(epochs logged, latest and best val mIoU, seconds since the run started) of a cell's run."""
    run_file = Path(cell.get("output_dir", "")) / "mlflow_run_id"
    if client is None or not run_file.is_file():
        return None, None, None, None
    try:
        run_id = run_file.read_text().strip()
        history = sorted(client.get_metric_history(run_id, METRIC), key=lambda m: m.step)
        info = client.get_run(run_id).info
    except Exception:
        return None, None, None, None
    end = (info.end_time or time.time() * 1000) / 1000
    values = [m.value for m in history]
    return (len(values), values[-1] if values else None, max(values) if values else None,
            end - info.start_time / 1000)


def status_table(sweep_dir: Path) -> str:
    driver = load_driver(sweep_dir)
    summary = sweep_dir / SUMMARY_FILE
    lines = [f"sweep {sweep_dir}"]
    ids = [driver["job_id"]] if driver else []
    book = SweepBook.load(sweep_dir) if summary.is_file() else None
    cells = sorted(book.cells, key=lambda c: c["num"]) if book else []
    states = scheduler_states(ids + [c["job_id"] for c in cells if c.get("job_id") and c.get("executor") != "local"])
    if driver:
        state, elapsed = states.get(driver["job_id"], ("?", "-"))
        lines.append(f"driver: SLURM job {driver['job_id']} {state} ({elapsed})  log: {driver['stdout']}")
    if book is None:
        lines.append("no cells yet: the driver has not started the sweep")
        return "\n".join(lines)
    client = None
    if book.tracking.get("enabled"):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(book.tracking["uri"])
    counts: dict[str, int] = {}
    rows = [("#", "state", "job", "epoch", "val mIoU", "best", "elapsed", "overrides")]
    for c in cells:
        state, elapsed = c["status"], duration(c.get("elapsed_s"))
        if c["status"] in LIVE_STATES and c.get("job_id") in states:
            state, elapsed = states[c["job_id"]]
        epochs, last, best, seconds = _run_progress(client, c)
        if elapsed == "-" and seconds is not None:
            elapsed = duration(seconds)
        counts[state] = counts.get(state, 0) + 1
        rows.append((str(c["num"]), state, c.get("job_id") or "-", "-" if epochs is None else str(epochs),
                     _fmt(last), _fmt(best), elapsed, " ".join(c["overrides"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines.append(f"{book.kind}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                 + (f" of {book.total}" if book.total and book.kind == "search" else ""))
    if book.extra.get("stopped"):
        lines.append(f"stopped early: {book.extra['stopped']}")
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows]
    if book.extra.get("finished"):
        lines.append("finished" + (f": MLflow parent run {book.parent}" if book.parent else ""))
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def status_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 status", description="the cells of a sweep, live")
    parser.add_argument("sweep_dir", type=Path, help="multirun/<date>/<time>")
    parser.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until the sweep ends")
    args = parser.parse_args(argv)
    _require_sweep(args.sweep_dir)
    while True:
        table = status_table(args.sweep_dir)
        print(table, flush=True)
        if not args.watch or "\nfinished" in table:
            return 0
        time.sleep(args.watch)
        print()


def _require_sweep(sweep_dir: Path) -> None:
    from seg58.errors import UsageError

    if not (sweep_dir / SUMMARY_FILE).is_file() and load_driver(sweep_dir) is None:
        raise UsageError(f"{sweep_dir}: neither {SUMMARY_FILE} nor driver.json there (not a seg58 sweep folder?)")


def _job(cell: dict[str, Any]) -> Any:
    import submitit

    cls = submitit.LocalJob if cell.get("executor") == "local" else submitit.SlurmJob
    return cls(folder=cell["submitit_folder"], job_id=cell["job_id"])


def _driver_done(driver: dict[str, Any]) -> bool:
    import submitit

    return submitit.SlurmJob(folder=driver["submitit_folder"], job_id=driver["job_id"]).done(force_check=True)


def collect(sweep_dir: Path, wait: bool, poll_s: float = 5.0) -> int:
    """0: every cell completed; 1: some did not (listed); 3: still running (without --wait)."""
    from seg58.user_errors import UserFacingError

    driver = load_driver(sweep_dir)
    while driver and not _driver_done(driver):
        if not wait:
            print(status_table(sweep_dir))
            print(f"the sweep is still running (driver job {driver['job_id']}); `seg58 collect {sweep_dir} "
                  "--wait` blocks until it ends")
            return STILL_RUNNING_EXIT
        time.sleep(poll_s)
    book = SweepBook.load(sweep_dir)  # the driver is gone: what it did not record, record now
    for cell in [c for c in book.cells if c["status"] in LIVE_STATES]:
        if cell["status"] == "PENDING" or not cell.get("job_id"):
            book.cancel_unstarted(cell["num"], cell["overrides"], "the sweep ended before submitting it")
            continue
        job = _job(cell)
        if not wait and not job.done(force_check=True):
            print(status_table(sweep_dir))
            print(f"cell #{cell['num']} (job {cell['job_id']}) is still running; `seg58 collect {sweep_dir} --wait`")
            return STILL_RUNNING_EXIT
        ret, info = collect_job(job, cell["overrides"], cell.get("executor", "slurm"))
        book.record(cell["num"], ret, info)
    hint = (f"continue it: python -m seg58 -m hydra.sweeper.resume={sweep_dir}" if book.kind == "search"
            else f"rerun only those: python -m seg58 -m launcher=slurm hydra.sweeper.rerun={sweep_dir}")
    try:
        book.finish(hint, fail=None if book.kind == "grid" else not any(c["status"] in OK_STATES for c in book.cells))
    except UserFacingError as e:
        print(f"seg58 collect: {e}")
        return 1
    print(f"collected {len(book.cells)} cell(s) of {sweep_dir}: all completed"
          + (f"; leaderboard on MLflow parent run {book.parent}" if book.parent else ""))
    return 0


def collect_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 collect", description="finish a sweep: summary, runs, leaderboard")
    parser.add_argument("sweep_dir", type=Path, help="multirun/<date>/<time>")
    parser.add_argument("--wait", action="store_true", help="block until the sweep's jobs have ended")
    args = parser.parse_args(argv)
    _require_sweep(args.sweep_dir)
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name in ("hydra_plugins", "seg58"):  # the summary and leaderboard, as the sweep prints them
        logging.getLogger(name).setLevel(logging.INFO)
    return collect(args.sweep_dir.resolve(), args.wait)
