"""How often each training image is drawn: uniform shuffling, or class-balanced draws that show
the images holding rare classes more often. ARTeFACT's Dust, Hair, Puncture and Burn marks cover
tens of thousands of pixels against tens of millions of Clean and score 0 IoU when every image
is drawn equally often.

Class frequency is the share of training *images* containing the class, not its pixel share:
the sampler chooses images, so the image share is the quantity it changes (a class in 5% of the
images is in 5% of uniform draws), and its inverse stays bounded by the number of images. A pixel
share (1e-4 for a thin hair) would give weights in the hundreds, collapsing each epoch onto a
handful of images; how much of each drawn image a class covers is the loss's business."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image

from seg58.base.choices import SamplerKind
from seg58.base.classes import CLASS_NAMES, NUM_CLASSES
from seg58.base.errors import ConfigError
from seg58.data.folder import Sample, mask_labels

log = logging.getLogger(__name__)


def classes_present(masks: Iterable[np.ndarray], num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(images, classes) bool: which scored classes each mask holds (the ignore label is none)."""
    rows = [np.bincount(m.ravel(), minlength=256)[:num_classes] > 0 for m in masks]
    return np.array(rows, bool).reshape(len(rows), num_classes)


def masks_on_disk(samples: Sequence[Sample]) -> Iterable[np.ndarray]:
    """The label masks of not pre-loaded samples (labels checked when the data was built)."""
    for s in samples:
        with Image.open(s.mask) as im:
            yield np.asarray(mask_labels(im, f"mask {s.mask}"))


def image_weights(present: np.ndarray, power: float) -> np.ndarray:
    """Per image, max over its classes of (1 / f_c) ** power, f_c = share of images holding class c.

    power 0: every image 1 (uniform); 0.5: a class in 1% of the images lifts its images 10x;
    1: every present class is in about the same share of draws as the most balanced one allows.
    An image with no scored class (all ignore) weighs 1, as one holding only an ubiquitous class."""
    if power < 0:
        raise ConfigError([f"data.sampler_power={power} must be >= 0 (0: uniform; larger: rarer classes drawn more)"])
    freq = present.mean(axis=0) if len(present) else np.zeros(present.shape[1])
    lift = np.zeros_like(freq)
    lift[freq > 0] = freq[freq > 0] ** -power
    weights = (present * lift).max(axis=1, initial=0.0)
    weights[weights == 0] = 1.0
    return weights


def draw_shares(present: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Expected share of draws that hold each class, drawing image i with probability ∝ weights[i]."""
    return (present * weights[:, None]).sum(axis=0) / weights.sum()


def describe_rarest(present: np.ndarray, weights: np.ndarray, n: int = 4) -> str:
    """The n rarest classes present: share of draws holding each, uniform -> weighted; and the
    classes no training image holds (no sampler can show them)."""
    freq, shares = present.mean(axis=0), draw_shares(present, weights)
    held = [c for c in np.argsort(freq, kind="stable") if freq[c] > 0][:n]
    parts = [f"{CLASS_NAMES[c]} {freq[c]:.1%} -> {shares[c]:.1%}" for c in held]
    absent = [CLASS_NAMES[c] for c in range(present.shape[1]) if freq[c] == 0]
    return ", ".join(parts) + (f"; in no training image: {', '.join(absent)}" if absent else "")


def train_weights(sampler: SamplerKind | str, power: float, masks: Iterable[np.ndarray]) -> np.ndarray | None:
    """Draw weights for the training images, or None for plain seeded shuffling (random)."""
    if SamplerKind(sampler) is SamplerKind.random:
        return None
    present = classes_present(masks)
    weights = image_weights(present, power)
    log.info("sampler=class_balanced power=%g: share of draws holding the rarest classes, uniform -> "
             "balanced: %s", power, describe_rarest(present, weights))
    return weights
