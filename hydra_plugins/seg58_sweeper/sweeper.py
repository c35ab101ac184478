"""The sweeper class Hydra discovers (`hydra/sweeper=seg58`); the work is seg58.sweep's. This is
the edge where an interrupted sweep becomes its exit status, for seg58 and any other Hydra app."""

import sys
from typing import Any

from seg58.sweep.interrupt import SweepInterrupted
from seg58.sweep.sweeper import GridOrSearchSweeper


class Seg58Sweeper(GridOrSearchSweeper):
    """A grid (Hydra's basic sweeper semantics) or an Optuna search (hydra-optuna-sweeper's keys),
    every cell checked before any starts, each reported as it ends, one bookkeeping for both."""

    def sweep(self, arguments: list) -> Any:
        try:
            return super().sweep(arguments)
        except SweepInterrupted as e:  # already told in one line: the exit status a shell expects of Ctrl-C
            sys.exit(e.exit_code)
