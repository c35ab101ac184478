"""hydra.sweeper.params in Hydra's override grammar (the key names and grammar of
hydra-optuna-sweeper) -> Optuna distributions, plus the plain overrides every trial shares.

  choice(a, b, c) or a,b,c       categorical
  range(start, stop[, step])     stepped values, stop excluded (like a grid's range); floats allowed
  interval(low, high)            uniform float; tag(log, interval(...)) log-uniform;
                                 tag(int, interval(...)) integers (with log: log-uniform integers)
"""

from __future__ import annotations

import math
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf


def parse_space(params: dict[str, Any] | None, arguments: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(distributions by override key, fixed overrides); command-line sweeps join the params."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from seg58.base.errors import ConfigError

    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    space: dict[str, Any] = {}
    fixed: list[str] = []
    problems = []
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(override.input_line)
            continue
        value, tags = override.value(), set(getattr(override.value(), "tags", set()) or set())
        if override.is_choice_sweep():
            space[key] = CategoricalDistribution(list(override.sweep_string_iterator()))
        elif override.is_range_sweep():
            if value.step <= 0 or value.stop - value.step < value.start:
                problems.append(f"{override.input_line}: an empty range")
                continue
            if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
                space[key] = IntDistribution(int(value.start), int(value.stop - value.step), step=int(value.step))
            else:  # float bounds or step: the stepped values below stop, as a grid's range gives them
                last = value.start + value.step * math.ceil((value.stop - value.start) / value.step - 1)
                space[key] = FloatDistribution(float(value.start), float(last), step=float(value.step))
        elif override.is_interval_sweep():
            low, high = value.start, value.end
            if not low < high or ("log" in tags and low <= 0):
                problems.append(f"{override.input_line}: needs low < high (and low > 0 with log)")
                continue
            if "int" in tags:
                space[key] = IntDistribution(int(low), int(high), log="log" in tags)
            else:
                space[key] = FloatDistribution(low, high, log="log" in tags)
        else:
            problems.append(f"{override.input_line}: not a search space (use choice, range or interval)")
    if problems:
        raise ConfigError(problems)
    if not space:
        raise ConfigError(["hydra.sweeper.params: nothing to search; give at least one choice(), range() "
                           "or interval(), e.g. 'optim.lr=tag(log, interval(1e-5, 1e-1))' (or use search=<preset>)"])
    return space, fixed


def trial_overrides(params: dict[str, Any], fixed: list[str]) -> list[str]:
    """The overrides one trial runs with: the shared ones, then the sampled values."""
    return [*fixed, *(f"{k}={_format(v)}" for k, v in params.items())]


def _format(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def plain(node: Any) -> Any:
    """A config node as plain Python (the sweeper's params, sampler and pruner specs)."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
