"""What seg58's submitit SLURM/local launchers add to hydra-submitit-launcher's (the launcher
classes Hydra discovers are thin subclasses in hydra_plugins/seg58_sweeper/launchers.py): they
survive lost jobs, submit without waiting, cancel, give each local job its own GPU, and (SLURM)
hand the whole sweep to a driver job.

hydra-submitit-launcher asks each job for its result in turn, and a job that ends without one
(scancel, node failure, OOM kill) raises there and takes the whole sweep down with it, leaving
the sibling jobs unreported. These launchers wait for every job and turn such a job into a
FAILED JobReturn, recording its SLURM id, state and log files for the sweep summary.

`submit` mirrors BaseSubmititLauncher.launch of hydra-submitit-launcher 1.2.x (executor set-up,
parameter prefixes, map_array of (overrides, sweep key, index, job id key, singleton state));
pyproject.toml pins that range: re-check this file before widening it.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from seg58.base.status import CellStatus
from seg58.sweep.gpus import GpuSlots, visible_gpus
from seg58.sweep.private_apis import inner_executor
from seg58.sweep.schema import OWN_LAUNCHER_KEYS

log = logging.getLogger(__name__)

OWN_KEYS = OWN_LAUNCHER_KEYS  # keys of seg58's launcher schemas (seg58/sweep/schema.py), never passed to submitit
# SLURM's defaults (slurm.conf(5)) when `scontrol show config` cannot be asked
SLURM_DEFAULTS = {"MaxArraySize": 1001, "MaxJobCount": 10000}


class SubmititJobs:
    """Submit, poll, collect and cancel submitit jobs; mixed into a hydra-submitit-launcher class."""

    _EXECUTOR: str
    params: dict[str, Any]
    config: Any

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Hydra's interface: submit a batch, wait for every job, one JobReturn each."""
        jobs = self.submit(job_overrides, initial_job_idx)
        return [self.collect(job, overrides)[0] for job, overrides in zip(jobs, job_overrides, strict=True)]

    def capacity(self) -> int | None:
        """Jobs this launcher runs at once (None: as many as are submitted; SLURM queues them)."""
        return None

    def submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
        """Submit without waiting (the sweeper polls `job.done()` and reports each job as it
        ends); job i runs as hydra.job.num = initial_job_idx + i."""

        executor = self._executor()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        args = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            args.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        with submission_env(slurm=self._EXECUTOR == "slurm"):
            jobs = self._map(executor, args)
        log.info("submitted %s job(s): %s", self._EXECUTOR, ", ".join(j.job_id for j in jobs))
        return jobs

    def _map(self, executor: Any, args: list[tuple]) -> list[Any]:
        return executor.map_array(self, *zip(*args, strict=True))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """In the job: the passwords the submitting process kept out of SLURM (submission_env)
        back into the environment, then hydra-submitit-launcher's job."""
        from seg58.base.job_credentials import load_job_credentials

        load_job_credentials()
        return super().__call__(*args, **kwargs)  # type: ignore[misc]

    def collect(self, job: Any, overrides: Sequence[str]) -> tuple[JobReturn, dict[str, Any]]:
        """The job's JobReturn (waiting for it), or a FAILED one when it ended without a result."""
        return collect_job(job, overrides, self._EXECUTOR)

    def cancel(self, jobs: Sequence[Any]) -> None:
        for job in jobs:
            job.cancel(check=False)

    def _executor(self, **overrides: Any) -> Any:
        import submitit

        params = {**self.params, **overrides}
        init = {"folder": params["submitit_folder"]}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            k if k in base else f"{self._EXECUTOR}_{k}": v
            for k, v in params.items() if k not in {"submitit_folder", "max_num_timeout", *OWN_KEYS}
        })
        return executor


