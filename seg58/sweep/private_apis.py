"""The private Hydra and submitit APIs seg58 relies on, all of them here and nowhere else, each
with a test that fails loudly when a release changes it (tests/sweep/test_private_apis.py).
pyproject.toml states the version ranges they are known to work in: re-run those tests before
widening them. Imports are function-local: Hydra imports the sweeper on every start."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def sweep_cells(overrides: Sequence[Any]) -> list[list[str]]:
    """The cartesian product of parsed overrides (`a=1,2 b=x` -> `[a=1 b=x], [a=2 b=x]`), as
    Hydra's basic sweeper makes it: its own code, so grids expand exactly as Hydra's do."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper.split_arguments(list(overrides), None)[0]


def apply_overrides(overrides: Sequence[Any], cfg: Any) -> None:
    """Apply parsed plain overrides (`key=value`, `+key=value`, `~key`) to a composed config in
    place, as Hydra's config loader does after the defaults list."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    ConfigLoaderImpl._apply_overrides_to_config(list(overrides), cfg)


def inner_executor(executor: Any) -> Any:
    """The cluster-specific executor inside a submitit AutoExecutor (it takes parameters, such as
    LocalExecutor's visible_gpus, that the AutoExecutor does not pass on)."""
    return executor._executor


def expect_no_result(job: Any, wait_s: float = 1.0) -> None:
    """A cancelled submitit job writes no result: collecting it need not wait the 15 s that submitit
    gives a slow shared filesystem to show one (`Job._results_timeout_s`), per job, one after another."""
    if not hasattr(type(job), "_results_timeout_s"):
        raise AttributeError(f"{type(job).__name__}._results_timeout_s: gone from this submitit release")
    job._results_timeout_s = wait_s
