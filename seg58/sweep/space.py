"""hydra.sweeper.params in Hydra's override grammar -> Optuna distributions, plus the plain
overrides every trial shares, meaning in a search what they mean in hydra-optuna-sweeper (HOS):

  choice(a, b, c) or a,b,c       categorical, values typed (1 is an int, true a bool, 0.5 a float)
  range(start, stop[, step])     Optuna's stepped distribution, stop INCLUDED (IntDistribution, or
                                 FloatDistribution with a step when any bound or the step is a float)
  shuffle(range(...))            categorical of the range's values (Hydra's: stop excluded)
  interval(low, high)            uniform float; tag(log, interval(...)) log-uniform;
  int(interval(...))             integers (with log: log-uniform integers); seg58 also reads
                                 tag(int, interval(...)) as integers, where HOS ignores the tag

(A grid, `a=range(1,3)` without a search, keeps Hydra's meaning: stop excluded.) A key given one
value, in the params or on the command line, is fixed for every trial and leaves the space.
`create_optuna_distribution_from_override` and `create_params_from_overrides` are HOS's two
functions of the same names, with the same results.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Transformer
from omegaconf import OmegaConf

log = logging.getLogger(__name__)
PLAIN_STRING = re.compile(r"[A-Za-z_][\w./:@-]*")  # needs no quotes in an override


def parse_space(params: dict[str, Any] | None, arguments: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(distributions by override key, fixed overrides): the params first, the command line after
    (a later value of a key wins); a key with a fixed value, on either side, leaves the space.
    No distribution at all is allowed: every trial then runs the same configuration, as in HOS."""
    from seg58.base.errors import ConfigError

    parser = OverridesParser.create()
    overrides = parser.parse_overrides([*(f"{k}={v}" for k, v in (params or {}).items()), *arguments])
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}  # by key, in order: the last value given wins
    problems = []
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.pop(key, None)
            fixed[key] = override.input_line
            continue
        try:
            space[key] = distribution(override)
        except ValueError as e:
            problems.append(f"{override.input_line}: {e}")
    if problems:
        raise ConfigError(problems)
    for key in space.keys() & fixed.keys():
        log.info("%s is fixed: not searched (was %r)", fixed[key], space.pop(key))
    if not space:
        log.warning("hydra.sweeper.params: nothing to search (every parameter has one value): each trial "
                    "runs the same configuration")
    return space, list(fixed.values())


def create_optuna_distribution_from_override(override: Any) -> Any:
    """HOS's function: a sweep override's distribution, or a plain override's value as a string."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    return distribution(override)


def create_params_from_overrides(arguments: list[str]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """HOS's function: (distributions, fixed values as strings, deletions such as `~z`) by key."""
    distributions: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    deletions: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        if override.is_delete():
            deletions.append(override.input_line)
            continue
        value = create_optuna_distribution_from_override(override)
        target = fixed if isinstance(value, str) and not override.is_sweep_override() else distributions
        target[override.get_key_element()] = value
    return distributions, fixed, deletions



def distribution(override: Any) -> Any:
    """One sweep override -> its Optuna distribution (ValueError: why it is not one)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    tags = set(getattr(value, "tags", None) or ())
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        values = list({(type(v), v): v for v in override.sweep_iterator(transformer=Transformer.encode)}.values())
        if value.shuffle:  # shuffle(...): one fixed order, so that a resumed study sees the same space
            values.sort(key=lambda v: (type(v).__name__, v if isinstance(v, (int, float)) else str(v)))
        return CategoricalDistribution(values)
    if override.is_range_sweep():  # Optuna's bounds, as HOS hands them over: stop included
        if value.step <= 0 or value.stop < value.start:
            raise ValueError("an empty range")
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return IntDistribution(value.start, value.stop, step=value.step)
        return FloatDistribution(float(value.start), float(value.stop), step=float(value.step))
    if override.is_interval_sweep():
        low, high, log_scale = value.start, value.end, "log" in tags
        if not low < high or (log_scale and low <= 0):
            raise ValueError("needs low < high (and low > 0 with log)")
        if "int" in tags or (isinstance(low, int) and isinstance(high, int)):  # tag(int, ...) or int(interval(...))
            return IntDistribution(int(low), int(high), log=log_scale)
        return FloatDistribution(float(low), float(high), log=log_scale)
    raise ValueError("not a search space (use choice, range or interval)")


def trial_overrides(params: dict[str, Any], fixed: list[str]) -> list[str]:
    """The overrides one trial runs with: the shared ones, then the sampled values."""
    return [*fixed, *(f"{k}={_format(v)}" for k, v in params.items())]


def _format(value: Any) -> str:
    """A sampled value as Hydra parses it back to the same type and value."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if PLAIN_STRING.fullmatch(text) and text.lower() not in ("true", "false", "null", "nan", "inf"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def plain(node: Any) -> Any:
    """A config node as plain Python (the sweeper's params, sampler and pruner specs)."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
