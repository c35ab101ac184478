"""The Optuna study a search sweep shares with its trials.

The sweeper owns the study; a trial, in whatever process or SLURM node it runs, finds it through
SEG58_STUDY (storage, study name, pruner, metric) and its own trial number (hydra.job.num).
Optuna does not store the pruner in the study, so both sides build it from the same spec.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seg58.base.db_uri import with_installed_driver
from seg58.base.errors import UsageError
from seg58.base.names import STUDY_ENV
from seg58.base.secrets import mask

STORAGE_KEY = "hydra.sweeper.storage"


@dataclass(frozen=True)
class StudySpec:
    storage: str  # a journal file path, or an RDB URL
    study_name: str
    metric: Any = None  # the key of the task's returned dict that is the objective (None: a float); lists
    direction: Any = "minimize"  # ... with a list of directions: a multi-objective study
    pruner: dict[str, Any] | None = field(default=None)  # {"_target_": "optuna.pruners.X", ...}

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> StudySpec | None:
        raw = os.environ.get(STUDY_ENV)
        return cls(**json.loads(raw)) if raw else None

    def storage_object(self) -> Any:
        """A journal file (works on a shared filesystem across nodes) unless a URL is given; a
        database that cannot be used (no driver, unreachable, refusing) is one UsageError."""
        import optuna

        if "://" in self.storage:
            url = with_installed_driver(self.storage, STORAGE_KEY)
            try:
                return optuna.storages.RDBStorage(url)
            except ImportError as e:
                raise UsageError(f"{STORAGE_KEY}: {mask(url)}: {e}") from None
            except Exception as e:
                if not type(e).__module__.startswith("sqlalchemy"):
                    raise
                first = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
                raise UsageError(f"{STORAGE_KEY}: cannot use {mask(url)}: {mask(first)}") from None
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(Path(self.storage).resolve())))

    def make_pruner(self) -> Any:
        import warnings

        import optuna

        with warnings.catch_warnings():  # WilcoxonPruner is "experimental" in Optuna 5: said once, in the docs
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return instantiate_spec(self.pruner) if self.pruner else optuna.pruners.NopPruner()

    def load(self, storage: Any = None, sampler: Any = None) -> Any:
        """The study with this spec's pruner (Optuna does not store it); `sampler` for the
        sweeper's side (trials never sample)."""
        import optuna

        return optuna.load_study(study_name=self.study_name, storage=storage or self.storage_object(),
                                 pruner=self.make_pruner(), sampler=sampler)


def study_exists(storage: Any, name: str) -> bool:
    import optuna

    return name in {s.study_name for s in optuna.get_all_study_summaries(storage)}


def instantiate_spec(spec: dict[str, Any]) -> Any:
    """{"_target_": "optuna.samplers.TPESampler", "seed": 1} -> the object."""
    from hydra.utils import instantiate

    return instantiate(dict(spec))


def objective_of(history: list[dict[str, float]], metric: str, direction: str) -> float:
    """The best value of `metric` over the epochs trained (NaN when there is none)."""
    values = [m[metric] for m in history if metric in m and math.isfinite(m[metric])]
    if not values:
        return math.nan
    return max(values) if direction == "maximize" else min(values)
