"""`seg58 collect <sweep dir> [--wait]`: finish a sweep whose driver is gone: record its cells,
close lost MLflow runs and the parent run, publish the leaderboard (seg58/sweep/status.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from seg58.commands.sweep_hooks import SegmentationSweepHooks
from seg58.sweep.status import collect, require_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 collect", description="finish a sweep: summary, runs, leaderboard")
    parser.add_argument("sweep_dir", type=Path, help="multirun/<date>/<time>")
    parser.add_argument("--wait", action="store_true", help="block until the sweep's jobs have ended")
    args = parser.parse_args(argv)
    require_sweep(args.sweep_dir)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("seg58").setLevel(logging.INFO)  # the summary and leaderboard, as the sweep prints them
    return collect(args.sweep_dir.resolve(), args.wait, SegmentationSweepHooks())
