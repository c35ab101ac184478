"""Cross-validation as one sweep, without running anything: expanding folds into cells and
grouping the cells' results back into configurations (mean ± std, the per-fold table)."""

from __future__ import annotations

import statistics

from hydra.core.override_parser.overrides_parser import OverridesParser

from seg58.sweep.folds import cv_table, expand_folds, format_cv, quoted

KEY = "data.split_holdout"


def test_a_cell_asking_for_every_fold_becomes_one_cell_per_fold_with_hydra_readable_values():
    cells = [["optim.lr=0.1", f"{KEY}=all"], ["optim.lr=0.2", f"{KEY}=Paper"]]
    out = expand_folds(cells, KEY, lambda c: ["Film emulsion", "Paper"] if f"{KEY}=all" in c else None)
    assert out == [["optim.lr=0.1", f"{KEY}='Film emulsion'"], ["optim.lr=0.1", f"{KEY}=Paper"],
                   ["optim.lr=0.2", f"{KEY}=Paper"]]
    parser = OverridesParser.create()
    assert parser.parse_override(out[0][1]).value() == "Film emulsion"
    assert parser.parse_override(f"k={quoted(chr(39) + 'odd')}").value() == "'odd"


def test_cells_group_into_configurations_with_mean_and_sample_std_over_folds():
    def cell(num, lr, fold, value, status="COMPLETED"):
        return {"num": num, "overrides": [f"optim.lr={lr}", f"{KEY}={quoted(fold)}"], "status": status,
                "objective": value}

    cells = [cell(0, 0.1, "Paper", 0.30), cell(1, 0.1, "Film emulsion", 0.20), cell(2, 0.1, "Wood", 0.40),
             cell(3, 0.2, "Paper", 0.10), cell(4, 0.2, "Film emulsion", None, "FAILED"), cell(5, 0.2, "Wood", 0.30),
             {"num": 6, "overrides": ["optim.lr=0.3"], "status": "COMPLETED", "objective": 0.9}]  # no fold: left out
    first, second = cv_table(cells, KEY)
    assert first["config"] == "optim.lr=0.1" and first["folds"] == {"Paper": 0.30, "Film emulsion": 0.20, "Wood": 0.40}
    assert abs(first["mean"] - 0.30) < 1e-12 and abs(first["std"] - 0.10) < 1e-12  # stdev of .3 .2 .4 = .1
    assert second["missing"] == ["Film emulsion"] and abs(second["mean"] - 0.20) < 1e-12
    assert abs(second["std"] - statistics.stdev([0.1, 0.3])) < 1e-12
    text = format_cv([first, second], "val/miou")
    assert "[0] 0.3000 ± 0.1000  (3 folds)  optim.lr=0.1" in text
    assert "[1] 0.2000 ± 0.1414  (2 folds, 1 fold(s) missing)  optim.lr=0.2" in text
    assert "Film emulsion   0.2000        -" in text
