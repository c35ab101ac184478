"""Inference on whole images of any size: one pass (padded) or a sliding window, then logits
upsampled to the label resolution. Plain PyTorch; `seg58 evaluate` / `seg58 predict` wrap it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from seg58.base.choices import Background, CpuAmp, HierarchyMapping, InferMode, Tta
from seg58.data.folder import Sample, fitted_size, load_pair
from seg58.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from seg58.engine.evaluator import SegmentationEvaluator
from seg58.engine.runtime import autocast_dtype
from seg58.engine.visuals import colorize
from seg58.modeling.calibration import CalibrationBins
from seg58.modeling.hierarchy import fine_labels, fine_logits

ECE_BINS = 15  # the usual choice (Guo et al. 2017), so `<prefix>/ece` compares with published figures


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> normalized float 3xHxW, exactly as the training transforms do."""
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return F.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Where sliding windows of `window` px overlapping by `overlap` start along a side of `size`
    px (already padded up to at least `window`); the last one ends at the border."""
    step = max(1, int(window * (1 - overlap)))
    return sorted({*range(0, size - window + 1, step), size - window})


class Symmetry(NamedTuple):
    """An element of the dihedral group D4 acting on the last two axes: a horizontal flip if
    `flip`, then `turns` counter-clockwise quarter turns. `undo` maps a prediction made on the
    transformed image back onto the original pixels."""

    turns: int
    flip: bool

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flip(-1) if self.flip else x
        return torch.rot90(x, self.turns, (-2, -1)).contiguous()

    def undo(self, y: torch.Tensor) -> torch.Tensor:
        y = torch.rot90(y, -self.turns, (-2, -1))
        return (y.flip(-1) if self.flip else y).contiguous()

    def undo_box(self, box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """The pixels (top, bottom, left, right; ends exclusive) of the original image that `box`
        of the transformed one (of `shape` h, w) shows: `apply(x)[box] == apply(x[undo_box(box)])`."""
        (top, bottom, left, right), (h, w) = box, shape
        for _ in range(self.turns % 4):  # undo one counter-clockwise quarter turn: h x w came from w x h
            top, bottom, left, right, h, w = left, right, h - bottom, h - top, w, h
        return (top, bottom, w - right, w - left) if self.flip else (top, bottom, left, right)


# Each set is a group (closed under composition), so the averaged prediction is itself exactly
# equivariant under it: flipping the input flips the TTA prediction, whatever the model.
TTA_SYMMETRIES: dict[Tta, tuple[Symmetry, ...]] = {
    Tta.none: (Symmetry(0, False),),
    # identity, h-flip, v-flip (= h-flip then 180°), both (= 180°): no W x H transposition
    Tta.flips: (Symmetry(0, False), Symmetry(0, True), Symmetry(2, True), Symmetry(2, False)),
    Tta.d4: tuple(Symmetry(turns, flip) for turns in range(4) for flip in (False, True)),
}


class Predictor:
    """Logits for a whole image. mode="whole": one forward pass, padded up to a multiple of the
    model's stride. mode="slide": windows of `window` px overlapping by `overlap`, logits
    averaged where windows meet (for fixed-size encoders such as Swin, and for large images).
    `tta`: run that pass on each symmetry of the image (TTA_SYMMETRIES) and average the softmax
    probabilities, mapped back onto the original pixels.
    `num_classes` are the scored classes; a model's extra background output (data.background=class)
    is predicted as 255."""

    def __init__(self, model: torch.nn.Module, device: torch.device, num_classes: int, *,
                 mode: InferMode | str = InferMode.whole, window: int = 384, overlap: float = 0.25,
                 stride: int = 32, amp: bool = True, cpu_amp: CpuAmp | str = CpuAmp.auto,
                 tta: Tta | str = Tta.none):
        mode, self.tta = InferMode(mode), Tta(tta)
        if not 0 <= overlap < 1:
            raise ValueError(f"infer.overlap={overlap} must be in [0, 1)")
        self.model = model.to(device).eval()
        self.device, self.num_classes, self.mode = device, num_classes, mode
        self.window, self.overlap, self.stride = window, overlap, stride
        dtype = autocast_dtype(device, amp, cpu_amp)
        self.amp, self.amp_dtype = dtype is not None, dtype or torch.bfloat16

    def forward_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """NCHW normalized -> the model's (fine) logits, float32 on the device."""
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            return fine_logits(self.model(batch.to(self.device))).float()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: 3xHxW normalized -> CxHxW logits (on the device) of one pass, without TTA."""
        h, w = x.shape[-2:]
        if self.mode is InferMode.whole:
            ph, pw = (math.ceil(v / self.stride) * self.stride for v in (h, w))
            return self.forward_logits(_pad_to(x, ph, pw)[None])[0, :, :h, :w]
        win = self.window
        ph, pw = max(h, win), max(w, win)
        x = _pad_to(x, ph, pw)
        ys, xs = window_starts(ph, win, self.overlap), window_starts(pw, win, self.overlap)
        total: torch.Tensor | None = None  # as many channels as the model has outputs
        count = torch.zeros(1, ph, pw, device=self.device)
        for y in ys:
            for x0 in xs:
                out = self.forward_logits(x[None, :, y:y + win, x0:x0 + win])[0]
                if total is None:
                    total = torch.zeros(out.shape[0], ph, pw, device=self.device)
                total[:, y:y + win, x0:x0 + win] += out
                count[:, y:y + win, x0:x0 + win] += 1
        return (total / count)[:, :h, :w]

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """x: 3xHxW normalized -> CxHxW softmax probabilities averaged over the TTA symmetries.
        Each pass sees the transformed image (rotated: W x H, padded or tiled for that shape).
        Probabilities, not logits, are averaged: a pass with large logits cannot outvote the rest."""
        symmetries = TTA_SYMMETRIES[self.tta]
        total = torch.zeros((), device=self.device)
        for s in symmetries:
            total = total + s.undo(self.logits(s.apply(x))).softmax(0)
        return total / len(symmetries)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """What `predict` takes the argmax of: the logits without TTA (one pass, as before TTA
        existed), else the averaged probabilities."""
        return self.logits(x) if self.tta is Tta.none else self.probabilities(x)

    def as_probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """`scores` as class probabilities: the softmax of the logits; under TTA they already are."""
        return scores.softmax(0) if self.tta is Tta.none else scores

    def predict(self, image: np.ndarray, resolution: int | None, out_size: tuple[int, int]) -> torch.Tensor:
        """Label map (HxW, long; 0..15, 255 = background) at `out_size` (h, w); inference at
        longest side = `resolution`."""
        return fine_labels(self.scores_at(image, resolution, out_size), self.num_classes, dim=0)

    def scores_at(self, image: np.ndarray, resolution: int | None, out_size: tuple[int, int]) -> torch.Tensor:
        """`scores` (CxHxW) of a uint8 image, inferred at longest side = `resolution` and
        resized to `out_size` (h, w)."""
        if resolution:
            w, h = fitted_size((image.shape[1], image.shape[0]), resolution)
            if max(image.shape[:2]) < resolution:  # upscale small images to the trained scale
                scale = resolution / max(image.shape[:2])
                w, h = round(image.shape[1] * scale), round(image.shape[0] * scale)
            image = np.array(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))
        scores = self.scores(to_tensor(image))
        if tuple(scores.shape[-2:]) != tuple(out_size):
            scores = F.interpolate(scores[None], size=out_size, mode="bilinear", align_corners=False)[0]
        return scores


def evaluate(predictor: Predictor, samples: Iterable[Sample], resolution: int | None,
             max_side: int | None, prefix: str, ignore_index: int = 255,
             background: Background | str = Background.ignore,
             hierarchy: HierarchyMapping | str = HierarchyMapping.seg58) -> dict:
    """Metrics (named `<prefix>/...`, as validation names them `val/...`) against each mask at
    its (pre-load) resolution, with the same evaluator as validation, plus per-class precision,
    recall and F1 (validation leaves those out to keep per-epoch logging small), the bootstrap
    interval of mIoU and mIoU per material and content, and `<prefix>/ece`, the expected calibration
    error of the top-class probability (15 bins; `reliability` is its table); "per_image" = (ids,
    (N, C, C) matrices)."""
    evaluator = SegmentationEvaluator(predictor.num_classes, ignore_index=ignore_index, device=predictor.device,
                                      background=background, mapping=hierarchy, per_image=True)
    calibration = CalibrationBins(ECE_BINS, ignore_index, predictor.device)
    n = 0
    for sample in samples:
        image, mask = load_pair(sample, max_side)
        scores = predictor.scores_at(image, resolution, mask.shape)
        truth = torch.from_numpy(mask).to(predictor.device).long()
        evaluator.update(fine_labels(scores, predictor.num_classes, dim=0), truth, samples=[sample])
        calibration.update(predictor.as_probabilities(scores), truth)
        n += 1
    metrics = {**evaluator.metrics(prefix, detailed=True), f"{prefix}/ece": calibration.ece()}
    return {"metrics": metrics, "images": n, "confusion": evaluator.confusion.numpy(),
            "reliability": calibration.table(), "per_image": evaluator.per_image_confusion()}


def write_prediction(image: np.ndarray, pred: np.ndarray, out_dir: Path, stem: str, alpha: float = 0.5) -> None:
    """<stem>_mask.png (label values 0..15, and 255 where a model trained with data.background=class
    predicts background, as in ARTeFACT's masks) and <stem>_overlay.png (the dataset's palette
    blended on the image)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pred.astype(np.uint8), mode="L").save(out_dir / f"{stem}_mask.png")
    blend(image, colorize(pred.astype(np.uint8)), alpha).save(out_dir / f"{stem}_overlay.png")


