"""hydra.sweeper.params in Hydra's override grammar (the key names and grammar of
hydra-optuna-sweeper) -> Optuna distributions, plus the plain overrides every trial shares.

  choice(a, b, c) or a,b,c       categorical, values typed (1 is an int, true a bool, 0.5 a float)
  range(start, stop[, step])     stepped values, stop excluded (like a grid's range); floats allowed
  shuffle(range(...))            categorical of the range's values
  interval(low, high)            uniform float; tag(log, interval(...)) log-uniform;
  int(interval(...))             integers, as tag(int, interval(...)) (with log: log-uniform integers)

A key given one value on the command line is fixed for every trial and leaves the space: the
study's parameters then say what really ran.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Transformer
from omegaconf import OmegaConf

log = logging.getLogger(__name__)
PLAIN_STRING = re.compile(r"[A-Za-z_][\w./:@-]*")  # needs no quotes in an override


def parse_space(params: dict[str, Any] | None, arguments: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(distributions by override key, fixed overrides); command-line sweeps join the params, and
    a key the command line fixes to one value leaves the space."""
    from seg58.base.errors import ConfigError

    parser = OverridesParser.create()
    given = parser.parse_overrides(list(arguments))
    pinned = {o.key_or_group: o.input_line for o in given if not o.is_sweep_override()}
    space: dict[str, Any] = {}
    fixed: list[str] = []
    problems = []
    for override in [*parser.parse_overrides([f"{k}={v}" for k, v in (params or {}).items()]), *given]:
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(override.input_line)
            continue
        if override.key_or_group in pinned:
            log.info("%s is fixed on the command line: not searched (was %s)", pinned[override.key_or_group],
                     override.input_line)
            continue
        try:
            space[key] = distribution(override)
        except ValueError as e:
            problems.append(f"{override.input_line}: {e}")
    if problems:
        raise ConfigError(problems)
    if not space:
        raise ConfigError(["hydra.sweeper.params: nothing to search; give at least one choice(), range() "
                           "or interval(), e.g. 'optim.lr=tag(log, interval(1e-5, 1e-1))' (or use search=<preset>)"])
    return space, fixed


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
    if override.is_range_sweep():
        if value.step <= 0 or value.stop - value.step < value.start:
            raise ValueError("an empty range")
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return IntDistribution(value.start, value.stop - value.step, step=value.step)
        # float bounds or step: the stepped values below stop, as a grid's range gives them (rounded,
        # so that 0.1 steps do not lose their last value to 0.8999999999999999)
        n = math.ceil(round((value.stop - value.start) / value.step, 9))
        last = round(value.start + value.step * (n - 1), 12)
        return FloatDistribution(float(value.start), float(last), step=float(value.step))
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
