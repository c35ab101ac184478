"""Registers the config schemas of seg58's sweeper and launchers (declared in seg58/sweep/schema.py)
in Hydra's ConfigStore, so that any Hydra app with seg58 installed can choose `hydra/sweeper=seg58`
(and its samplers, `hydra/sweeper/sampler=tpe|random|...`, as hydra-optuna-sweeper names them) or
the launchers `hydra/launcher=seg58_slurm|seg58_local`. A typo in hydra.sweeper.* / hydra.launcher.*
fails at composition with the key named. Hydra imports this module while scanning plugins."""

from hydra.core.config_store import ConfigStore

from seg58.sweep.sampler_nodes import SAMPLER_NODES
from seg58.sweep.schema import Seg58LocalConf, Seg58SlurmConf, Seg58SweeperConf

__all__ = ["SAMPLER_NODES", "Seg58LocalConf", "Seg58SlurmConf", "Seg58SweeperConf"]

store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="seg58", node=Seg58SweeperConf, provider="seg58")
for name, node in SAMPLER_NODES.items():  # hydra-optuna-sweeper's names and keys, and more (sampler_nodes.py)
    store.store(group="hydra/sweeper/sampler", name=name, node=dict(node), provider="seg58")
store.store(group="hydra/launcher", name="seg58_slurm", node=Seg58SlurmConf(), provider="seg58")
store.store(group="hydra/launcher", name="seg58_local", node=Seg58LocalConf(), provider="seg58")
