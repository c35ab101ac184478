"""submitit SLURM/local launchers that survive lost jobs.

hydra-submitit-launcher asks each job for its result in turn, and a job that ends without one
(scancel, node failure, OOM kill) raises there and takes the whole sweep down with it, leaving
the sibling jobs unreported. These launchers wait for every job and turn such a job into a
FAILED JobReturn, recording its SLURM id, state and log files for the sweep summary.

`launch` mirrors BaseSubmititLauncher.launch of hydra-submitit-launcher 1.2.x (executor set-up,
parameter prefixes, map_array of (overrides, sweep key, index, job id key, singleton state));
pyproject.toml pins that range: re-check this file before widening it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

log = logging.getLogger(__name__)


class _CollectingMixin:
    _EXECUTOR: str
    params: dict[str, Any]
    config: Any

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Hydra's interface: submit a batch, wait for every job, one JobReturn each."""
        jobs = self.submit(job_overrides, initial_job_idx)
        self.job_infos = []
        returns = []
        for job, overrides in zip(jobs, job_overrides, strict=True):
            ret, info = self.collect(job, overrides)
            self.job_infos.append(info)
            returns.append(ret)
        return returns

    def submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
        """Submit without waiting (the search sweeper polls `job.done()` and starts the next
        trial as soon as a slot frees); job i runs as hydra.job.num = initial_job_idx + i."""
        executor = self._executor()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        args = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            args.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*args, strict=True))
        log.info("submitted %s job(s): %s", self._EXECUTOR, ", ".join(j.job_id for j in jobs))
        return jobs

    @staticmethod
    def collect(job: Any, overrides: Sequence[str]) -> tuple[JobReturn, dict[str, Any]]:
        """The job's JobReturn (waiting for it), or a FAILED one when it ended without a result."""
        info = {"job_id": job.job_id, "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr)}
        try:
            ret = job.results()[0]
            info["state"] = "COMPLETED" if ret.status == JobStatus.COMPLETED else "FAILED"
        except Exception as e:  # no result: cancelled, killed, node failure, timeout
            info["state"] = _slurm_state(job)
            ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=e)
        return ret, info

    def _executor(self) -> Any:
        import submitit

        init = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            k if k in base else f"{self._EXECUTOR}_{k}": v
            for k, v in self.params.items() if k not in {"submitit_folder", "max_num_timeout"}
        })
        return executor


def _slurm_state(job: Any) -> str:
    try:
        return str(job.state).split()[0] or "UNKNOWN"
    except Exception:
        return "UNKNOWN"


class Seg58SlurmLauncher(_CollectingMixin, SlurmLauncher):
    pass


class Seg58LocalLauncher(_CollectingMixin, LocalLauncher):
    pass
