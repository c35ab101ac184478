"""Pictures of the best epoch: per-class IoU bars, normalized confusion matrix, and validation
overlays (image | ground truth | prediction) in the ARTeFACT palette, with a legend.

A trainer callback keeps what it needs when validation improves (a confusion matrix and the
predictions for a few fixed validation images) and draws the PNGs once, at the end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seg58.base.classes import BACKGROUND_RGB, CLASS_NAMES, IGNORE_INDEX, PALETTE
from seg58.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from seg58.engine.callback import Callback
from seg58.modeling.hierarchy import fine_labels
from seg58.modeling.metrics import iou_per_class

# Rows/columns of a fine confusion matrix: the classes, then background when it is a class
# (data.background=class adds that column).
NAMES = (*CLASS_NAMES, "background")
COLORS = (*PALETTE, BACKGROUND_RGB)


def colorize(mask: np.ndarray) -> np.ndarray:
    """Label map -> RGB in ARTeFACT's own palette (its `annotation_rgb`); 255 = background."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(PALETTE)] = PALETTE
    lut[IGNORE_INDEX] = BACKGROUND_RGB
    return lut[mask]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def iou_bars(iou: list[float], path: Path, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4), dpi=110)
    values = [0.0 if math.isnan(v) else v for v in iou]
    colors = [np.array(COLORS[i]) / 255 for i in range(len(iou))]
    ax.bar(range(len(iou)), values, color=colors, edgecolor="black", linewidth=0.5)
    for i, v in enumerate(iou):
        if math.isnan(v):
            ax.text(i, 0.01, "n/a", ha="center", fontsize=7, rotation=90)
    ax.set_xticks(range(len(iou)), NAMES[: len(iou)], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def confusion(matrix: np.ndarray, path: Path, title: str) -> None:
    """Rows = ground truth, normalized to 1; classes absent from the ground truth stay empty."""
    plt = _plt()
    rows = matrix.sum(1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(8, 7), dpi=110)
    im = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1)
    names = NAMES[: matrix.shape[0]]
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def reliability(table: dict[str, list[float]], path: Path, title: str) -> None:
    """Reliability diagram of a `CalibrationBins.table()`: per confidence bin its accuracy (bars)
    against the diagonal of perfect calibration, and the share of pixels in each bin."""
    plt = _plt()
    lower, upper = np.array(table["lower"]), np.array(table["upper"])
    accuracy = np.nan_to_num(np.array(table["accuracy"], dtype=float))
    share = np.array(table["count"], dtype=float) / max(sum(table["count"]), 1)
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(5, 6), dpi=110, sharex=True, height_ratios=(3, 1))
    ax.bar(lower, accuracy, width=upper - lower, align="edge", edgecolor="black", linewidth=0.5, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax_n.bar(lower, share, width=upper - lower, align="edge", color="gray", edgecolor="black", linewidth=0.5)
    ax_n.set_xlim(0, 1)
    ax_n.set_xlabel("confidence (top-class probability)")
    ax_n.set_ylabel("share of pixels")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def overlays(images: np.ndarray, truths: np.ndarray, preds: np.ndarray, path: Path, title: str) -> None:
    """One row per image: image | ground truth | prediction, and a legend of the classes shown."""
    plt = _plt()
    from matplotlib.patches import Patch

    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n + 0.8), dpi=100, squeeze=False)
    for row, (img, gt, pr) in enumerate(zip(images, truths, preds, strict=True)):
        for col, (pic, name) in enumerate([(img, "image"), (colorize(gt), "ground truth"),
                                           (colorize(pr), "prediction")]):
            axes[row][col].imshow(pic)
            axes[row][col].set_axis_off()
            if row == 0:
                axes[row][col].set_title(name)
    shown = sorted(set(np.unique(truths).tolist()) | set(np.unique(preds).tolist()))
    handles = [Patch(color=np.array(COLORS[min(c, len(CLASS_NAMES))]) / 255, label=NAMES[min(c, len(CLASS_NAMES))])
               for c in shown]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, max(1, len(handles))), fontsize=7)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    fig.savefig(path)
    plt.close(fig)


def denormalize(batch: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pixels = (batch.float().cpu() * std + mean).clamp(0, 1) * 255
    return pixels.permute(0, 2, 3, 1).to(torch.uint8).numpy()


class BestEpochVisuals(Callback):
    """Trainer callback: remembers the best epoch's confusion matrix and predictions on the first
    `n_images` validation images, and draws the PNGs into `folder` when training ends."""

    def __init__(self, val_dataset: Any, folder: Path, n_images: int = 4, num_classes: int = len(CLASS_NAMES)):
        self.folder, self.num_classes = Path(folder), num_classes
        self.samples = [val_dataset[i] for i in range(min(n_images, len(val_dataset)))]
        self.best: dict[str, Any] | None = None

    @torch.no_grad()
    def on_epoch_end(self, trainer: Any, epoch: int, metrics: Mapping[str, float]) -> None:
        if trainer.best["epoch"] != epoch or trainer.last_confusion is None or not self.samples:
            return
        images = torch.stack([s[0] for s in self.samples])
        trainer.model.eval()
        with torch.autocast(trainer.device.type, dtype=trainer.amp_dtype, enabled=trainer.amp):
            preds = fine_labels(trainer.model(images.to(trainer.device, memory_format=trainer.memory_format)),
                                self.num_classes)
        self.best = {
            "epoch": epoch, "miou": metrics["val/miou"],
            "confusion": trainer.last_confusion.numpy().copy(),
            "images": denormalize(images),
            "truths": torch.stack([s[1] for s in self.samples]).numpy().astype(np.uint8),
            "preds": preds.cpu().numpy().astype(np.uint8),
        }

    def finish(self, trainer: Any) -> Mapping[str, float]:
        if self.best is None:
            return {}
        self.folder.mkdir(parents=True, exist_ok=True)
        b = self.best
        title = f"best epoch {b['epoch'] + 1}, val mIoU {b['miou']:.3f}"
        iou_bars(iou_per_class(b["confusion"]), self.folder / "per_class_iou.png", f"per-class IoU, {title}")
        confusion(b["confusion"], self.folder / "confusion_matrix.png", f"normalized confusion matrix, {title}")
        overlays(b["images"], b["truths"], b["preds"], self.folder / "val_overlays.png", title)
        return {}
