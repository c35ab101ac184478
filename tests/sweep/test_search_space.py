"""The search space as hydra-optuna-sweeper's users write it: typed choices, float and shuffled
ranges (stop included, as there), int() casts, and a key fixed to one value that is no longer
searched (tests/sweep/test_hos_dropin.py compares each expression with hydra-optuna-sweeper's)."""

from __future__ import annotations

import logging

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from seg58.base.errors import ConfigError
from seg58.sweep.space import parse_space, trial_overrides


def test_choice_values_keep_their_types_through_the_trial_overrides():
    space, _ = parse_space({"a": "choice(1, 2)", "b": "choice(true, false)", "c": "choice(0.5, 1e-3)",
                            "d": "choice(dice, 'a b', '1')"}, [])
    assert space["a"].choices == (1, 2) and space["b"].choices == (True, False)
    assert space["c"].choices == (0.5, 0.001) and space["d"].choices == ("dice", "a b", "1")
    sampled = {"a": 2, "b": False, "c": 0.001, "d": "a b", "e": "1", "f": "x,y"}
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(trial_overrides(sampled, []))}
    assert parsed == sampled  # Hydra reads back exactly the sampled value and type


@pytest.mark.parametrize(("line", "values"), [
    ("range(0.5, 5.5, step=1)", (0.5, 5.5, 1.0)),     # floats, not truncated to integers
    ("range(-5.5, 5.5, step=0.5)", (-5.5, 5.5, 0.5)),
    ("range(2, 10, 2)", (2, 10, 2)),                    # stop included: Optuna's bounds, as in HOS
])
def test_ranges_are_stepped_and_include_their_stop(line, values):
    d = parse_space({"x": line}, [])[0]["x"]
    assert (d.low, d.high, d.step) == values
    assert type(d.low) is type(values[0])


def test_int_casts_and_shuffle():
    space, _ = parse_space({"a": "int(interval(1, 10))", "b": "tag(log, int(interval(1, 64)))",
                            "c": "tag(int, interval(1, 5))", "d": "interval(1, 10)", "e": "shuffle(range(1, 4))"}, [])
    assert type(space["a"]).__name__ == "IntDistribution" and (space["a"].low, space["a"].high) == (1, 10)
    assert type(space["b"]).__name__ == "IntDistribution" and space["b"].log
    assert type(space["c"]).__name__ == "IntDistribution"
    assert type(space["d"]).__name__ == "FloatDistribution"  # a plain interval stays a float
    assert space["e"].choices == (1, 2, 3)  # categorical, in one order (a resumed study sees the same space)


def test_a_key_fixed_on_the_command_line_is_not_searched(caplog):
    """`search=lr_wd loss=dice`: the preset searches loss; the command line fixes it."""
    preset = {"optim.lr": "tag(log, interval(1e-5, 1e-2))", "loss": "choice(dice, dice_ce, dice_focal)"}
    with caplog.at_level(logging.INFO, logger="seg58.sweep.space"):
        space, fixed = parse_space(preset, ["search=lr_wd", "loss=dice", "+w=choice(1,2)"])
    assert set(space) == {"optim.lr", "+w"} and fixed == ["search=lr_wd", "loss=dice"]
    assert "loss=dice is fixed: not searched" in caplog.text
    assert trial_overrides({"optim.lr": 1e-3, "+w": 2}, fixed) == [
        "search=lr_wd", "loss=dice", "optim.lr=0.001", "+w=2"]


def test_a_space_that_cannot_be_searched_names_its_override():
    with pytest.raises(ConfigError, match=r"optim.lr=tag\(log, interval\(0, 1\)\): needs low < high"):
        parse_space({"optim.lr": "tag(log, interval(0, 1))"}, [])
    with pytest.raises(ConfigError, match=r"x=range\(5, 1\): an empty range"):
        parse_space({"x": "range(5, 1)"}, [])



def test_nothing_left_to_search_is_said_once_and_allowed(caplog):
    with caplog.at_level(logging.INFO, logger="seg58.sweep.space"):
        assert parse_space({"loss": "choice(dice, dice_ce)"}, ["loss=dice"]) == ({}, ["loss=dice"])
    assert caplog.text.count("nothing to search") == 1
