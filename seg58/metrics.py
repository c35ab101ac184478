"""Confusion-matrix segmentation metrics, accumulated on the device (no per-step sync)."""

from __future__ import annotations

import math

import torch


class ConfusionMatrix:
    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str = "cpu"):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred, target: integer label maps of the same shape; rows = truth, cols = prediction."""
        keep = target != self.ignore_index
        idx = target[keep].long() * self.num_classes + pred[keep].long()
        self.matrix += torch.bincount(idx, minlength=self.num_classes**2).view(
            self.num_classes, self.num_classes
        )

    def compute(self) -> dict:
        """IoU per class; classes absent from the ground truth are NaN and left out of mIoU.

        Counting an absent class as 0 (or 1) would make mIoU depend on which rare classes
        happen to be in the validation split rather than on the model.
        """
        m = self.matrix.double().cpu()
        tp = m.diag()
        iou = iou_per_class(m)
        present = [v for v in iou if not math.isnan(v)]
        total = float(m.sum())
        return {
            "miou": sum(present) / len(present) if present else math.nan,
            "iou": iou,
            "pixel_acc": float(tp.sum()) / total if total else math.nan,
        }


def iou_per_class(matrix: torch.Tensor) -> list[float]:
    """IoU of each class from a (truth x prediction) confusion matrix; NaN where the class is
    absent from the ground truth."""
    m = torch.as_tensor(matrix).double()
    tp, gt = m.diag(), m.sum(1)
    union = gt + m.sum(0) - tp
    return [float(tp[c] / union[c]) if gt[c] > 0 else math.nan for c in range(m.shape[0])]
