"""Inference on whole images of any size: one pass (padded) or a sliding window, then logits
upsampled to the label resolution. Plain PyTorch; `seg58 evaluate` / `seg58 predict` wrap it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from seg58.choices import CpuAmp, InferMode
from seg58.data.folder import Sample, fitted_size, load_pair
from seg58.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from seg58.evaluator import SegmentationEvaluator
from seg58.hierarchy import fine_logits
from seg58.runtime import autocast_dtype
from seg58.visuals import colorize


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> normalized float 3xHxW, exactly as the training transforms do."""
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return F.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))


class Predictor:
    """Logits for a whole image. mode="whole": one forward pass, padded up to a multiple of the
    model's stride. mode="slide": windows of `window` px overlapping by `overlap`, logits
    averaged where windows meet (for fixed-size encoders such as Swin, and for large images)."""

    def __init__(self, model: torch.nn.Module, device: torch.device, num_classes: int, *,
                 mode: InferMode | str = InferMode.whole, window: int = 384, overlap: float = 0.25,
                 stride: int = 32, amp: bool = True, cpu_amp: CpuAmp | str = CpuAmp.auto):
        mode = InferMode(mode)
        if not 0 <= overlap < 1:
            raise ValueError(f"infer.overlap={overlap} must be in [0, 1)")
        self.model = model.to(device).eval()
        self.device, self.num_classes, self.mode = device, num_classes, mode
        self.window, self.overlap, self.stride = window, overlap, stride
        dtype = autocast_dtype(device, amp, cpu_amp)
        self.amp, self.amp_dtype = dtype is not None, dtype or torch.bfloat16

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            return fine_logits(self.model(batch.to(self.device))).float()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: 3xHxW normalized -> CxHxW logits (on the device)."""
        h, w = x.shape[-2:]
        if self.mode is InferMode.whole:
            ph, pw = (math.ceil(v / self.stride) * self.stride for v in (h, w))
            return self._forward(_pad_to(x, ph, pw)[None])[0, :, :h, :w]
        win = self.window
        ph, pw = max(h, win), max(w, win)
        x = _pad_to(x, ph, pw)
        step = max(1, int(win * (1 - self.overlap)))
        ys = sorted({*range(0, ph - win + 1, step), ph - win})
        xs = sorted({*range(0, pw - win + 1, step), pw - win})
        total = torch.zeros(self.num_classes, ph, pw, device=self.device)
        count = torch.zeros(1, ph, pw, device=self.device)
        for y in ys:
            for x0 in xs:
                total[:, y:y + win, x0:x0 + win] += self._forward(x[None, :, y:y + win, x0:x0 + win])[0]
                count[:, y:y + win, x0:x0 + win] += 1
        return (total / count)[:, :h, :w]

    def predict(self, image: np.ndarray, resolution: int | None, out_size: tuple[int, int]) -> torch.Tensor:
        """Label map (HxW, long) at `out_size` (h, w); inference at longest side = `resolution`."""
        if resolution:
            w, h = fitted_size((image.shape[1], image.shape[0]), resolution)
            if max(image.shape[:2]) < resolution:  # upscale small images to the trained scale
                scale = resolution / max(image.shape[:2])
                w, h = round(image.shape[1] * scale), round(image.shape[0] * scale)
            image = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))
        logits = self.logits(to_tensor(image))
        if tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits[None], size=out_size, mode="bilinear", align_corners=False)[0]
        return logits.argmax(0)


def evaluate(predictor: Predictor, samples: Iterable[Sample], resolution: int | None,
             max_side: int | None, prefix: str, ignore_index: int = 255) -> dict:
    """Metrics (named `<prefix>/...`, as validation names them `val/...`) against each mask at
    its (pre-load) resolution, with the same evaluator as validation."""
    evaluator = SegmentationEvaluator(predictor.num_classes, ignore_index=ignore_index, device=predictor.device)
    n = 0
    for sample in samples:
        image, mask = load_pair(sample, max_side)
        pred = predictor.predict(image, resolution, mask.shape)
        evaluator.update(pred, torch.from_numpy(mask).to(predictor.device).long())
        n += 1
    return {"metrics": evaluator.metrics(prefix), "images": n, "confusion": evaluator.confusion.numpy()}


def write_prediction(image: np.ndarray, pred: np.ndarray, out_dir: Path, stem: str, alpha: float = 0.5) -> None:
    """<stem>_mask.png (label values 0..15) and <stem>_overlay.png (palette blended on the image)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pred.astype(np.uint8), mode="L").save(out_dir / f"{stem}_mask.png")
    blend = (image * (1 - alpha) + colorize(pred.astype(np.uint8)) * alpha).astype(np.uint8)
    Image.fromarray(blend).save(out_dir / f"{stem}_overlay.png")
