"""Seeded train/val splits; stratified by material when metadata says what each image is."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from seg58.base.choices import SplitKind
from seg58.base.errors import DataError
from seg58.data.folder import Sample

ALL_FOLDS = "all"  # data.split_holdout=all: every fold in turn (a cross-validation)


def _units(samples: list[Sample]) -> tuple[dict[str, list[str]], dict[str, list[Sample]]]:
    """Source images (augmented copies of one original are one unit, always on the same side),
    by material, both in sorted order."""
    units: dict[str, list[Sample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.id):
        units[s.group].append(s)
    by_material: dict[str, list[str]] = defaultdict(list)
    for key in sorted(units):
        by_material[units[key][0].material].append(key)
    return dict(sorted(by_material.items())), units


def _ranked_units(samples: list[Sample], seed: int) -> tuple[list[str], dict[str, list[Sample]]]:
    """Units in a seeded order stratified by material: any prefix holds about the same share of
    every material (each unit ranked by its shuffled position within its material)."""
    by_material, units = _units(samples)
    rng = random.Random(seed)
    ranked = []
    for keys in by_material.values():
        rng.shuffle(keys)
        ranked += [((i + rng.random()) / len(keys), k) for i, k in enumerate(keys)]
    ranked.sort(key=lambda t: t[0])
    return [k for _, k in ranked], units


def _samples_of(keys: list[str], units: dict[str, list[Sample]]) -> list[Sample]:
    return sorted((s for k in keys for s in units[k]), key=lambda s: s.id)


def random_split(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """80/20-style split; per-material stratification keeps rare materials on both sides."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    if len(samples) < 2:
        raise DataError([f"need at least 2 images to split into train/val, found {len(samples)}"])
    ranked, units = _ranked_units(samples, seed)
    if len(ranked) < 2:
        raise DataError([f"need at least 2 source images to split into train/val, found {len(ranked)}"])
    n_val = min(len(ranked) - 1, max(1, round(len(ranked) * val_fraction)))
    return _samples_of(ranked[n_val:], units), _samples_of(ranked[:n_val], units)


def kfold_split(samples: list[Sample], folds: int, fold: int, seed: int) -> tuple[list[Sample], list[Sample]]:
    """The random protocol as K folds: every source image is validated on exactly once, copies of
    one original stay together, each fold holds about 1/K of every material."""
    by_material, units = _units(samples)
    rng = random.Random(seed)
    for keys in by_material.values():
        rng.shuffle(keys)
    if not 2 <= folds <= len(units):
        raise DataError([f"data.folds={folds}: between 2 and the number of source images ({len(units)})"])
    if not 0 <= fold < folds:
        raise DataError([f"data.split_holdout={fold}: a fold number 0..{folds - 1} (data.folds={folds})"])
    # dealt like cards, material after material: every fold gets its share of each material
    dealt = [k for keys in by_material.values() for k in keys]
    val = [k for i, k in enumerate(dealt) if i % folds == fold]
    train = [k for i, k in enumerate(dealt) if i % folds != fold]
    return _samples_of(train, units), _samples_of(val, units)


GROUP_SPLITS = {"leave_one_material_out": "material", "leave_one_content_out": "content"}


def group_split(samples: list[Sample], key: str, holdout: str) -> tuple[list[Sample], list[Sample]]:
    """ARTeFACT's own protocol: every image of one material (or content type) is held out for
    validation, so no material/content is seen on both sides."""
    values = sorted({getattr(s, key) for s in samples})
    if not holdout or holdout not in values:
        raise DataError([f"data.split_holdout={holdout!r} is not a {key} in this dataset; "
                         f"valid: {values} (the {key} column of metadata.csv)"])
    val = [s for s in samples if getattr(s, key) == holdout]
    train = [s for s in samples if getattr(s, key) != holdout]
    if not train:
        raise DataError([f"holding out {key}={holdout!r} leaves no training images"])
    return train, val


@dataclass(frozen=True)
class SplitSpec:
    """How a dataset is split; one value carried everywhere (training, bench, evaluate,
    check-data) so that no command can drop the protocol or its holdout."""

    kind: SplitKind | str = SplitKind.random
    val_fraction: float = 0.2
    seed: int = 0
    holdout: str | None = None

    folds: int = 5

    def apply(self, samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
        kind = SplitKind(self.kind)
        if self.holdout == ALL_FOLDS and kind is not SplitKind.random:
            raise DataError([f"data.split_holdout=all names every fold of data.split={kind.value}: one "
                             "run trains one fold (a cross-validation runs them in turn, or one cell each with -m)"])
        if kind is SplitKind.random:
            return random_split(samples, self.val_fraction, self.seed)
        if kind is SplitKind.kfold:
            return kfold_split(samples, self.folds, _fold_number(self.holdout, self.folds), self.seed)
        return group_split(samples, GROUP_SPLITS[kind.value], self.holdout or "")

    def fold_values(self, samples: list[Sample]) -> list[str]:
        """Every value data.split_holdout takes in a cross-validation of this split, in order."""
        kind = SplitKind(self.kind)
        if kind is SplitKind.kfold:
            return [str(i) for i in range(self.folds)]
        if kind is SplitKind.random:
            return []
        return sorted({getattr(s, GROUP_SPLITS[kind.value]) for s in samples})

    def describe(self) -> str:
        if SplitKind(self.kind) is SplitKind.random:
            return f"random, seed {self.seed}"
        if SplitKind(self.kind) is SplitKind.kfold:
            return f"kfold, fold {self.holdout} of {self.folds}, seed {self.seed}"
        return f"{self.kind}, held out: {self.holdout}"


def _fold_number(holdout: str | None, folds: int) -> int:
    try:
        return int(str(holdout))
    except ValueError:
        raise DataError([f"data.split_holdout={holdout!r}: data.split=kfold holds out a fold's number "
                         f"0..{folds - 1}, or all"]) from None


def make_split(samples: list[Sample], kind: SplitKind | str, val_fraction: float = 0.2, seed: int = 0,
               holdout: str | None = None, folds: int = 5) -> tuple[list[Sample], list[Sample]]:
    return SplitSpec(kind, val_fraction, seed, holdout, folds).apply(samples)
