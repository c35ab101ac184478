"""Config schemas of seg58's sweeper and launchers, registered in Hydra's ConfigStore so that any
Hydra app with seg58 installed can choose `hydra/sweeper=seg58` (and its samplers,
`hydra/sweeper/sampler=tpe|random|...`, as hydra-optuna-sweeper names them) or the launchers
`hydra/launcher=seg58_slurm|seg58_local`. A typo in hydra.sweeper.* / hydra.launcher.* fails at
composition with the key named. Hydra imports this module while scanning plugins."""

# no `from __future__ import annotations`: Hydra's plugin scan executes this module outside
# sys.modules, where dataclasses cannot resolve string annotations
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional  # noqa: UP035 (OmegaConf 2.3 needs typing's generics)

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf


@dataclass
class Seg58SweeperConf:
    _target_: str = "hydra_plugins.seg58_sweeper.sweeper.Seg58Sweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])  # noqa: UP006
    # auto: an Optuna search when n_trials is set or a param is an interval(), else a grid | grid | search
    strategy: str = "auto"
    params: Optional[Dict[str, Any]] = None  # noqa: UP006, UP045  key: a,b,c | choice() | range() | interval()
    hooks: Any = None  # {_target_: ...} a seg58.sweep.hooks.SweepHooks of the app (seg58's: config checks, MLflow)
    metric: Any = None  # the key of a returned dict that is the objective; a list: one per direction
    max_failures: Optional[int] = None  # noqa: UP045  K failed cells/trials cancel the rest (fail fast)
    max_failure_rate: Optional[float] = None  # noqa: UP045  ... or more than this share of the ended ones
    dry_run: bool = False  # check and list the cells, print the resources asked for; launch nothing
    # -- grid --
    max_batch_size: Optional[int] = None  # noqa: UP045
    rerun: Optional[str] = None  # noqa: UP045  a grid's sweep folder: launch only its cells that did not complete
    sample: Optional[int] = None  # noqa: UP045  N: a seeded random sample of N cells of the grid
    sample_seed: int = 0
    # -- search (Optuna, hydra-optuna-sweeper's keys) --
    n_trials: Optional[int] = None  # noqa: UP045  set: a search of this many trials
    n_jobs: int = 1  # trials in flight at once
    direction: Any = "minimize"  # minimize | maximize; a list: a multi-objective (Pareto) search
    study_name: Optional[str] = None  # noqa: UP045
    storage: Optional[str] = None  # noqa: UP045  None: a journal file in the sweep folder; or an RDB URL
    sampler: Any = MISSING  # the hydra/sweeper/sampler choice (tpe)
    pruner: Any = None  # {_target_: optuna.pruners.MedianPruner, ...}; None: never prune
    custom_search_space: Optional[str] = None  # noqa: UP045  dotpath of fn(cfg, trial) adding parameters
    resume: Optional[str] = None  # noqa: UP045  a search's sweep folder: continue its study


@dataclass
class Seg58SlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.seg58_sweeper.launchers.Seg58SlurmLauncher"
    # true: submit the sweep itself as a small SLURM job (the driver) and return at once; the
    # driver submits the cells, applies max_failures and closes the sweep. `seg58 status/collect`.
    detach: bool = False
    driver_partition: Optional[str] = None  # noqa: UP045  None: the cells' partition
    driver_timeout_min: int = 7 * 24 * 60  # the driver waits for every cell; `seg58 collect` finishes after it
    driver_mem_gb: int = 4
    driver_cpus: int = 1
    # cells per SLURM array (None: the cluster's MaxArraySize, from `scontrol show config`); each
    # array is throttled by array_parallelism (`%`)
    max_array_size: Optional[int] = None  # noqa: UP045
    max_queued: Optional[int] = None  # noqa: UP045  cells queued at once (None: half the cluster's MaxJobCount)


@dataclass
class Seg58LocalConf(LocalQueueConf):
    _target_: str = "hydra_plugins.seg58_sweeper.launchers.Seg58LocalLauncher"
    # GPUs the jobs are spread over, each job on its own gpus_per_node (default 1) of them and at
    # most one job per GPU at a time: auto = every GPU this process sees; a list of ids; [] = CPU only
    gpus: Any = "auto"


SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "cmaes": "CmaEsSampler", "nsgaii": "NSGAIISampler",
            "gp": "GPSampler", "qmc": "QMCSampler", "grid": "GridSampler"}

store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="seg58", node=Seg58SweeperConf, provider="seg58")
for name, cls in SAMPLERS.items():  # the grid's search_space comes from the params (seg58/sweep/samplers.py)
    extra = {"_partial_": True} if name == "grid" else {"seed": None}
    store.store(group="hydra/sweeper/sampler", name=name, provider="seg58",
                node={"_target_": f"optuna.samplers.{cls}", **extra})
store.store(group="hydra/launcher", name="seg58_slurm", node=Seg58SlurmConf(), provider="seg58")
store.store(group="hydra/launcher", name="seg58_local", node=Seg58LocalConf(), provider="seg58")
