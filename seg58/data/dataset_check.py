"""`seg58 check-data`: validate a dataset folder completely and describe it, without training."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from seg58.base.classes import CLASS_NAMES, IGNORE_INDEX
from seg58.base.errors import DataError
from seg58.data.build import resolve_root
from seg58.data.dataset import preload
from seg58.data.folder import scan_folder
from seg58.data.splits import SplitSpec


def check_dataset(root: str | Path, split: SplitSpec = SplitSpec(),  # noqa: B008 -- frozen
                  synthetic: dict | None = None, max_side: int | None = 1024, threads: int = 4) -> str:
    """Decode every pair (at most `max_side` px, as training would) and return a report; raise
    one DataError listing every bad file, or an empty split."""
    folder = resolve_root(root, synthetic)
    samples = scan_folder(folder)
    train, val = split.apply(samples)
    if not train or not val:
        raise DataError([f"empty split: {len(train)} train / {len(val)} val images"], folder)
    pairs = preload(samples, max_side, threads)
    counts = np.zeros(256, np.int64)
    for _, mask in pairs:
        counts += np.bincount(mask.ravel(), minlength=256)
    labelled = counts[: len(CLASS_NAMES)].sum()
    lines = [
        f"dataset {folder}: OK",
        f"  {len(samples)} image/mask pairs; split {len(train)} train / {len(val)} val ({split.describe()})",
        f"  materials: {dict(Counter(s.material or '?' for s in samples))}",
        f"  ignore (255): {counts[IGNORE_INDEX] / max(1, counts.sum()):.1%} of pixels",
        "  class pixel share (of labelled pixels) and images containing it:",
    ]
    present = [set(np.unique(m).tolist()) for _, m in pairs]
    for c, name in enumerate(CLASS_NAMES):
        n_img = sum(c in p for p in present)
        flag = "  <- absent" if n_img == 0 else ""
        lines.append(f"    {c:2d} {name:<14} {counts[c] / max(1, labelled):7.3%}  {n_img:4d}{flag}")
    return "\n".join(lines)
