"""A search's sampler beyond what its config names: the grid sampler's search space built from
the params, a seeded sampler that continues its stream when a study is resumed, and asking it
only for configurations the study has not run yet."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from seg58.base.errors import ConfigError
from seg58.sweep.study import instantiate_spec

log = logging.getLogger(__name__)


def with_grid(spec: dict[str, Any] | None, space: dict[str, Any]) -> dict[str, Any] | None:
    """hydra/sweeper/sampler=grid: Optuna's GridSampler with its search_space built from the params
    (every value of each choice, each range's steps below its stop, as hydra-optuna-sweeper and a
    Hydra grid take them), so a grid-by-Optuna runs to exhaustion."""
    if not spec or not str(spec.get("_target_", "")).endswith("GridSampler") or spec.get("search_space"):
        return spec
    from optuna.distributions import CategoricalDistribution

    grid, continuous = {}, []
    for key, d in space.items():
        if isinstance(d, CategoricalDistribution):
            grid[key] = list(d.choices)
        elif d.step is not None and not d.log:
            n = math.floor(round((d.high - d.low) / d.step, 9))
            grid[key] = [d.low + i * d.step for i in range(n)]
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


def ask_untried(study: Any, space: dict[str, Any], extend: Callable[[Any], None] | None = None,
                attempts: int = 100) -> Any:
    """A trial whose parameters no COMPLETE or PRUNED trial of the study has run (`extend` adds
    custom-space parameters first): a repeat is told FAIL (user attr `repeat_of`; the study's
    `repeats` list, not counted) and the sampler asked again. None when it keeps proposing
    repeats: the search space is exhausted."""
    from optuna.trial import TrialState

    if not space and extend is None:  # nothing to search: every trial runs the one configuration, as asked
        return study.ask(space)
    done = {_key(t.params): t.number for t in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if not ("warm_start" in t.user_attrs and t.user_attrs.get("warm_start_rerun"))}  # to run again
    for _ in range(attempts):
        trial = study.ask(space)
        if extend is not None:
            extend(trial)
        if _key(trial.params) not in done:
            return trial
        trial.set_user_attr("repeat_of", done[_key(trial.params)])
        study.set_user_attr("repeats", [*study.user_attrs.get("repeats", []), trial.number])
        try:
            study.tell(trial, state=TrialState.FAIL)
        except RuntimeError as e:  # a sampler that has exhausted its space calls study.stop()
            if "Study.stop" not in str(e):
                raise
            return None
    log.info("the sampler proposed %d configurations in a row that were already tried: the search space "
             "looks exhausted; no new trials", attempts)
    return None


def _key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, type(v).__name__, v) for k, v in params.items()))
