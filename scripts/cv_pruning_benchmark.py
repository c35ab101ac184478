"""Folds in a search, pruned by significance: what Optuna's WilcoxonPruner saves against running
every fold of every trial. A tabular benchmark, as scripts/pruner_benchmark.py is:

1. record: a real seg58 grid sweep runs a leave-one-material-out cross-validation of every
   configuration (learning rates from too slow to diverging x two losses) on the synthetic data
   (5 materials: 5 folds), one cell per fold; each fold's best val mIoU is kept.
2. replay: each arm runs a real Optuna ask/tell search of --trials trials with seg58's TPE sampler,
   --seeds seeds each; a trial reports its recorded folds in the per-trial shuffled order seg58's
   cross_validate uses (step = the fold's index), and stops when the pruner says so. The objective
   is the mean over folds; a configuration is never run twice.

Prints, per arm, the median [range] over seeds of the folds trained (and their share of every fold
of every trial the search ran), the best mean val mIoU found, and its gap to the exhaustive best
(BENCHMARKS.md, "Folds in a search").

    python scripts/cv_pruning_benchmark.py                    # record (minutes) + replay (seconds)
    python scripts/cv_pruning_benchmark.py --folds folds.json  # replay recorded folds again
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import optuna

LRS = ["1e-05", "0.0001", "0.0003", "0.001", "0.003", "0.01", "0.03", "0.3"]
LOSSES = ["dice", "dice_ce"]
ARMS = {
    "every fold of every trial (no pruning)": lambda: optuna.pruners.NopPruner(),
    "WilcoxonPruner (p 0.1, 2 startup folds; hydra/sweeper/pruner=wilcoxon)":
        lambda: optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2),
    "WilcoxonPruner (p 0.2, 2 startup folds)":
        lambda: optuna.pruners.WilcoxonPruner(p_threshold=0.2, n_startup_steps=2),
}


def record(epochs: int, images: int, out: Path) -> dict[str, dict[str, float]]:
    """{"lr|loss": {fold: best val mIoU}} from one grid sweep with one cell per fold."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "seg58", "-m", "experiment=smoke", "tracking=none", "trainer.visuals=0",
                   "trainer.limit_train_batches=null", "trainer.limit_val_batches=null", f"trainer.epochs={epochs}",
                   f"data.synthetic.n_images={images}", f"optim.lr={','.join(LRS)}", f"loss={','.join(LOSSES)}",
                   "data.split=leave_one_material_out", "data.split_holdout=all",
                   "trainer.nonfinite=skip", f"hydra.sweep.dir={tmp}/sweep"]
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "SEG58_CACHE_DIR": str(Path(tmp) / "cache")})
        summary = json.loads((Path(tmp) / "sweep" / "sweep_summary.json").read_text())
    folds: dict[str, dict[str, float]] = {}
    for c in summary["cells"]:
        o = dict(x.split("=", 1) for x in c["overrides"])
        folds.setdefault(f"{o['optim.lr']}|{o['loss']}", {})[o["data.split_holdout"].strip("'")] = \
            c["objective"] or 0.0
    out.write_text(json.dumps(folds, indent=1))
    return folds


def replay(folds: dict[str, dict[str, float]], pruner: optuna.pruners.BasePruner, seed: int, trials: int) -> dict:
    study = optuna.create_study(direction="maximize", pruner=pruner, sampler=optuna.samplers.TPESampler(seed=seed))
    space = {"lr": optuna.distributions.CategoricalDistribution(LRS),
             "loss": optuna.distributions.CategoricalDistribution(LOSSES)}
    names = sorted(next(iter(folds.values())))
    tried, used, run, best = set(), 0, 0, 0.0
    for _ in range(trials * 20):
        if len(tried) == min(trials, len(folds)):
            break
        trial = study.ask(space)
        key = f"{trial.params['lr']}|{trial.params['loss']}"
        if key in tried:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        tried.add(key)
        order = list(range(len(names)))
        random.Random(trial.number).shuffle(order)  # as seg58/commands/cross_validate.py
        scores, pruned = [], False
        run += len(names)
        for done, i in enumerate(order, 1):
            scores.append(folds[key][names[i]])
            used += 1
            trial.report(scores[-1], i)
            if done < len(order) and trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, statistics.fmean(scores))
            best = max(best, statistics.fmean(scores))
    return {"used": used, "all": run, "best": best}


def spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}..{format(max(values), fmt)}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=40, help="synthetic images (5 materials)")
    parser.add_argument("--trials", type=int, default=10, help="trials per search (16 configurations)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--folds", type=Path, default=Path("cv_folds.json"),
                        help="recorded folds: read when the file exists, else recorded into it")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    folds = json.loads(args.folds.read_text()) if args.folds.is_file() else \
        record(args.epochs, args.images, args.folds)
    means = {k: statistics.fmean(v.values()) for k, v in folds.items()}
    target = max(means.values())
    print(f"exhaustive: {len(folds)} configurations x {len(next(iter(folds.values())))} folds, best mean val mIoU "
          f"{target:.4f} ({max(means, key=means.get)})")
    print("| arm | folds trained (share of every fold of its trials) | best mean val mIoU | gap to exhaustive best |")
    print("|---|---|---|---|")
    for name, make in ARMS.items():
        runs = [replay(folds, make(), seed, args.trials) for seed in range(args.seeds)]
        print(f"| {name} | {spread([r['used'] for r in runs], '.0f')} "
              f"({spread([r['used'] / r['all'] for r in runs], '.0%')}) | {spread([r['best'] for r in runs], '.4f')} | "
              f"{spread([target - r['best'] for r in runs], '.4f')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
