"""Cells' configs before launch (seg58/sweep/checks.py): composed once per distinct group choices,
each cell's plain overrides applied and undone in place, and always the config Hydra itself would
compose for the cell."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from seg58.config.config_checks import config_problems
from seg58.config.schema import config_dir
from seg58.sweep.checks import CellComposer


@pytest.fixture
def composer():
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        master = compose("config", overrides=["experiment=smoke"], return_hydra_config=True)
        yield CellComposer(GlobalHydra.instance().config_loader(), master)


def app_part(cfg) -> dict:
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return OmegaConf.to_container(cfg, resolve=True)


CELLS = [
    ["experiment=smoke", "seed=1", "optim.lr=0.001"],
    ["experiment=smoke", "seed=2", "data.img_size=${trainer.epochs}"],  # an interpolation as a value
    ["experiment=smoke", "encoder=convnext_tiny", "seed=3"],  # another group choice
    ["experiment=smoke", "seed=4", "+extra.note=hello"],  # a new key: applied to a copy
    ["experiment=smoke", "model=fpn", "trainer.epochs=3", "optim.lr=0.01"],
    ["experiment=smoke", "seed=5"],  # after all of the above: nothing of theirs left behind
]


def test_each_cell_is_the_config_hydra_composes_for_it(composer):
    for cell in CELLS:
        assert app_part(composer.compose(cell)) == app_part(composer.full(cell)), cell
    seen = [composer.check(cell, lambda cfg: (cfg.seed, cfg.optim.lr, cfg.data.img_size, cfg.encoder.name))
            for cell in CELLS]
    assert seen[0][:2] == (1, 0.001) and seen[1][2] == 1 and seen[2][3] != seen[0][3]
    base = app_part(composer.full(CELLS[-1]))
    assert (base["seed"], base["optim"]["lr"], base["data"]["img_size"]) == (5, *seen[-1][1:3])
    assert "extra" not in app_part(composer.compose(CELLS[-1]))


def test_three_hundred_cells_cost_one_composition_per_group_choice(composer):
    cells = [["experiment=smoke", f"seed={i}", f"optim.lr={(i % 7 + 1) / 1000}"] for i in range(300)]
    cells += [["experiment=smoke", "encoder=convnext_tiny", f"seed={i}"] for i in range(10)]
    before = composer.compositions
    problems = [composer.check(cell, config_problems) for cell in cells]
    assert problems == [[]] * len(cells)
    assert composer.compositions - before == 2


def test_a_cell_that_cannot_compose_gets_hydras_own_error(composer):
    with pytest.raises(ConfigCompositionException, match="nope"):
        composer.check(["experiment=smoke", "optim.nope=1"], config_problems)
    assert composer.check(["experiment=smoke", "trainer.epochs=0"], config_problems) == [
        p for p in config_problems(composer.full(["experiment=smoke", "trainer.epochs=0"]))]
    assert any("trainer.epochs" in p for p in composer.check(["experiment=smoke", "trainer.epochs=0"], config_problems))


def test_progress_of_a_slow_check_says_seconds_per_cell_not_zero_per_second():
    from seg58.sweep.checks import progress_line

    assert progress_line("checking cells", 1, 2, 13.0) == "checking cells: 1 of 2 (13 s per cell, 13 s left)"
    assert progress_line("checking cells", 500, 1200, 10.0) == "checking cells: 500 of 1200 (50/s, 14 s left)"
    assert progress_line("checking cells", 0, 2, 4.0) == "checking cells: 0 of 2 (4 s so far)"
