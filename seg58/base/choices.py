"""Settings with a fixed set of values. The structured schema types its keys with these, so a
bad value is refused at composition with the key and the valid values named; the core accepts
the same enums (or their string values) when constructed directly."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A str-valued enum that prints (and logs to MLflow) as its bare value."""

    def __str__(self) -> str:
        return self.value


class SplitKind(Choice):
    random = "random"  # seeded, stratified by material
    leave_one_material_out = "leave_one_material_out"  # ARTeFACT's protocol
    leave_one_content_out = "leave_one_content_out"
    kfold = "kfold"  # data.folds folds of source images (stratified by material); the holdout is a fold's number


class SamplerKind(Choice):
    """How the training loader draws images each epoch (seg58/data/sampling.py)."""

    random = "random"  # a seeded shuffle: every image once per epoch
    class_balanced = "class_balanced"  # with replacement, images holding rare classes more often


class NonFinite(Choice):
    skip = "skip"  # NaN/inf loss: skip the step, count it
    stop = "stop"  # ... or end the run naming epoch and step


class CpuAmp(Choice):
    auto = "auto"  # bf16 autocast where the CPU runs bf16 natively (AVX512/AMX), else fp32
    bf16 = "bf16"  # always bf16 (emulated on AVX2-only CPUs: measured 20x slower than fp32)
    off = "off"  # fp32 on CPU


class InferMode(Choice):
    whole = "whole"  # one padded forward pass per image
    slide = "slide"  # overlapping windows, logits averaged


class Tta(Choice):
    """Test-time augmentation: softmax probabilities averaged over symmetries of the image."""

    none = "none"  # one pass
    flips = "flips"  # 4 passes: identity, h-flip, v-flip, both (= 180° rotation); never rotates
    d4 = "d4"  # 8 passes: the 4 rotations by 90°, each also h-flipped (non-square images go W x H)


class Resolution(Choice):
    """The named values of infer.resolution (which otherwise is a longest side in px, or null)."""

    native = "native"  # predict: the scan at its full size, tile by tile, mask as a tiled TIFF (seg58/engine/tiled.py)


class InferSplit(Choice):
    val = "val"
    train = "train"
    all = "all"


# What ARTeFACT's 255 ("background": outside the object) is to the model. `class` is a Python
# keyword, hence the functional form; the config's `data.background=class` selects it by name.
Background = Choice("Background", [
    ("ignore", "ignore"),  # left out of the loss and the metrics (default)
    ("class", "class"),  # the dataset card's example: a 17th output trained on it; metrics still leave it out
], module=__name__)


class HierarchyMapping(Choice):
    """The fine -> coarse -> binary grouping scored as val/coarse/* and val/binary/* (and trained by
    loss=hierarchical); ARTeFACT itself defines no coarse groups."""

    seg58 = "seg58"  # ours: clean | structural | surface | additions
    poc55 = "poc55"  # the seed's POC-5.5 groups, to compare with its figures (Clean unscored at coarse)
