"""One evaluator for validation and `seg58 evaluate`: fine IoU and the coarse/binary levels.

Levels are scored from the fine prediction mapped through the damage hierarchy, so every model,
flat or hierarchical, gets comparable coarse/binary numbers. A hierarchical model's own coarse
and binary heads are scored as well, under `<prefix>/heads/<level>/`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from seg58.classes import CLASS_NAMES, IGNORE_INDEX, metric_key
from seg58.hierarchy import LEVEL_NAMES, lookup
from seg58.metrics import ConfusionMatrix


class SegmentationEvaluator:
    def __init__(self, num_classes: int = len(CLASS_NAMES), class_names: Sequence[str] = CLASS_NAMES,
                 ignore_index: int = IGNORE_INDEX, device: torch.device | str = "cpu"):
        self.class_names, self.ignore_index, self.device = class_names, ignore_index, device
        self.fine = ConfusionMatrix(num_classes, ignore_index, device)
        self.levels = {level: ConfusionMatrix(len(names), ignore_index, device)
                       for level, names in LEVEL_NAMES.items()}
        self.heads: dict[str, ConfusionMatrix] = {}
        self._tables = lookup(ignore_index, str(device))

    @torch.no_grad()
    def update(self, pred: torch.Tensor, truth: torch.Tensor,
               head_preds: dict[str, torch.Tensor] | None = None) -> None:
        """pred, truth: fine label maps; head_preds: {"coarse"|"binary": label map} of extra heads."""
        self.fine.update(pred, truth)
        for level, cm in self.levels.items():
            table = self._tables[level]
            cm.update(table[pred], table[truth])
        for level, level_pred in (head_preds or {}).items():
            if level not in self.heads:
                self.heads[level] = ConfusionMatrix(len(LEVEL_NAMES[level]), self.ignore_index, self.device)
            self.heads[level].update(level_pred, self._tables[level][truth])

    @property
    def confusion(self) -> torch.Tensor:
        """The fine (truth x prediction) confusion matrix, on the CPU."""
        return self.fine.matrix.cpu()

    def metrics(self, prefix: str) -> dict[str, float]:
        """`<prefix>/miou`, `/pixel_acc`, `/iou/<class>`, `/<level>/...`, `/heads/<level>/...`.

        A class absent from the ground truth has no IoU: it is left out, not logged as 0.
        """
        out = _scores(self.fine, prefix, [metric_key(n) for n in self.class_names], pixel_acc=True)
        for level, cm in self.levels.items():
            out.update(_scores(cm, f"{prefix}/{level}", LEVEL_NAMES[level]))
        for level, cm in self.heads.items():
            out.update(_scores(cm, f"{prefix}/heads/{level}", LEVEL_NAMES[level]))
        return out


def _scores(cm: ConfusionMatrix, prefix: str, names: Sequence[str], pixel_acc: bool = False) -> dict[str, float]:
    result = cm.compute()
    out = {f"{prefix}/miou": result["miou"]}
    if pixel_acc:
        out[f"{prefix}/pixel_acc"] = result["pixel_acc"]
    out.update({f"{prefix}/iou/{n}": v for n, v in zip(names, result["iou"], strict=True) if not math.isnan(v)})
    return out
