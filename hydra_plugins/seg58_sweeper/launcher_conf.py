"""Schemas of seg58's launchers: hydra-submitit-launcher's, plus what a cluster day needs
(detach for SLURM, one job per GPU for local_parallel), so a typo in hydra.launcher.* fails at
composition with the key named. Hydra imports this module while scanning plugins."""

# no `from __future__ import annotations`: Hydra's plugin scan executes this module outside
# sys.modules, where dataclasses cannot resolve string annotations
from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

# keys of ours, never passed to submitit's executor
OWN_KEYS = {"detach", "driver_partition", "driver_timeout_min", "driver_mem_gb", "driver_cpus", "gpus"}


@dataclass
class Seg58SlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.seg58_sweeper.slurm_launcher.Seg58SlurmLauncher"
    # true: submit the sweep itself as a small SLURM job (the driver) and return at once; the
    # driver submits the cells, applies max_failures and closes the sweep. `seg58 status/collect`.
    detach: bool = False
    driver_partition: Optional[str] = None  # noqa: UP045 (OmegaConf 2.3)  # None: the cells' partition
    driver_timeout_min: int = 7 * 24 * 60  # the driver waits for every cell; `seg58 collect` finishes after it
    driver_mem_gb: int = 4
    driver_cpus: int = 1


@dataclass
class Seg58LocalConf(LocalQueueConf):
    _target_: str = "hydra_plugins.seg58_sweeper.slurm_launcher.Seg58LocalLauncher"
    # GPUs the jobs are spread over, each job on its own gpus_per_node (default 1) of them and at
    # most one job per GPU at a time: auto = every GPU this process sees; a list of ids; [] = CPU only
    gpus: Any = "auto"


ConfigStore.instance().store(group="hydra/launcher", name="seg58_slurm", node=Seg58SlurmConf(), provider="seg58")
ConfigStore.instance().store(group="hydra/launcher", name="seg58_local", node=Seg58LocalConf(), provider="seg58")
