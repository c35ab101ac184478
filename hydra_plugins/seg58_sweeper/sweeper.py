"""The sweeper class Hydra discovers (`hydra/sweeper=seg58`); the work is seg58.sweep's."""

from seg58.sweep.sweeper import GridOrSearchSweeper


class Seg58Sweeper(GridOrSearchSweeper):
    """A grid (Hydra's basic sweeper semantics) or an Optuna search (hydra-optuna-sweeper's keys),
    every cell checked before any starts, each reported as it ends, one bookkeeping for both."""
