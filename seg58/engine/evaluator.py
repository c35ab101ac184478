"""One evaluator for validation and `seg58 evaluate`: fine IoU and the coarse/binary levels.

Levels are scored from the fine prediction mapped through the damage hierarchy, so every model,
flat or hierarchical, gets comparable coarse/binary numbers. A hierarchical model's own coarse
and binary heads are scored as well, under `<prefix>/heads/<level>/`.

A prediction outside a level's classes — background (255) from a model trained with
data.background=class, or at the coarse level a fine class the mapping leaves unscored (Clean in
`poc55`) — is wrong on every scored pixel: it is counted in one extra column of that level's
confusion matrix, whose row stays empty (such truth is never scored), so it never enters mIoU.

With `per_image`, one fine confusion matrix per image is kept too (one bincount per batch), so that
any grouping (material, content) or resampling (bootstrap intervals) is scored later from sums.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from seg58.base.choices import Background, HierarchyMapping
from seg58.base.classes import CLASS_NAMES, IGNORE_INDEX, metric_key
from seg58.modeling.hierarchy import hierarchy, lookup
from seg58.modeling.intervals import bootstrap_miou, group_mious
from seg58.modeling.metrics import ConfusionMatrix

DOMAINS = ("material", "content")  # the Sample metadata that per-domain metrics group by


class SegmentationEvaluator:
    def __init__(self, num_classes: int = len(CLASS_NAMES), class_names: Sequence[str] = CLASS_NAMES,
                 ignore_index: int = IGNORE_INDEX, device: torch.device | str = "cpu",
                 background: Background | str = Background.ignore,
                 mapping: HierarchyMapping | str = HierarchyMapping.seg58, per_image: bool = False,
                 n_boot: int = 1000, seed: int = 0):
        self.num_classes, self.ignore_index, self.device = num_classes, ignore_index, device  # the model's
        background = Background(background) == "class"
        self._tables = lookup(ignore_index, str(device), HierarchyMapping(mapping))
        self._heads_names = hierarchy(mapping).level_names
        self.class_names = (*class_names, "background") if background else tuple(class_names)
        self.level_names = {}
        self._other = {"fine"} if background else set()  # levels with the extra column
        for level, names in self._heads_names.items():
            if background or bool((self._tables[level][:num_classes] == ignore_index).any()):
                self._other.add(level)
                names = (*names, "other")
            self.level_names[level] = names
        self.fine = ConfusionMatrix(num_classes + int(background), ignore_index, device)
        self.levels = {level: ConfusionMatrix(len(names), ignore_index, device)
                       for level, names in self.level_names.items()}
        self.heads: dict[str, ConfusionMatrix] = {}
        self._images: list[torch.Tensor] | None = [] if per_image else None  # (B, C, C) per batch
        self.image_ids: list[str] = []
        self.image_groups: list[str] = []  # each image's source: the bootstrap draws sources, copies together
        self._domains: dict[str, list[str]] = {d: [] for d in DOMAINS}
        self.n_boot, self.seed = n_boot, seed

    def _scored(self, pred: torch.Tensor, level: str, cm: ConfusionMatrix) -> torch.Tensor:
        """A prediction of 255 (outside the level's classes) -> the level's extra column."""
        return pred.masked_fill(pred == self.ignore_index, cm.num_classes - 1) if level in self._other else pred

    @torch.no_grad()
    def update(self, pred: torch.Tensor, truth: torch.Tensor,
               head_preds: dict[str, torch.Tensor] | None = None, samples: Sequence[Any] | None = None) -> None:
        """pred, truth: fine label maps; head_preds: {"coarse"|"binary": label map} of extra heads;
        samples: the images of the batch, in order (their .id, .material, .content), for per-image
        matrices (else they are numbered by position)."""
        fine_pred = self._scored(pred, "fine", self.fine)
        if self._images is None:
            self.fine.update(fine_pred, truth)
        else:  # the total is the sum of the images': one bincount, not two
            matrices = self.fine.per_image(fine_pred, truth)
            self.fine.matrix += matrices.sum(0)
            self._keep_images(matrices, samples)
        for level, cm in self.levels.items():
            table = self._tables[level]
            cm.update(self._scored(table[pred], level, cm), table[truth])
        for level, level_pred in (head_preds or {}).items():
            if level not in self.heads:
                self.heads[level] = ConfusionMatrix(len(self._heads_names[level]), self.ignore_index, self.device)
            self.heads[level].update(level_pred, self._tables[level][truth])

    def _keep_images(self, matrices: torch.Tensor, samples: Sequence[Any] | None) -> None:
        if samples is not None and len(samples) != len(matrices):
            raise ValueError(f"{len(samples)} samples for a batch of {len(matrices)} images")
        self._images.append(matrices)
        start = len(self.image_ids)
        self.image_ids += [s.id for s in samples] if samples is not None else [
            str(start + i) for i in range(len(matrices))]
        self.image_groups += [getattr(s, "group", None) or s.id for s in samples] if samples is not None \
            else self.image_ids[start:]
        for d in DOMAINS:
            self._domains[d] += [getattr(s, d, "") for s in samples] if samples is not None else [""] * len(matrices)

    def per_image_confusion(self) -> tuple[list[str], np.ndarray]:
        """(image ids, (N, C, C) int64 fine matrices) in the order seen; needs per_image=True."""
        if self._images is None:
            raise RuntimeError("SegmentationEvaluator(per_image=True) keeps per-image matrices")
        c = self.fine.num_classes
        stacked = torch.cat(self._images).cpu().numpy() if self._images else np.zeros((0, c, c), np.int64)
        return list(self.image_ids), stacked

    def image_metrics(self, prefix: str) -> dict[str, float]:
        """`<prefix>/miou_ci_low|high` (bootstrap percentile interval over source images) and
        `<prefix>/<material|content>/<name>/miou`, from the per-image matrices."""
        if not self.image_ids:
            return {}
        _, matrices = self.per_image_confusion()
        _, low, high = bootstrap_miou(matrices, self.n_boot, self.seed, groups=self.image_groups)
        out = {f"{prefix}/miou_ci_low": low, f"{prefix}/miou_ci_high": high}
        for d in DOMAINS:
            out.update({f"{prefix}/{d}/{metric_key(name)}/miou": v
                        for name, v in group_mious(matrices, self._domains[d]).items()})
        return {k: v for k, v in out.items() if not math.isnan(v)}

    @property
    def confusion(self) -> torch.Tensor:
        """The fine (truth x prediction) confusion matrix, on the CPU (with data.background=class,
        its last row and column are the background)."""
        return self.fine.matrix.cpu()

    def metrics(self, prefix: str, detailed: bool = False) -> dict[str, float]:
        """`<prefix>/miou`, `/miou_all`, `/pixel_acc`, `/iou/<class>`, `/<level>/...`, `/heads/<level>/...`;
        `detailed` adds `/precision|recall|f1/<class>` and their means `/mprecision|mrecall|mf1` at
        every level (`seg58 evaluate`; validation leaves them out: 4x the metrics every epoch).
        With per_image, the interval and per-domain metrics of `image_metrics` too.

        A class absent from the ground truth has no IoU (nor precision, recall, F1): it is left
        out, not logged as 0; only `miou_all` counts it, as 0, over all the level's classes.
        """
        out = _scores(self.fine, prefix, [metric_key(n) for n in self.class_names], pixel_acc=True,
                      extra="fine" in self._other, detailed=detailed)
        for level, cm in self.levels.items():
            out.update(_scores(cm, f"{prefix}/{level}", self.level_names[level], extra=level in self._other,
                               detailed=detailed))
        for level, cm in self.heads.items():
            out.update(_scores(cm, f"{prefix}/heads/{level}", self._heads_names[level], detailed=detailed))
        if self._images is not None:
            out.update(self.image_metrics(prefix))
        return out


def _scores(cm: ConfusionMatrix, prefix: str, names: Sequence[str], pixel_acc: bool = False,
            extra: bool = False, detailed: bool = False) -> dict[str, float]:
    """`extra`: the last column is the catch-all one (never in the truth), not counted in miou_all."""
    result = cm.compute(scored=cm.num_classes - extra)
    out = {f"{prefix}/miou": result["miou"], f"{prefix}/miou_all": result["miou_all"]}
    if pixel_acc:
        out[f"{prefix}/pixel_acc"] = result["pixel_acc"]
    kinds = ("iou", "precision", "recall", "f1") if detailed else ("iou",)
    for kind in kinds:
        out.update({f"{prefix}/{kind}/{n}": v for n, v in zip(names, result[kind], strict=True) if not math.isnan(v)})
    if detailed:
        out.update({f"{prefix}/m{kind}": result[f"m{kind}"] for kind in kinds[1:]})
    return out
