"""Cross-validation splits: k-fold over source images, leave-one-out folds, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from seg58.base.errors import DataError
from seg58.data.folder import Sample
from seg58.data.splits import SplitSpec, kfold_split


def _samples(n_sources: int, copies: int = 2) -> list[Sample]:
    materials, contents = ("Paper", "Canvas", "Wood"), ("Line art", "Photographic depiction")
    return [Sample(f"im{i}_{c}", Path(f"im{i}_{c}.png"), Path(f"m{i}_{c}.png"), materials[i % 3],
                   contents[i % 2], source=f"im{i}") for i in range(n_sources) for c in range(copies)]


def test_kfold_validates_every_source_image_once_and_keeps_copies_together():
    samples = _samples(12)
    seen = []
    for fold in range(4):
        train, val = kfold_split(samples, 4, fold, seed=3)
        assert {s.id for s in train}.isdisjoint(s.id for s in val)
        assert len(train) + len(val) == len(samples)
        assert {s.group for s in train}.isdisjoint(s.group for s in val)  # copies of one original together
        assert {s.material for s in val} == {"Paper", "Canvas", "Wood"}  # stratified: 12 sources, 4 per material
        seen += [s.id for s in val]
    assert sorted(seen) == sorted(s.id for s in samples)  # every image validated exactly once
    assert kfold_split(samples, 4, 1, seed=3) == kfold_split(samples, 4, 1, seed=3)
    assert kfold_split(samples, 4, 1, seed=3)[1] != kfold_split(samples, 4, 1, seed=4)[1]


def test_fold_values_per_protocol():
    samples = _samples(6, copies=1)
    assert SplitSpec("leave_one_material_out").fold_values(samples) == ["Canvas", "Paper", "Wood"]
    assert SplitSpec("leave_one_content_out").fold_values(samples) == ["Line art", "Photographic depiction"]
    assert SplitSpec("kfold", folds=3).fold_values(samples) == ["0", "1", "2"]
    assert SplitSpec("random").fold_values(samples) == []
    train, val = SplitSpec("kfold", holdout="2", folds=3).apply(samples)
    assert len(val) == 2 and len(train) == 4


@pytest.mark.parametrize(("spec", "message"), [
    (SplitSpec("kfold", holdout="5", folds=3), r"data.split_holdout=5: a fold number 0..2"),
    (SplitSpec("kfold", holdout="Paper", folds=3), r"data.split_holdout='Paper'.*fold's number"),
    (SplitSpec("kfold", holdout="0", folds=9), r"data.folds=9: between 2 and the number of source images \(6\)"),
    (SplitSpec("leave_one_material_out", holdout="all"), r"data.split_holdout=all names every fold"),
])
def test_impossible_folds_name_their_key(spec, message):
    with pytest.raises(DataError, match=message):
        spec.apply(_samples(6, copies=1))
