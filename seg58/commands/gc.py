"""`seg58 gc <sweep dir> [--keep K] [--delete-failed-runs] [--dry-run]`: trim a finished sweep to
the rule hydra.sweeper.keep_checkpoints applies as a sweep goes (seg58/sweep/retention.py), on
disk and in MLflow: the k best completed cells keep their best checkpoint and MLflow Model, the
other completed, pruned and failed cells lose theirs (metrics, params and reports stay);
`--delete-failed-runs` moves the failed cells' runs to MLflow's trash with all their artifacts.
Interrupted and cancelled cells, which a resume continues, and every run a registered model
version comes from are left alone. Refuses while the sweep runs; prints the bytes freed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seg58.base.errors import UsageError
from seg58.base.names import RUN_ID_FILE
from seg58.base.status import CellStatus
from seg58.commands.sweep_hooks import SegmentationSweepHooks
from seg58.sweep.book import LIVE_STATES, SweepBook
from seg58.sweep.lock import refuse_if_driven
from seg58.sweep.retention import Retention, format_bytes, remove, sizes, sweep_setting
from seg58.sweep.status import require_sweep

DEFAULT_KEEP = 3


def _run_id(cell: dict[str, Any]) -> str | None:
    path = Path(cell["output_dir"]) / RUN_ID_FILE
    return path.read_text().strip() if path.is_file() else cell.get("mlflow_run_id")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 gc", description="free a finished sweep's checkpoints and models")
    parser.add_argument("sweep_dir", type=Path, help="multirun/<date>/<time>")
    parser.add_argument("--keep", type=int, default=None,
                        help="the k best completed cells keep theirs (default: the sweep's keep_checkpoints, or 3)")
    parser.add_argument("--delete-failed-runs", action="store_true", help="failed cells' MLflow runs to the trash")
    parser.add_argument("--dry-run", action="store_true", help="say what would be freed; delete nothing")
    parser.add_argument("--tracking-uri", default=None, help="the MLflow store (default: the sweep's)")
    args = parser.parse_args(argv)
    sweep_dir = args.sweep_dir.resolve()
    require_sweep(sweep_dir)
    refuse_if_driven(sweep_dir, "seg58 gc")
    hooks = SegmentationSweepHooks()
    book = SweepBook.load(sweep_dir, hooks)
    live = [c for c in book.cells if c["status"] in LIVE_STATES]
    if live:
        raise UsageError(f"seg58 gc: {sweep_dir} has {len(live)} cell(s) queued or running; wait for the sweep "
                         "to end (a driver that is gone: `seg58 collect` first)")
    keep = args.keep if args.keep is not None else sweep_setting(sweep_dir, "keep_checkpoints", DEFAULT_KEEP)
    if keep is None or keep < 0:
        raise UsageError(f"seg58 gc: --keep {keep}: 0 or more")
    direction = sweep_setting(sweep_dir, "direction", book.fact("direction") or "minimize")
    retention = Retention(keep, direction, hooks.checkpoints, remover=sizes if args.dry_run else remove)
    retention.start(book.cells)
    lines = [f"local checkpoints: {format_bytes(retention.freed)}"]
    lines += _trim_mlflow(book, retention.kept_best, args)
    print(("dry run, nothing deleted: would free\n  " if args.dry_run else "freed\n  ") + "\n  ".join(lines))
    return 0


def _trim_mlflow(book: SweepBook, kept: set[int], args: argparse.Namespace) -> list[str]:
    from seg58.tracking.cleanup import delete_run, registered_runs, trim_run

    uri = args.tracking_uri or book.tracking.get("uri")
    if not (args.tracking_uri or book.tracking.get("enabled")):
        return ["MLflow: the sweep was not tracked"]
    ended = (CellStatus.COMPLETED, CellStatus.PRUNED, CellStatus.FAILED)
    cells = [(c, _run_id(c)) for c in book.cells if c["status"] in ended and c["num"] not in kept]
    cells = [(c, r) for c, r in cells if r]
    registered = registered_runs(uri, [r for _, r in cells])
    trimmed = deleted = 0
    freed = {"trimmed": 0, "deleted": 0}
    for cell, run_id in cells:
        if run_id in registered:
            continue
        if cell["status"] == CellStatus.FAILED and args.delete_failed_runs:
            freed["deleted"] += delete_run(uri, run_id, args.dry_run)
            deleted += 1
        else:
            freed["trimmed"] += trim_run(uri, run_id, args.dry_run)
            trimmed += 1
    lines = [f"MLflow: {format_bytes(freed['trimmed'])} of checkpoints and models of {trimmed} run(s)"
             + (f"; {len(registered)} run(s) with a registered model left alone" if registered else "")]
    if args.delete_failed_runs:
        lines.append(f"MLflow: {deleted} failed run(s) deleted, {format_bytes(freed['deleted'])}")
    return lines
