"""Optuna at the edge: the study a search sweep shares with its trials, and the trial-side
callback that reports each epoch and stops a run the pruner gives up on.

The sweeper (hydra_plugins/seg58_sweeper/search_sweeper.py) owns the study; a trial, in
whatever process or SLURM node it runs, finds it through SEG58_STUDY (storage, study name,
pruner, metric) and its own trial number (hydra.job.num). Optuna does not store the pruner in
the study, so both sides build it from the same spec.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seg58.callbacks import Callback

log = logging.getLogger(__name__)

STUDY_ENV = "SEG58_STUDY"
JOURNAL_FILE = "optuna.journal"


@dataclass(frozen=True)
class StudySpec:
    storage: str  # a journal file path, or an RDB URL
    study_name: str
    metric: str = "val/miou"
    direction: str = "maximize"
    pruner: dict[str, Any] | None = field(default=None)  # {"_target_": "optuna.pruners.X", ...}

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> StudySpec | None:
        raw = os.environ.get(STUDY_ENV)
        return cls(**json.loads(raw)) if raw else None

    def storage_object(self) -> Any:
        """A journal file (works on a shared filesystem across nodes) unless a URL is given."""
        import optuna

        if "://" in self.storage:
            return self.storage
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(Path(self.storage).resolve())))

    def make_pruner(self) -> Any:
        import optuna

        return instantiate_spec(self.pruner) if self.pruner else optuna.pruners.NopPruner()

    def load(self, storage: Any = None, sampler: Any = None) -> Any:
        """The study with this spec's pruner (Optuna does not store it); `sampler` for the
        sweeper's side (trials never sample)."""
        import optuna

        return optuna.load_study(study_name=self.study_name, storage=storage or self.storage_object(),
                                 pruner=self.make_pruner(), sampler=sampler)


def instantiate_spec(spec: dict[str, Any]) -> Any:
    """{"_target_": "optuna.samplers.TPESampler", "seed": 1} -> the object (no Hydra needed)."""
    import importlib

    spec = dict(spec)
    module, _, name = spec.pop("_target_").rpartition(".")
    return getattr(importlib.import_module(module), name)(**spec)


def objective_of(history: list[dict[str, float]], metric: str, direction: str) -> float:
    """The best value of `metric` over the epochs trained (NaN when there is none)."""
    values = [m[metric] for m in history if metric in m and math.isfinite(m[metric])]
    if not values:
        return math.nan
    return max(values) if direction == "maximize" else min(values)


class TrialReporter(Callback):
    """Reports `metric` to the trial after every epoch; stops the run when the pruner says so.

    The run ends cleanly: its checkpoint and metrics stay, `trainer.stop_reason` says
    "pruned at epoch N", and the sweeper records the trial as PRUNED."""

    def __init__(self, spec: StudySpec, trial_number: int):
        self.spec, self.number = spec, trial_number
        self.trial: Any = None

    def on_fit_start(self, trainer: Any) -> None:
        import optuna

        storage = optuna.storages.get_storage(self.spec.storage_object())
        study = self.spec.load(storage)
        study_id = storage.get_study_id_from_name(self.spec.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
        self.trial = optuna.trial.Trial(study, trial_id)
        reported = set(storage.get_trial(trial_id).intermediate_values)
        for epoch, metrics in enumerate(trainer.history):  # a resumed run: epochs before the restart
            if epoch not in reported and math.isfinite(metrics.get(self.spec.metric, math.nan)):
                self.trial.report(metrics[self.spec.metric], epoch)

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.spec.metric, math.nan)
        if not math.isfinite(value):
            return
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            trainer.request_stop(f"pruned at epoch {epoch + 1}")
            trainer.meta["pruned_epoch"] = epoch + 1


def publish_plots(study: Any, uri: str | None, parent_run_id: str) -> list[str]:
    """Optimisation history and parameter importances (Optuna's own plots) on the sweep's run."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt
    from mlflow.tracking import MlflowClient
    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization import matplotlib as oplt

    from seg58.mlflow_store import resolve_uri

    warnings.filterwarnings("ignore", category=ExperimentalWarning)  # Optuna's matplotlib plots
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, plot in (("optimization_history", oplt.plot_optimization_history),
                           ("param_importances", oplt.plot_param_importances)):
            try:
                ax = plot(study)
            except Exception as e:  # importances need >= 2 finished trials with varied params
                log.info("search plot %s skipped: %s", name, e)
                continue
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(8, 4.5)
            fig.tight_layout()
            fig.savefig(Path(tmp) / f"{name}.png", dpi=110)
            plt.close(fig)
            written.append(f"search/{name}.png")
        if written:
            MlflowClient(resolve_uri(uri)).log_artifacts(parent_run_id, tmp, artifact_path="search")
    return written
