"""A stub Hydra launcher for scripts/sweep_overhead_benchmark.py only (on sys.path there, nowhere
else): `hydra/launcher=instant` cells end at once with an objective of 0.5 (no process, no
training, no per-job composition), through the asynchronous API seg58's sweeper pool uses with its
submitit launchers. What remains to measure is the sweeper itself."""

from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher


class InstantJob:
    def __init__(self, num: int, overrides: list) -> None:
        self.num, self.overrides, self.job_id = num, overrides, f"instant_{num}"

    def done(self) -> bool:
        return True


class InstantLauncher(Launcher):
    def __init__(self, **_: Any) -> None:
        self.config = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.config = config

    def capacity(self) -> Any:
        return None

    def submit(self, job_overrides: Any, initial_job_idx: int) -> list:
        return [InstantJob(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]

    def collect(self, job: InstantJob, overrides: Any) -> tuple:
        return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=0.5), \
            {"state": "COMPLETED"}

    def cancel(self, job: InstantJob) -> None:
        pass

    def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:
        return [self.collect(j, j.overrides)[0] for j in self.submit(job_overrides, initial_job_idx)]


ConfigStore.instance().store(group="hydra/launcher", name="instant", provider="seg58-benchmark",
                             node={"_target_": "hydra_plugins.seg58_instant_launcher.InstantLauncher"})