@contextmanager
def submission_env(slurm: bool = True, handover: bool = False) -> Iterator[None]:
    """A driver job's own SLURM_* variables must not leak into the jobs it submits (submitit's
    clean_env), but SLURM_CONF says which cluster to talk to. SLURM stores a job's environment
    (slurmctld's state, `sacct --env-vars`): the passwords go to the jobs in a file of the user's
    instead (seg58/base/job_credentials.py; `handover`: the file outlives this process)."""
    import submitit

    from seg58.base.job_credentials import kept_out_of_jobs

    keep = {k: os.environ[k] for k in ("SLURM_CONF",) if k in os.environ}
    with submitit.helpers.clean_env(), kept_out_of_jobs(handover=handover) if slurm else nullcontext():
        os.environ.update(keep)
        yield


def collect_job(job: Any, overrides: Sequence[str], executor: str) -> tuple[JobReturn, dict[str, Any]]:
    """(JobReturn, facts for the summary) of a submitit job, waiting for it to end."""
    info = {"job_id": job.job_id, "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr),
            "executor": executor, "submitit_folder": str(job.paths.folder)}
    try:
        ret = job.results()[0]
        info["state"] = CellStatus.COMPLETED if ret.status == JobStatus.COMPLETED else CellStatus.FAILED
    except Exception as e:  # no result: cancelled, killed, node failure, timeout
        info["state"] = _slurm_state(job)
        ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=e)
    return ret, info


def _slurm_state(job: Any) -> str:
    try:
        state = str(job.state).split()[0] or "UNKNOWN"
    except Exception:
        return "UNKNOWN"
    return CellStatus.CANCELLED if state == "INTERRUPTED" else state  # a local job ended by a signal


