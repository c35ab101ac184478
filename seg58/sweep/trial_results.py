"""What a search's study and its book learn from the trials: why a trial gave no objective, the
trials a crashed sweep left running (failed, retried), and the best trial or Pareto front at the end.
Functions of the study and the book, apart from the ask/tell loop in search.py; same imports as the
rest of the sweep layer (Optuna, the book; no torch, no MLflow)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn

from seg58.base.names import RESULTS_FILE
from seg58.base.status import CellStatus
from seg58.sweep.book import SweepBook

log = logging.getLogger(__name__)


def no_objective(ret: JobReturn, metric: Any) -> str:
    """Why a trial that completed gives the study no objective (the cell's error line)."""
    value = ret._return_value
    if isinstance(metric, list):
        missing = [m for m in metric if not isinstance(value, dict) or m not in value]
        return (f"the task's result has no {', '.join(map(repr, missing))} (hydra.sweeper.metric)" if missing
                else f"no finite value of every one of {metric}")
    if metric is None:
        return f"the task returned {type(value).__name__}, not a number (name a key with hydra.sweeper.metric)"
    if isinstance(value, dict) and metric not in value:
        return f"the task's result has no {metric!r} (hydra.sweeper.metric); keys: {', '.join(map(str, value))}"
    return f"no finite {metric} (NaN trial)"


def retry_interrupted(study: Any, book: SweepBook) -> None:
    """Trials left RUNNING by a crashed sweep: FAIL (interrupted), their runs closed, and
    their parameters enqueued so they are tried again."""
    from optuna.trial import TrialState

    interrupted = list(study.user_attrs.get("interrupted", []))
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        interrupted.append(t.number)
        study.set_user_attr("interrupted", interrupted)
        study.enqueue_trial(t.params, skip_if_exists=False)  # study.ask() hands these out first
        run_dir = book.sweep_dir / str(t.number)
        book.close_lost_run(run_dir, CellStatus.INTERRUPTED)
        book.put({"num": t.number, "overrides": [], "status": CellStatus.INTERRUPTED, "objective": None,
                  "params": t.params, "error": "the sweep stopped while it ran; retried",
                  "output_dir": str(run_dir)})
        log.info("trial #%d was running when the sweep stopped: marked FAIL, retried", t.number)


def publish_results(study: Any, book: SweepBook, metric: Any, direction: Any) -> None:
    """The best trial (or a multi-objective study's Pareto front) into the summary, the log and tracking."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if done and len(study.directions) > 1:
        front = [{"trial": t.number, "values": t.values, "params": t.params}
                 for t in sorted(study.best_trials, key=lambda t: t.number)]
        book.note(pareto_front=front)
        log.info("Pareto front (%s, %s): %d trial(s)\n%s", metric, direction, len(front),
                 "\n".join(f"  #{p['trial']} {p['values']} {p['params']}" for p in front))
    elif done:
        best = study.best_trial
        prior = best.user_attrs.get("warm_start")  # an earlier search's trial, not run by this one
        book.note(best_trial=best.number, best_value=best.value, best_params=best.params,
                  **({"best_from_warm_start": prior} if prior else {}))
        log.info("best trial #%d: %s=%.4f with %s%s", best.number, metric or "objective", best.value,
                 best.params, f" (warm start: {prior}, not run by this search)" if prior else "")
    if done:
        write_optimization_results(study, book.sweep_dir)
        book.hooks.publish_study(book.tracking, book.hooked, study)


def write_optimization_results(study: Any, folder: Path) -> None:
    """hydra-optuna-sweeper's result file, the same keys and values (tools read it and check its
    `name`): the best trial's params and value, or a multi-objective study's Pareto solutions."""
    from omegaconf import OmegaConf

    if len(study.directions) > 1:
        results = {"name": "optuna", "solutions": [{"params": t.params, "values": t.values} for t in study.best_trials]}
    else:
        results = {"name": "optuna", "best_params": study.best_trial.params, "best_value": study.best_trial.value}
    OmegaConf.save(OmegaConf.create(results), Path(folder) / RESULTS_FILE)
