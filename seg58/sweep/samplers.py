"""A search's sampler beyond what its config names: the grid sampler's search space built from
the params, and a seeded sampler that continues its stream when a study is resumed."""

from __future__ import annotations

from typing import Any

from seg58.base.errors import ConfigError
from seg58.sweep.study import instantiate_spec


def with_grid(spec: dict[str, Any] | None, space: dict[str, Any]) -> dict[str, Any] | None:
    """hydra/sweeper/sampler=grid: Optuna's GridSampler with its search_space built from the params
    (every value of each choice and range), so a grid-by-Optuna runs to exhaustion."""
    if not spec or not str(spec.get("_target_", "")).endswith("GridSampler") or spec.get("search_space"):
        return spec
    from optuna.distributions import CategoricalDistribution

    grid, continuous = {}, []
    for key, d in space.items():
        if isinstance(d, CategoricalDistribution):
            grid[key] = list(d.choices)
        elif d.step is not None and not d.log:
            n = round((d.high - d.low) / d.step)
            grid[key] = [d.low + i * d.step for i in range(n + 1)]
        else:
            continuous.append(key)
    if continuous:
        raise ConfigError([f"hydra.sweeper.params.{k}: the grid sampler needs a finite set of values "
                           "(choice() or range()), not an interval" for k in continuous])
    return {**{k: v for k, v in spec.items() if k != "_partial_"}, "search_space": grid}  # the grid completes it


def resumed_sampler(spec: dict[str, Any] | None, n_trials_so_far: int) -> Any:
    """The search's sampler for a resumed study: a seeded one continues its stream (seed + trials
    so far) instead of restarting it, which would propose the first trials' parameters again."""
    if not spec:
        return None
    spec = dict(spec)
    if spec.get("seed") is not None:
        spec["seed"] = int(spec["seed"]) + n_trials_so_far
    return instantiate_spec(spec)
