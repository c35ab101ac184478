"""Does a warm start pay? Replayed over the recorded curves of scripts/pruner_benchmark.py (a real
seg58 grid sweep of 16 configurations; record them there first, or let this script do it):

- cold: a TPE search of --trials trials, seg58's way (no configuration run twice), seed s;
- warm: the same search, seed s, whose study first got the finished trials of an earlier search
  (--prior trials, seed s + 100) through seg58's own add_prior_trials, as
  hydra.sweeper.warm_start does.

For each seed: how many of its own trials each search needed to reach the cold search's final
best (the warm one counts what its prior trials already found: 0 when they had it). Prints the
median and range over --seeds seeds. The recorded space has 16 configurations, so the prior is
smaller than the 20 trials the issue names: 20 would be the exhaustive search itself.

    python scripts/warm_start_benchmark.py --curves pruner_curves.json   # replay only (seconds)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pruner_benchmark import LOSSES, LRS, record, spread

from seg58.sweep.samplers import ask_untried
from seg58.sweep.warm_start import add_prior_trials

SPACE = {"lr": optuna.distributions.CategoricalDistribution(LRS),
         "loss": optuna.distributions.CategoricalDistribution(LOSSES)}


def search(study: optuna.Study, curves: dict[str, list[float]], trials: int) -> list[float]:
    """Best val mIoU known after 0, 1, ... `trials` of this search's own trials (priors included)."""
    done = [t.value for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    best = [max(done, default=0.0)]
    for _ in range(trials):
        trial = ask_untried(study, SPACE)
        if trial is None:  # the space is exhausted
            best.append(best[-1])
            continue
        value = max(curves[f"{trial.params['lr']}|{trial.params['loss']}"])
        study.tell(trial, value)
        best.append(max(best[-1], value))
    return best


def reached(best: list[float], target: float) -> int:
    return next(i for i, b in enumerate(best) if b >= target - 1e-12) if best[-1] >= target - 1e-12 else len(best)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", type=Path, default=Path("pruner_curves.json"))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--prior", type=int, default=6, help="trials of the earlier search")
    parser.add_argument("--seeds", type=int, default=7)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves = json.loads(args.curves.read_text()) if args.curves.is_file() else \
        record(args.epochs, args.images, args.curves)
    cold_n, warm_n, added = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            cold = search(optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)),
                          curves, args.trials)
            storage = optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(f"{tmp}/prior{seed}.journal"))
            prior = optuna.create_study(storage=storage, study_name="prior", direction="maximize",
                                        sampler=optuna.samplers.TPESampler(seed=seed + 100))
            search(prior, curves, args.prior)
            warm_study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
            line = add_prior_trials(warm_study, SPACE, [], [f"{tmp}/prior{seed}.journal+prior"])
            added.append(int(line.split("added ")[1].split()[0]))
            warm = search(warm_study, curves, args.trials)
            cold_n.append(reached(cold, cold[-1]))
            warm_n.append(reached(warm, cold[-1]))
            print(f"seed {seed}: cold best {cold[-1]:.4f} after {cold_n[-1]} trial(s); warm (+{added[-1]} prior) "
                  f"reached it after {warm_n[-1]}, ended at {warm[-1]:.4f}")
    print(f"trials to reach the cold search's final best, median [min..max] over {args.seeds} seeds: "
          f"cold {spread(cold_n, '.1f')}, warm {spread(warm_n, '.1f')} (priors: {statistics.median(added):.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
