"""The keys of seg58's sweeper and launchers, declared once, as the dataclasses Hydra composes
them from: the Hydra plugin registers these in its ConfigStore (hydra_plugins/seg58_sweeper/
config.py), and the sweeper and launchers derive the keys they take, refuse and keep from submitit
from the same fields. A field with `metadata={"search": True}` is a search's (handed to Search)."""

# no `from __future__ import annotations`: OmegaConf reads these types when the plugin registers them
from dataclasses import MISSING as NO_DEFAULT
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional  # noqa: UP035 (OmegaConf 2.3 needs typing's generics)

from omegaconf import MISSING

from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

SEARCH = {"search": True}


@dataclass
class BudgetConf:
    gpu_hours: Optional[float] = None  # noqa: UP045  stop submitting once the ended cells reported this many
    wall_time: Any = None  # seconds, or 90s | 45m | 2h: the sweep's own wall time, resumes included
    on_exhausted: str = "finish"  # finish: the running cells end on their own | cancel: they are cancelled


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
    budget: BudgetConf = field(default_factory=BudgetConf)  # no new cell once spent (grid and search)
    # finished cells keep their best checkpoint only among the k best; pruned/failed keep none; null: all
    keep_checkpoints: Optional[int] = 3  # noqa: UP045
    # -- grid --
    max_batch_size: Optional[int] = None  # noqa: UP045
    rerun: Optional[str] = None  # noqa: UP045  a grid's sweep folder: launch only its cells that did not complete
    sample: Optional[int] = None  # noqa: UP045  N: a seeded random sample of N cells of the grid
    sample_seed: int = 0
    # -- search (Optuna, hydra-optuna-sweeper's keys) --
    n_trials: Optional[int] = field(default=None, metadata=SEARCH)  # noqa: UP045  set: a search of this many trials
    n_jobs: int = field(default=1, metadata=SEARCH)  # trials in flight at once
    # minimize | maximize; a list: a multi-objective (Pareto) search
    direction: Any = field(default="minimize", metadata=SEARCH)
    study_name: Optional[str] = field(default=None, metadata=SEARCH)  # noqa: UP045
    # None: a journal file in the sweep folder; or an RDB URL
    storage: Optional[str] = field(default=None, metadata=SEARCH)  # noqa: UP045
    sampler: Any = field(default=MISSING, metadata=SEARCH)  # the hydra/sweeper/sampler choice (tpe)
    pruner: Any = field(default=None, metadata=SEARCH)  # {_target_: optuna.pruners.MedianPruner, ...}; None: never
    # dotpath of fn(cfg, trial) adding parameters
    custom_search_space: Optional[str] = field(default=None, metadata=SEARCH)  # noqa: UP045
    resume: Optional[str] = field(default=None, metadata=SEARCH)  # noqa: UP045  a search's folder: continue it
    # earlier searches (sweep folders, or <storage>+<study>) whose finished trials seed this one's study
    warm_start: Optional[List[str]] = field(default=None, metadata=SEARCH)  # noqa: UP006, UP045
    warm_start_enqueue_top: int = field(default=0, metadata=SEARCH)  # ... and the k best of them run again first


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


def _keys(schema: type) -> dict[str, Any]:
    """{key: default} of a schema, without Hydra's own entries (_target_, defaults)."""
    def default(f: Any) -> Any:
        value = f.default_factory() if f.default_factory is not NO_DEFAULT else f.default
        return None if value is MISSING else value

    return {f.name: default(f) for f in fields(schema) if f.name not in ("_target_", "defaults")}


SWEEPER_KEYS = _keys(Seg58SweeperConf)  # hydra.sweeper.<key>: its default
SEARCH_KEYS = tuple(f.name for f in fields(Seg58SweeperConf) if f.metadata.get("search"))
# keys seg58's launchers add to hydra-submitit-launcher's, never passed to submitit
OWN_LAUNCHER_KEYS = frozenset((set(_keys(Seg58SlurmConf)) - set(_keys(SlurmQueueConf)))
                              | (set(_keys(Seg58LocalConf)) - set(_keys(LocalQueueConf))))
