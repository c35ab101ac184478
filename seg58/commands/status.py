"""`seg58 status <sweep dir> [--watch S]`: the cells of a sweep, live (seg58/sweep/status.py)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from seg58.commands.sweep_hooks import SegmentationSweepHooks
from seg58.sweep.status import require_sweep, status_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 status", description="the cells of a sweep, live")
    parser.add_argument("sweep_dir", type=Path, help="multirun/<date>/<time>")
    parser.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until the sweep ends")
    args = parser.parse_args(argv)
    require_sweep(args.sweep_dir)
    while True:
        table = status_table(args.sweep_dir, SegmentationSweepHooks())
        print(table, flush=True)
        if not args.watch or "\nfinished" in table:
            return 0
        time.sleep(args.watch)
        print()
