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

    @torch.no_grad()
    def per_image(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, C, C) matrices, one per image of a (B, H, W) batch (an (H, W) map is one image), in one
        bincount on the device: image b's pixels are counted at offset b*C*C. Not accumulated."""
        if target.dim() == 2:
            pred, target = pred[None], target[None]
        c, b = self.num_classes, target.shape[0]
        offset = torch.arange(b, device=target.device).view(b, *[1] * (target.dim() - 1)) * (c * c)
        idx = (offset + target.long() * c + pred.long())[target != self.ignore_index]
        return torch.bincount(idx, minlength=b * c * c).view(b, c, c)

    def compute(self, scored: int | None = None) -> dict:
        """IoU, precision, recall and F1 per class; classes absent from the ground truth are NaN
        and left out of `miou` and of the means `mprecision`, `mrecall`, `mf1`.

        Counting an absent class as 0 (or 1) would make mIoU depend on which rare classes
        happen to be in the validation split rather than on the model. `miou_all` is the other
        convention, for comparison with papers that use it: the sum of the present classes' IoU
        over all `scored` classes (default: every class), i.e. an absent class counts as IoU 0,
        predicted or not. `scored` leaves out trailing catch-all columns whose row is always empty.
        """
        m = self.matrix.double().cpu()
        tp = m.diag()
        iou = iou_per_class(m)
        precision, recall, f1 = precision_recall_f1(m)
        total = float(m.sum())
        scored = self.num_classes if scored is None else scored
        return {
            "miou": _mean_present(iou),
            "miou_all": sum(v for v in iou[:scored] if not math.isnan(v)) / scored if total else math.nan,
            "iou": iou,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "mprecision": _mean_present(precision),
            "mrecall": _mean_present(recall),
            "mf1": _mean_present(f1),
            "pixel_acc": float(tp.sum()) / total if total else math.nan,
        }


def _mean_present(values: list[float]) -> float:
    present = [v for v in values if not math.isnan(v)]
    return sum(present) / len(present) if present else math.nan


def iou_per_class(matrix: torch.Tensor) -> list[float]:
    """IoU of each class from a (truth x prediction) confusion matrix; NaN where the class is
    absent from the ground truth."""
    m = torch.as_tensor(matrix).double()
    tp, gt = m.diag(), m.sum(1)
    union = gt + m.sum(0) - tp
    return [float(tp[c] / union[c]) if gt[c] > 0 else math.nan for c in range(m.shape[0])]


def precision_recall_f1(matrix: torch.Tensor) -> tuple[list[float], list[float], list[float]]:
    """Per class, from a (truth x prediction) confusion matrix: precision = TP / predicted,
    recall = TP / truth, F1 = 2 TP / (truth + predicted) (the harmonic mean of the two, and
    equal to Dice). NaN where the class is absent from the ground truth, as for IoU; a present
    class that is never predicted has precision 0 (not NaN), so never predicting a class cannot
    raise the mean precision."""
    m = torch.as_tensor(matrix).double()
    tp, gt, predicted = m.diag(), m.sum(1), m.sum(0)
    present = [c for c in range(m.shape[0]) if gt[c] > 0]
    nan = [math.nan] * m.shape[0]
    precision, recall, f1 = list(nan), list(nan), list(nan)
    for c in present:
        precision[c] = float(tp[c] / predicted[c]) if predicted[c] > 0 else 0.0
        recall[c] = float(tp[c] / gt[c])
        f1[c] = float(2 * tp[c] / (gt[c] + predicted[c]))
    return precision, recall, f1