class SlurmDriverJobs(SubmititJobs):
    """SLURM jobs, and the sweep itself as a driver job (hydra.launcher.detach=true).

    A grid larger than the cluster's MaxArraySize is submitted as several arrays (submitit submits
    one array per call and sbatch refuses a larger one), each throttled by array_parallelism
    (SLURM's `%`), and at most max_queued cells are queued at once (SLURM counts each array task
    as a job against MaxJobCount): the rest are submitted as queued ones end."""

    _limits: dict[str, int] | None = None

    def limits(self) -> dict[str, int]:
        """{MaxArraySize, MaxJobCount} of the cluster (`scontrol show config`), asked once."""
        if self._limits is None:
            self._limits = slurm_limits()
        return self._limits

    def array_size(self) -> int:
        """Cells per SLURM array: hydra.launcher.max_array_size, else the cluster's MaxArraySize."""
        return int(self.params.get("max_array_size") or self.limits()["MaxArraySize"])

    def capacity(self) -> int | None:
        """Cells queued at once: hydra.launcher.max_queued, else half the cluster's MaxJobCount
        (the queue is shared)."""
        return int(self.params.get("max_queued") or max(1, self.limits()["MaxJobCount"] // 2))

    def _map(self, executor: Any, args: list[tuple]) -> list[Any]:
        size, jobs = self.array_size(), []
        for start in range(0, len(args), size):
            chunk = args[start:start + size]
            jobs += executor.map_array(self, *zip(*chunk, strict=True))
            if len(args) > size:
                log.info("submitted cells #%d-#%d as SLURM array %s (at most %d per array)", chunk[0][2],
                         chunk[-1][2], jobs[-1].job_id.split("_")[0], size)
        return jobs

    def collect(self, job: Any, overrides: Sequence[str]) -> tuple[JobReturn, dict[str, Any]]:
        """The cell's result, and what accounting billed its job (seg58/sweep/accounting.py)."""
        from seg58.sweep.accounting import billed_hours

        ret, info = super().collect(job, overrides)
        return ret, {**info, **billed_hours(job.job_id)}

    @property
    def detach(self) -> bool:
        return bool(self.params.get("detach"))

    def submit_driver(self, command: list[str], sweep_dir: Path) -> Any:
        """The sweep itself as a small CPU job, so the login node's command can return."""
        import submitit

        p = self.params
        executor = self._executor(
            submitit_folder=str(sweep_dir / ".submitit" / "driver" / "%j"), gpus_per_node=0, gres=None,
            cpus_per_task=p.get("driver_cpus", 1), mem_gb=p.get("driver_mem_gb", 4), mem_per_gpu=None,
            cpus_per_gpu=None, gpus_per_task=None, mem_per_cpu=None,
            timeout_min=p.get("driver_timeout_min", 7 * 24 * 60), max_num_timeout=0,
            partition=p.get("driver_partition") or p.get("partition"), name=f"{p.get('name') or 'seg58'}-driver")
        with submission_env(handover=True):  # the driver removes the credentials file when it ends
            return executor.submit(submitit.helpers.CommandFunction(command, cwd=str(Path.cwd()), verbose=True))


def slurm_limits() -> dict[str, int]:
    """MaxArraySize and MaxJobCount from `scontrol show config`; SLURM's defaults when it cannot be asked."""
    import subprocess

    limits = dict(SLURM_DEFAULTS)
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("scontrol show config failed (%s): assuming SLURM's defaults %s", e, SLURM_DEFAULTS)
        return limits
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in limits and value.strip().isdigit():
            limits[key.strip()] = int(value.strip())
    return limits


class LocalGpuJobs(SubmititJobs):
    """Local subprocesses, each on GPUs no other running job holds."""

    _slots: GpuSlots | None = None

    @property
    def slots(self) -> GpuSlots:
        if self._slots is None:
            gpus = visible_gpus(self.params.get("gpus", "auto"))
            self._slots = GpuSlots(gpus, self.params.get("gpus_per_node") or 1)
            if gpus:
                log.info("local jobs spread over GPU(s) %s, %d at a time, %d GPU(s) each",
                         gpus, self._slots.capacity, self._slots.per_job)
        return self._slots

    def capacity(self) -> int | None:
        return self.slots.capacity

    def _map(self, executor: Any, args: list[tuple]) -> list[Any]:
        if not self.slots.gpus:  # CPU only: no GPU for any job (CUDA_VISIBLE_DEVICES="")
            return executor.map_array(self, *zip(*args, strict=True))
        jobs = []
        for arg in args:  # each job its own GPUs: one submission each
            key = f"#{arg[2]}"
            ids = self.slots.acquire(key)
            # AutoExecutor does not pass visible_gpus on; submitit's LocalExecutor underneath takes it
            inner_executor(executor).update_parameters(visible_gpus=ids, gpus_per_node=len(ids))
            (job,) = executor.map_array(self, *zip(arg, strict=True))
            self.slots.held[job.job_id] = self.slots.held.pop(key)
            log.info("\t#%d on GPU %s", arg[2], ",".join(map(str, ids)))
            jobs.append(job)
        return jobs

    def collect(self, job: Any, overrides: Sequence[str]) -> tuple[JobReturn, dict[str, Any]]:
        try:
            return super().collect(job, overrides)
        finally:
            self.slots.release(job.job_id)

    def cancel(self, jobs: Sequence[Any], grace_s: float = 10.0) -> None:
        """submitit's LocalJob.cancel sends SIGINT to the controller only, which a process started
        in the background ignores (SIG_IGN is inherited), and the task ignores SIGTERM (submitit's
        preemption handler): interrupt the tasks themselves (their runs end KILLED), all at once,
        and kill what is left after grace_s."""
        import psutil

        tasks = []
        for job in jobs:
            with suppress(psutil.Error, ValueError):
                tasks += psutil.Process(int(job.job_id)).children(recursive=True)
        for task in tasks:
            with suppress(psutil.Error):
                task.send_signal(signal.SIGINT)
        _, alive = psutil.wait_procs(tasks, timeout=grace_s)
        for task in alive:
            with suppress(psutil.Error):
                task.kill()
