"""hydra.sweeper.warm_start=[<sweep dir>, <storage>+<study>, ...]: a new search starts from what
earlier searches learnt. Their finished (COMPLETE) trials are added to the new study as prior
trials (Optuna's add_trial), so the sampler models them from the first ask; they are not run
and do not count towards n_trials.

- A parameter outside the new space is dropped from the trial (counted).
- A trial whose value of a key the new sweep fixes differs from it is left out (counted): it
  answered another question. So is one whose value lies outside the new range or choices.
- A key whose type changed (a float searched as a choice, an int as a float) or whose old and new
  ranges do not meet is one ConfigError naming the key: the old trials cannot inform the new space.
- warm_start_enqueue_top=k runs the k best prior configurations again first (their trials are
  marked, so the sampler's repeat check lets them through)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seg58.base.errors import ConfigError, UsageError
from seg58.base.names import SEARCH_STATE_FILE

log = logging.getLogger(__name__)

KEY = "hydra.sweeper.warm_start"
PRIOR_ATTR = "warm_start"  # a prior trial's user attr: where it came from
RERUN_ATTR = "warm_start_rerun"  # ... and whether it is run again (warm_start_enqueue_top)


def _source(source: str) -> tuple[Any, dict[str, str], str]:
    """(study, the fixed overrides it ran with, a name for messages) of a sweep folder or storage+study."""
    from seg58.sweep.search_state import SearchState
    from seg58.sweep.study import StudySpec

    folder = Path(source)
    if folder.is_dir():
        if not (folder / SEARCH_STATE_FILE).is_file():
            raise UsageError(f"{KEY}: {source} has no {SEARCH_STATE_FILE} (not a seg58 search folder)")
        state = SearchState.load(folder)
        spec = StudySpec(**state.study)
        return spec.load(), dict(o.split("=", 1) for o in state.fixed if "=" in o), str(folder)
    storage, plus, name = source.rpartition("+")
    if not plus or not storage or not name:
        raise UsageError(f"{KEY}: {source}: neither a search's sweep folder nor <storage>+<study name>")
    try:
        return StudySpec(storage=storage, study_name=name).load(), {}, source
    except KeyError:
        raise UsageError(f"{KEY}: no study {name!r} in {storage}") from None


def check_compatible(old: Any, new: Any, key: str) -> None:
    """A ConfigError naming the key when old trials of this parameter cannot inform the new space."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kinds = (CategoricalDistribution, FloatDistribution, IntDistribution)
    old_kind = next(k for k in kinds if isinstance(old, k))
    if not isinstance(new, old_kind):
        raise ConfigError([f"{KEY}: {key} was searched as {old_kind.__name__} and is now "
                           f"{type(new).__name__}: the earlier trials cannot inform it"])
    if old_kind is not CategoricalDistribution and (old.high < new.low or new.high < old.low):
        raise ConfigError([f"{KEY}: {key}'s range [{old.low}, {old.high}] does not meet the new "
                           f"[{new.low}, {new.high}]"])


def add_prior_trials(study: Any, space: dict[str, Any], fixed: Sequence[str], sources: Sequence[str],
                     enqueue_top: int = 0) -> str:
    """Every source's COMPLETE trials into `study`; the `warm start:` line that says what was added."""
    import optuna
    from optuna.trial import TrialState

    fixed_now = dict(o.split("=", 1) for o in fixed if "=" in o)
    added: list[Any] = []
    counts = {"dropped": 0, "fixed": 0, "outside": 0}
    for source in sources:
        old, old_fixed, name = _source(str(source))
        trials = old.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        checked: set[str] = set()
        for trial in trials:
            for key in set(trial.distributions) & set(space) - checked:
                check_compatible(trial.distributions[key], space[key], key)
                checked.add(key)
        if any(not _same(v, fixed_now[k]) for k, v in old_fixed.items() if k in fixed_now):
            counts["fixed"] += len(trials)  # the sweep fixed a key to another value: another question
            continue
        for trial in trials:
            if any(not _same(trial.params[k], fixed_now[k]) for k in trial.params if k in fixed_now):
                counts["fixed"] += 1
                continue
            params = {k: v for k, v in trial.params.items() if k in space}
            counts["dropped"] += len(trial.params) - len(params)
            values = {"values": trial.values} if len(trial.values) > 1 else {"value": trial.value}
            try:  # Optuna checks each value against the new distributions
                added.append(optuna.trial.create_trial(
                    params=params, distributions={k: space[k] for k in params}, state=TrialState.COMPLETE,
                    user_attrs={PRIOR_ATTR: f"{name}#{trial.number}"}, **values))
            except ValueError:
                counts["outside"] += 1
    return _add(study, added, counts, len(sources), enqueue_top)


def _add(study: Any, added: list[Any], counts: dict[str, int], sources: int, enqueue_top: int) -> str:
    order = _best(added, study.directions, enqueue_top)
    rerun = set(order)
    for i, trial in enumerate(added):
        if i in rerun:
            trial.set_user_attr(RERUN_ATTR, True)
        study.add_trial(trial)
    for i in order:  # the best first
        study.enqueue_trial(added[i].params, user_attrs={RERUN_ATTR: True})
    study.set_user_attr("prior", [t.number for t in study.get_trials(deepcopy=False) if PRIOR_ATTR in t.user_attrs])
    parts = [f"warm start: added {len(added)} trial(s) from {sources} earlier search(es)"]
    if counts["dropped"]:
        parts.append(f"dropped {counts['dropped']} parameter value(s) outside the new space")
    if counts["fixed"]:
        parts.append(f"left out {counts['fixed']} trial(s) whose fixed values differ from this sweep's")
    if counts["outside"]:
        parts.append(f"left out {counts['outside']} trial(s) outside the new ranges or choices")
    if rerun:
        parts.append(f"running the {len(rerun)} best again first")
    return "; ".join(parts)


def _same(value: Any, written: str) -> bool:
    """A trial's value against an override's text (`lr=1e-3` is 0.001)."""
    if str(value) == written:
        return True
    try:
        return float(value) == float(written)
    except (TypeError, ValueError):
        return False


def _best(trials: list[Any], directions: Sequence[Any], k: int) -> list[int]:
    """Indices of the k best trials by the first objective."""
    from optuna.study import StudyDirection

    if k <= 0 or not trials:
        return []
    sign = -1.0 if directions[0] == StudyDirection.MAXIMIZE else 1.0
    return sorted(range(len(trials)), key=lambda i: sign * trials[i].values[0])[:k]
