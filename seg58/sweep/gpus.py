"""One job per GPU for local parallel sweeps (hydra#2757: submitit_local hands every job the
same GPUs). Pure bookkeeping, so the assignment is tested with any GPU count, GPUs or not."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def visible_gpus(setting: Any, environ: Mapping[str, str] = os.environ, count: int | None = None) -> list[int]:
    """The GPU ids jobs are spread over: `auto` = what this process sees (CUDA_VISIBLE_DEVICES,
    else every device), or an explicit list; [] / none = CPU only."""
    from seg58.base.errors import ConfigError

    if setting in (None, "none", "", []):
        return []
    if setting != "auto":
        ids = [setting] if isinstance(setting, int) else list(setting)
        if not all(isinstance(i, int) and i >= 0 for i in ids):
            raise ConfigError([f"hydra.launcher.gpus={setting!r}: auto, or a list of GPU indices like [0,1]"])
        return ids
    declared = environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        parts = [p.strip() for p in declared.split(",") if p.strip()]
        if not all(p.isdigit() for p in parts):
            raise ConfigError([f"CUDA_VISIBLE_DEVICES={declared!r} is not a list of indices: set "
                               "hydra.launcher.gpus=[0,1,...] to say which GPUs the jobs get"])
        return [int(p) for p in parts]
    return list(range(nvml_gpu_count() if count is None else count))


def nvml_gpu_count() -> int:
    """GPUs on this machine, from the driver (NVML), without loading torch into the sweeper; 0
    without an NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


class GpuSlots:
    """Hands each job `per_job` GPUs that no running job holds."""

    def __init__(self, gpus: list[int], per_job: int = 1):
        from seg58.base.errors import ConfigError

        if gpus and not 1 <= per_job <= len(gpus):
            raise ConfigError([f"hydra.launcher.gpus_per_node={per_job}: between 1 and the {len(gpus)} GPU(s) "
                               f"{gpus}"])
        self.gpus, self.per_job = list(gpus), per_job
        self.held: dict[str, list[int]] = {}

    @property
    def capacity(self) -> int | None:
        """Jobs that can run at once; None without GPUs (then the CPUs are shared instead)."""
        return len(self.gpus) // self.per_job if self.gpus else None

    def acquire(self, key: str) -> list[int]:
        busy = {g for ids in self.held.values() for g in ids}
        free = [g for g in self.gpus if g not in busy]
        if len(free) < self.per_job:
            raise RuntimeError(f"no free GPU for job {key}: {self.held} hold {sorted(busy)}")
        self.held[key] = free[:self.per_job]
        return self.held[key]

    def release(self, key: str) -> None:
        self.held.pop(key, None)
