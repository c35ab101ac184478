"""How sure is an mIoU: bootstrap intervals over images, from per-image confusion matrices.

mIoU is not a mean over images, so an image's share of it cannot be scored alone: a resample of
the images is scored by summing their (truth x prediction) matrices and taking the mIoU of the
sum, exactly as the whole set is. Every resample is one row of a count matrix (how often each
image was drawn), so 1000 resamples are one matrix product. Percentile intervals; numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seg58.modeling.metrics import iou_per_class


def miou_of(matrix: np.ndarray) -> float:
    """mIoU of one confusion matrix, classes absent from the truth left out (as ConfusionMatrix.compute)."""
    present = [v for v in iou_per_class(np.asarray(matrix)) if not np.isnan(v)]
    return float(np.mean(present)) if present else float("nan")


def miou_rows(matrices: np.ndarray) -> np.ndarray:
    """miou_of for each of B stacked (B, C, C) matrices at once."""
    m = np.asarray(matrices, dtype=np.float64)
    tp = np.diagonal(m, axis1=1, axis2=2)
    gt = m.sum(2)
    union = gt + m.sum(1) - tp
    iou = np.where(gt > 0, tp / np.where(union > 0, union, 1), np.nan)
    present = gt > 0
    n = present.sum(1)
    return np.where(n > 0, np.nansum(iou, 1) / np.maximum(n, 1), np.nan)


def resample_counts(n_images: int, n_boot: int, seed: int, groups: Sequence[str] | None = None) -> np.ndarray:
    """(n_boot, n_images): how often each image is drawn in each resample (with replacement).
    With `groups` (an image's source: augmented copies of one original share it) whole groups are
    drawn, so that copies, which are not independent evidence, do not narrow the interval."""
    if groups is not None:
        if len(groups) != n_images:
            raise ValueError(f"{len(groups)} groups for {n_images} images")
        keys, index = np.unique(np.asarray(list(groups), dtype=str), return_inverse=True)
        return resample_counts(len(keys), n_boot, seed)[:, index]
    draws = np.random.default_rng(seed).integers(0, n_images, size=(n_boot, n_images))
    offsets = np.arange(n_boot)[:, None] * n_images
    return np.bincount((draws + offsets).ravel(), minlength=n_boot * n_images).reshape(n_boot, n_images)


def resampled_mious(per_image: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """mIoU of each resample: the sum of its images' matrices, weighted by how often each was drawn."""
    per_image = np.asarray(per_image)
    n, c = per_image.shape[0], per_image.shape[-1]
    sums = counts.astype(np.float64) @ per_image.reshape(n, c * c).astype(np.float64)
    return miou_rows(sums.reshape(-1, c, c))


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be in (0, 1)")
    if np.isnan(values).all():
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def _checked(per_image: np.ndarray) -> np.ndarray:
    per_image = np.asarray(per_image)
    if per_image.ndim != 3 or per_image.shape[1] != per_image.shape[2] or not len(per_image):
        raise ValueError(f"per-image confusion matrices must be (N>0, C, C), got {per_image.shape}")
    return per_image


def bootstrap_miou(per_image: np.ndarray, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95, groups: Sequence[str] | None = None) -> tuple[float, float, float]:
    """(mIoU of all images, lower, upper bound of its `level` percentile interval) over `n_boot`
    resamples of the images (or of their `groups`) with replacement."""
    per_image = _checked(per_image)
    point = miou_of(per_image.sum(0))
    counts = resample_counts(len(per_image), n_boot, seed, groups)
    return (point, *_interval(resampled_mious(per_image, counts), level))


def paired_difference(per_image_a: np.ndarray, per_image_b: np.ndarray, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float, bool]:
    """(mIoU of B - mIoU of A, lower, upper, whether the interval excludes 0) for two models scored
    on the same images in the same order: each resample draws the same images for both, so what
    the images share (an easy or hard image) cancels out of the difference."""
    a, b = _checked(per_image_a), _checked(per_image_b)
    if a.shape != b.shape:
        raise ValueError(f"paired matrices must match: {a.shape} vs {b.shape}")
    counts = resample_counts(len(a), n_boot, seed)
    diff = miou_of(b.sum(0)) - miou_of(a.sum(0))
    lo, hi = _interval(resampled_mious(b, counts) - resampled_mious(a, counts), level)
    return diff, lo, hi, bool(lo > 0 or hi < 0)


def group_mious(per_image: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """mIoU of each group of images (the sum of its matrices), e.g. per material; images with an
    empty or "unknown" label belong to no group."""
    per_image = np.asarray(per_image)
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        if label and label.strip().lower() != "unknown":
            groups.setdefault(label, []).append(i)
    return {label: miou_of(per_image[idx].sum(0)) for label, idx in sorted(groups.items())}


def save_per_image(path: str | Path, ids: Sequence[str], matrices: np.ndarray, **meta: str) -> Path:
    """ids (N,), matrices (N, C, C) int64 and string metadata (class names, scope) in one .npz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, ids=np.asarray(list(ids), dtype=str), matrices=np.asarray(matrices, dtype=np.int64),
                        **{k: np.asarray(v) for k, v in meta.items()})
    tmp.replace(path)
    return path


def load_per_image(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(ids, matrices) of a save_per_image file."""
    with np.load(path, allow_pickle=False) as f:
        return [str(i) for i in f["ids"]], f["matrices"].astype(np.int64)
