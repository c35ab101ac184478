"""Can the pruners be told apart? A tabular benchmark (as HPO benchmarks such as NAS-Bench do):

1. record: a real seg58 grid sweep trains every configuration of a space whose members really
   differ -- learning rates from too slow to diverging, two losses -- for --epochs epochs on the
   synthetic data, and keeps each one's per-epoch val mIoU (from its last.pt). This is the
   exhaustive search; its best is the target.
2. replay: each arm (a pruner, with seg58's TPE sampler) runs a real Optuna ask/tell search of
   --trials trials over the same space, --seeds sampler seeds each; a trial "trains" by reporting
   its recorded curve epoch by epoch, and stops when the arm's pruner says so. As the sweeper does,
   a configuration already tried is not run again.

Prints, per arm, the median and range over seeds of the epochs used (and their share of the
exhaustive search's), the best val mIoU found, and its gap to the exhaustive best
(BENCHMARKS.md, "Pruners told apart"). The curves are real training runs; only the searches
over them are replayed, which is what makes several seeds per arm affordable on 2 cores.

    python scripts/pruner_benchmark.py                       # record (minutes) + replay (seconds)
    python scripts/pruner_benchmark.py --curves curves.json  # replay recorded curves again
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

LRS = ["1e-05", "0.0001", "0.0003", "0.001", "0.003", "0.01", "0.03", "0.3"]
LOSSES = ["dice", "dice_ce"]
# seg58's default pruner (conf/hydra/sweeper/segmentation.yaml) and the alternatives
ARMS = {
    "no pruning": lambda: optuna.pruners.NopPruner(),
    "median (the default: 3 startup trials, 1 warm-up epoch)": lambda: optuna.pruners.MedianPruner(3, 1),
    "successive halving (min_resource 1, reduction 3)": lambda: optuna.pruners.SuccessiveHalvingPruner(1, 3),
    "hyperband (min_resource 1, reduction 3)": lambda: optuna.pruners.HyperbandPruner(1, "auto", 3),
}


def record(epochs: int, images: int, out: Path) -> dict[str, list[float]]:
    """Train every configuration once (a seg58 grid sweep); {"lr|loss": val mIoU per epoch}."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "seg58", "-m", "experiment=smoke", "tracking=none", "trainer.visuals=0",
                   "trainer.limit_train_batches=null", "trainer.limit_val_batches=null", f"trainer.epochs={epochs}",
                   f"data.synthetic.n_images={images}", f"optim.lr={','.join(LRS)}", f"loss={','.join(LOSSES)}",
                   "trainer.nonfinite=skip", "hydra.sweeper.keep_checkpoints=null",  # the curves are in last.pt
                   f"hydra.sweep.dir={tmp}/sweep"]
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "SEG58_CACHE_DIR": str(Path(tmp) / "cache")})
        cells = json.loads((Path(tmp) / "sweep" / "sweep_summary.json").read_text())["cells"]
        curves = {}
        for c in cells:
            overrides = dict(o.split("=", 1) for o in c["overrides"])
            last = Path(c["output_dir"]) / "checkpoints" / "last.pt"
            history = torch.load(last, weights_only=True)["history"] if last.is_file() else []
            values = [h.get("val/miou", 0.0) for h in history]
            curves[f"{overrides['optim.lr']}|{overrides['loss']}"] = values + [0.0] * (epochs - len(values))
    out.write_text(json.dumps(curves, indent=1))
    return curves


def replay(curves: dict[str, list[float]], pruner: optuna.pruners.BasePruner, seed: int, trials: int) -> dict:
    """One search over the recorded curves: epochs used and best val mIoU of its finished trials."""
    study = optuna.create_study(direction="maximize", pruner=pruner, sampler=optuna.samplers.TPESampler(seed=seed))
    space = {"lr": optuna.distributions.CategoricalDistribution(LRS),
             "loss": optuna.distributions.CategoricalDistribution(LOSSES)}
    tried, epochs_used, best = set(), 0, 0.0
    for _ in range(trials * 20):
        if len(tried) == min(trials, len(curves)):
            break
        trial = study.ask(space)
        key = f"{trial.params['lr']}|{trial.params['loss']}"
        if key in tried:  # seg58 never runs a configuration twice
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        tried.add(key)
        curve, pruned = curves[key], False
        for epoch, value in enumerate(curve):
            epochs_used += 1
            trial.report(value, epoch)
            if trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, max(curve))
            best = max(best, max(curve))
    return {"epochs": epochs_used, "best": best}


def spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}..{format(max(values), fmt)}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--images", type=int, default=40, help="synthetic images (train + val)")
    parser.add_argument("--trials", type=int, default=8, help="trials per search (the grid has 16 configurations)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--curves", type=Path, default=Path("pruner_curves.json"),
                        help="recorded curves: read when the file exists, else recorded into it")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves = json.loads(args.curves.read_text()) if args.curves.is_file() else \
        record(args.epochs, args.images, args.curves)
    exhaustive_epochs = sum(len(c) for c in curves.values())
    target = max(max(c) for c in curves.values())
    print(f"exhaustive: {len(curves)} configurations x {len(next(iter(curves.values())))} epochs = "
          f"{exhaustive_epochs} epochs, best val mIoU {target:.4f}")
    print("| arm | epochs used (share of exhaustive) | best val mIoU | gap to exhaustive best |")
    print("|---|---|---|---|")
    for name, make in ARMS.items():
        runs = [replay(curves, make(), seed, args.trials) for seed in range(args.seeds)]
        epochs = [r["epochs"] for r in runs]
        shares = [e / exhaustive_epochs for e in epochs]
        bests = [r["best"] for r in runs]
        print(f"| {name} | {spread(epochs, '.0f')} ({spread(shares, '.0%')}) | {spread(bests, '.4f')} | "
              f"{spread([target - b for b in bests], '.4f')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
