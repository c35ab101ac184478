"""Search efficiency, measured: the same search space and sampler seed (RandomSampler, so both
arms try the same configurations) with and without pruning. Prints total epochs trained, wall
time and the best val mIoU found by each arm (BENCHMARKS.md, "Search efficiency").

    python scripts/search_efficiency.py [--trials 12] [--epochs 8] [extra overrides ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARMS = {
    "no pruning": ["hydra.sweeper.pruner=null"],
    "median pruner": ["hydra.sweeper.pruner._target_=optuna.pruners.MedianPruner",
                      "hydra.sweeper.pruner.n_startup_trials=3", "hydra.sweeper.pruner.n_warmup_steps=1"],
    "successive halving": ["hydra.sweeper.pruner._target_=optuna.pruners.SuccessiveHalvingPruner",
                           "~hydra.sweeper.pruner.n_startup_trials", "~hydra.sweeper.pruner.n_warmup_steps",
                           "+hydra.sweeper.pruner.min_resource=1", "+hydra.sweeper.pruner.reduction_factor=3"],
}


def run_arm(folder: Path, trials: int, epochs: int, extra: list[str], arm: list[str]) -> dict:
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "seg58", "-m", "experiment=smoke", "search=smoke", "tracking=none",
               f"hydra.sweeper.n_trials={trials}", f"trainer.epochs={epochs}",
               "hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler", "hydra.sweeper.sampler.seed=0",
               "trainer.visuals=0", *arm, *extra]
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "SEG58_CACHE_DIR": str(folder.parent / "cache")})
    wall = time.perf_counter() - start
    (summary,) = folder.glob("multirun/*/*/sweep_summary.json")
    cells = json.loads(summary.read_text())["cells"]
    return {"trials": len(cells), "epochs": sum(c.get("epochs_trained") or 0 for c in cells),
            "pruned": sum(c["status"] == "PRUNED" for c in cells), "wall_s": wall,
            "best": max((c["objective"] for c in cells if c["objective"] is not None), default=float("nan"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("overrides", nargs="*", help="extra overrides for both arms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seg58-search-eff-") as tmp:
        results = {name: run_arm(Path(tmp) / name.replace(" ", "_"), args.trials, args.epochs, args.overrides, arm)
                   for name, arm in ARMS.items()}
    base = results["no pruning"]
    print(f"{args.trials} trials x up to {args.epochs} epochs, RandomSampler(seed=0), search=smoke space")
    print("| arm | trials | pruned | epochs trained | wall time | best val mIoU |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['trials']} | {r['pruned']} | {r['epochs']} ({r['epochs'] / base['epochs']:.2f}x) | "
              f"{r['wall_s']:.0f} s ({r['wall_s'] / base['wall_s']:.2f}x) | {r['best']:.4f} |")
    for name, r in list(results.items())[1:]:
        print(f"{name}: {r['epochs'] / base['epochs']:.2f}x the epochs, best mIoU gap (unpruned - pruned) "
              f"{base['best'] - r['best']:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
