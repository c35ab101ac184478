"""Seeded train/val splits; stratified by material when metadata says what each image is."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from seg58.base.choices import SplitKind
from seg58.base.errors import DataError
from seg58.data.folder import Sample


def random_split(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """80/20-style split; per-material stratification keeps rare materials on both sides."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    if len(samples) < 2:
        raise DataError([f"need at least 2 images to split into train/val, found {len(samples)}"])
    # Units are source images: augmented copies of one original always land on the same side.
    units: dict[str, list[Sample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.id):
        units[s.group].append(s)
    by_material: dict[str, list[str]] = defaultdict(list)
    for key in sorted(units):
        by_material[units[key][0].material].append(key)
    rng = random.Random(seed)
    # Stratify: rank each unit by its (shuffled) position within its material, so taking the
    # first n_val of the whole ranking takes ~val_fraction of every material.
    ranked = []
    for material in sorted(by_material):
        keys = by_material[material]
        rng.shuffle(keys)
        ranked += [((i + rng.random()) / len(keys), k) for i, k in enumerate(keys)]
    ranked.sort(key=lambda t: t[0])
    if len(ranked) < 2:
        raise DataError([f"need at least 2 source images to split into train/val, found {len(ranked)}"])
    n_val = min(len(ranked) - 1, max(1, round(len(ranked) * val_fraction)))
    val = [s for _, k in ranked[:n_val] for s in units[k]]
    train = [s for _, k in ranked[n_val:] for s in units[k]]
    return sorted(train, key=lambda s: s.id), sorted(val, key=lambda s: s.id)


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

    def apply(self, samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
        kind = SplitKind(self.kind)
        if kind is SplitKind.random:
            return random_split(samples, self.val_fraction, self.seed)
        return group_split(samples, GROUP_SPLITS[kind.value], self.holdout or "")

    def describe(self) -> str:
        if SplitKind(self.kind) is SplitKind.random:
            return f"random, seed {self.seed}"
        return f"{self.kind}, held out: {self.holdout}"


def make_split(samples: list[Sample], kind: SplitKind | str, val_fraction: float = 0.2, seed: int = 0,
               holdout: str | None = None) -> tuple[list[Sample], list[Sample]]:
    return SplitSpec(kind, val_fraction, seed, holdout).apply(samples)
