"""Hierarchical heads (seed phase 2): fine (16 classes), coarse (4 groups), binary (damage?).

All three share the encoder and decoder; coarse and binary are light 1x1 convolutions on the
decoder output next to SMP's own segmentation head. ARTeFACT defines no coarse groups: the
16 -> 4 -> 2 mapping is a choice (`data.hierarchy`). Ours, `seg58` (the default):

| coarse group | fine classes |
|---|---|
| 0 clean | 0 Clean |
| 1 structural (material lost or deformed) | 1 Material loss, 2 Peel, 4 Scratch, 7 Fold, 9 Cracks, |
|  | 13 Puncture, 14 Burn marks |
| 2 surface (deposits, discoloration, optical) | 3 Dust, 5 Hair, 6 Dirt, 10 Staining, 15 Lightleak |
| 3 additions (later marks on the object) | 8 Writing, 11 Stamp, 12 Sticker |

binary: 0 clean (fine 0), 1 damage (fine 1..15). 255 (ignore) stays 255 at every level.

`poc55`, the seed's POC-5.5 grouping, so that results compare with its figures: group0 = Material
loss, Peel, Dust, Scratch; group1 = Hair, Dirt, Staining, Stamp; group2 = Fold, Cracks, Puncture;
group3 = Writing, Sticker, Burn marks, Lightleak; Clean is not scored at the coarse level (255)
and is "no damage" (0) at the binary level.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from seg58.base.choices import HierarchyMapping
from seg58.base.classes import IGNORE_INDEX, NUM_CLASSES

LEVELS = ("fine", "coarse", "binary")


@dataclass(frozen=True)
class Hierarchy:
    """One grouping of the fine classes: per fine label its coarse group and binary value; None =
    not scored at that level (mapped to ignore)."""

    coarse_names: tuple[str, ...]
    fine_to_coarse: tuple[int | None, ...]
    binary_names: tuple[str, ...] = ("clean", "damage")
    fine_to_binary: tuple[int | None, ...] = (0,) + (1,) * (NUM_CLASSES - 1)

    @property
    def level_names(self) -> dict[str, tuple[str, ...]]:
        """The levels above fine and their class names."""
        return {"coarse": self.coarse_names, "binary": self.binary_names}


HIERARCHIES = {
    HierarchyMapping.seg58: Hierarchy(("clean", "structural", "surface", "additions"),
                                      (0, 1, 1, 2, 1, 2, 2, 1, 3, 1, 2, 3, 3, 1, 1, 2)),
    HierarchyMapping.poc55: Hierarchy(("group0", "group1", "group2", "group3"),
                                      (None, 0, 0, 0, 0, 1, 1, 2, 3, 2, 1, 1, 3, 2, 3, 3)),
}


def hierarchy(mapping: HierarchyMapping | str = HierarchyMapping.seg58) -> Hierarchy:
    return HIERARCHIES[HierarchyMapping(mapping)]


@cache
def lookup(ignore_index: int = IGNORE_INDEX, device: str = "cpu",
           mapping: HierarchyMapping | str = HierarchyMapping.seg58) -> dict[str, torch.Tensor]:
    """256-entry tables mapping fine labels to each level (ignore, and any label the mapping
    leaves unscored, map to ignore); built once per device, not on every training step."""
    h = hierarchy(mapping)
    tables = {}
    for level, values in (("coarse", h.fine_to_coarse), ("binary", h.fine_to_binary)):
        table = torch.full((256,), ignore_index, dtype=torch.long)
        table[: len(values)] = torch.tensor([ignore_index if v is None else v for v in values])
        tables[level] = table.to(device)
    return tables


def targets(fine: torch.Tensor, ignore_index: int = IGNORE_INDEX,
            mapping: HierarchyMapping | str = HierarchyMapping.seg58) -> dict[str, torch.Tensor]:
    tables = lookup(ignore_index, str(fine.device), HierarchyMapping(mapping))
    return {"fine": fine, **{k: t[fine] for k, t in tables.items()}}


class HierarchicalModel(nn.Module):
    """Wraps an SMP model; forward returns {"fine", "coarse", "binary"} logits at input size."""

    def __init__(self, model: nn.Module, mapping: HierarchyMapping | str = HierarchyMapping.seg58):
        super().__init__()
        self.model = model
        channels = model.segmentation_head[0].in_channels
        h = hierarchy(mapping)
        self.coarse_head = nn.Conv2d(channels, len(h.coarse_names), kernel_size=1)
        self.binary_head = nn.Conv2d(channels, len(h.binary_names), kernel_size=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        decoded = self.model.decoder(self.model.encoder(x))
        fine = self.model.segmentation_head(decoded)
        size = fine.shape[-2:]
        return {
            "fine": fine,
            "coarse": F.interpolate(self.coarse_head(decoded), size=size, mode="bilinear", align_corners=False),
            "binary": F.interpolate(self.binary_head(decoded), size=size, mode="bilinear", align_corners=False),
        }


class HierarchicalLoss(nn.Module):
    """weights["binary"] * L_binary + weights["coarse"] * L_coarse + weights["fine"] * L_fine."""

    def __init__(self, fine: nn.Module, coarse: nn.Module, binary: nn.Module,
                 weights: dict[str, float] | None = None, ignore_index: int = IGNORE_INDEX,
                 mapping: HierarchyMapping | str = HierarchyMapping.seg58):
        super().__init__()
        self.terms = nn.ModuleDict({"fine": fine, "coarse": coarse, "binary": binary})
        self.weights = {"binary": 0.2, "coarse": 0.3, "fine": 0.5, **dict(weights or {})}
        unknown = set(self.weights) - set(LEVELS)
        if unknown:
            raise ValueError(f"loss.weights: unknown levels {sorted(unknown)}; valid: {LEVELS}")
        self.ignore_index = ignore_index
        self.mapping = HierarchyMapping(mapping)

    def forward(self, outputs: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if not isinstance(outputs, dict):
            raise TypeError("loss=hierarchical needs model.hierarchical=true (three outputs)")
        labels = targets(target, self.ignore_index, self.mapping)
        return sum(self.weights[k] * self.terms[k](outputs[k].float(), labels[k]) for k in LEVELS)


def fine_logits(outputs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    """The fine logits of either kind of model."""
    return outputs["fine"] if isinstance(outputs, dict) else outputs


def fine_labels(outputs: torch.Tensor | dict[str, torch.Tensor], num_classes: int = NUM_CLASSES,
                dim: int = 1) -> torch.Tensor:
    """Predicted fine labels. An output beyond the `num_classes` scored ones (the background class
    of data.background=class) becomes 255, the label ARTeFACT's own masks give the background."""
    labels = fine_logits(outputs).argmax(dim)
    return labels.masked_fill(labels >= num_classes, IGNORE_INDEX)
