"""The running trial of a search, from inside any task function: report a value per step and
ask whether to stop (Optuna's pruning), wherever the job runs (in-process, a local subprocess,
a SLURM node). Outside a search `current_trial()` is None, so an app calls it unconditionally:

    trial = current_trial()
    for step in range(steps):
        value = train_one_step()
        if trial is not None:
            trial.report(value, step)
            if trial.should_prune():
                return {"loss": best, "stop": {"kind": "pruned", "epoch": step + 1}}
"""

from __future__ import annotations

import math
from typing import Any

from seg58.sweep.study import StudySpec


class TrialHandle:
    def __init__(self, spec: StudySpec, number: int):
        import optuna

        self.spec, self.number = spec, number
        storage = optuna.storages.get_storage(spec.storage_object())
        study = spec.load(storage)
        study_id = storage.get_study_id_from_name(spec.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self._trial = optuna.trial.Trial(study, trial_id)
        self.reported = set(storage.get_trial(trial_id).intermediate_values)  # steps of a job before a restart

    def report(self, value: float, step: int) -> None:
        """A non-finite value is not reported (Optuna would store it and the pruner compare with it);
        nor is anything in a multi-objective study, which Optuna can neither take reports for nor prune."""
        if self.multi_objective:
            return
        if math.isfinite(value) and step not in self.reported:
            self._trial.report(value, step)
            self.reported.add(step)

    def should_prune(self) -> bool:
        return False if self.multi_objective else self._trial.should_prune()

    @property
    def multi_objective(self) -> bool:
        return isinstance(self.spec.direction, list)

    @property
    def params(self) -> dict[str, Any]:
        return self._trial.params


def current_trial(number: int | None = None) -> TrialHandle | None:
    """The trial this job runs (its number is hydra.job.num), or None outside a search."""
    spec = StudySpec.from_env()
    if spec is None:
        return None
    if number is None:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return None
        number = int(HydraConfig.get().job.num)
    return TrialHandle(spec, number)