def write_uncertainty(image: np.ndarray, uncertainty: np.ndarray, out_dir: Path, stem: str,
                      alpha: float = 0.5) -> None:
    """<stem>_uncertainty.png: an HxW map in [0, 1] (the normalised entropy) as 8-bit grey, 0 =
    certain, 255 = all classes equally likely; <stem>_uncertainty_overlay.png: the same in the
    `inferno` colormap (dark = certain, bright yellow = uncertain) blended on the image."""
    out_dir.mkdir(parents=True, exist_ok=True)
    grey = uncertainty_grey(uncertainty)
    Image.fromarray(grey, mode="L").save(out_dir / f"{stem}_uncertainty.png")
    blend(image, inferno(grey), alpha).save(out_dir / f"{stem}_uncertainty_overlay.png")


def uncertainty_grey(uncertainty: np.ndarray) -> np.ndarray:
    """A map in [0, 1] as 8-bit grey: 0 = certain, 255 = all classes equally likely."""
    return np.rint(np.clip(uncertainty, 0, 1) * 255).astype(np.uint8)


def inferno(grey: np.ndarray) -> np.ndarray:
    """8-bit grey -> RGB in matplotlib's `inferno` (dark = certain, bright yellow = uncertain)."""
    from matplotlib import colormaps

    return colormaps["inferno"](grey, bytes=True)[..., :3]


def blend(image: np.ndarray, colors: np.ndarray, alpha: float) -> Image.Image:
    """`colors` (HxWx3 uint8) laid over `image` with opacity `alpha`."""
    return Image.fromarray((image * (1 - alpha) + colors * alpha).astype(np.uint8))
