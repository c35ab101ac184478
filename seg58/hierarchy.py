"""Hierarchical heads (seed phase 2): fine (16 classes), coarse (4 groups), binary (damage?).

All three share the encoder and decoder; coarse and binary are light 1x1 convolutions on the
decoder output next to SMP's own segmentation head. Documented class mapping:

| coarse group | fine classes |
|---|---|
| 0 clean | 0 Clean |
| 1 structural (material lost or deformed) | 1 Material loss, 2 Peel, 4 Scratch, 7 Fold, 9 Cracks, |
|  | 13 Puncture, 14 Burn marks |
| 2 surface (deposits, discoloration, optical) | 3 Dust, 5 Hair, 6 Dirt, 10 Staining, 15 Lightleak |
| 3 additions (later marks on the object) | 8 Writing, 11 Stamp, 12 Sticker |

binary: 0 clean (fine 0), 1 damage (fine 1..15). 255 (ignore) stays 255 at every level.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

COARSE_NAMES = ("clean", "structural", "surface", "additions")
BINARY_NAMES = ("clean", "damage")
FINE_TO_COARSE = (0, 1, 1, 2, 1, 2, 2, 1, 3, 1, 2, 3, 3, 1, 1, 2)
LEVELS = ("fine", "coarse", "binary")
LEVEL_NAMES = {"coarse": COARSE_NAMES, "binary": BINARY_NAMES}  # the levels above fine


@cache
def lookup(ignore_index: int = 255, device: str = "cpu") -> dict[str, torch.Tensor]:
    """256-entry tables mapping fine labels to each level (ignore maps to ignore); built once
    per device, not on every training step."""
    tables = {}
    for level, values in (("coarse", FINE_TO_COARSE), ("binary", [0] + [1] * 15)):
        table = torch.full((256,), ignore_index, dtype=torch.long)
        table[: len(values)] = torch.tensor(values)
        tables[level] = table.to(device)
    return tables


def targets(fine: torch.Tensor, ignore_index: int = 255) -> dict[str, torch.Tensor]:
    tables = lookup(ignore_index, str(fine.device))
    return {"fine": fine, **{k: t[fine] for k, t in tables.items()}}


class HierarchicalModel(nn.Module):
    """Wraps an SMP model; forward returns {"fine", "coarse", "binary"} logits at input size."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        channels = model.segmentation_head[0].in_channels
        self.coarse_head = nn.Conv2d(channels, len(COARSE_NAMES), kernel_size=1)
        self.binary_head = nn.Conv2d(channels, len(BINARY_NAMES), kernel_size=1)

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
                 weights: dict[str, float] | None = None, ignore_index: int = 255):
        super().__init__()
        self.terms = nn.ModuleDict({"fine": fine, "coarse": coarse, "binary": binary})
        self.weights = {"binary": 0.2, "coarse": 0.3, "fine": 0.5, **dict(weights or {})}
        unknown = set(self.weights) - set(LEVELS)
        if unknown:
            raise ValueError(f"loss.weights: unknown levels {sorted(unknown)}; valid: {LEVELS}")
        self.ignore_index = ignore_index

    def forward(self, outputs: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if not isinstance(outputs, dict):
            raise TypeError("loss=hierarchical needs model.hierarchical=true (three outputs)")
        labels = targets(target, self.ignore_index)
        return sum(self.weights[k] * self.terms[k](outputs[k].float(), labels[k]) for k in LEVELS)


def fine_logits(outputs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    """The 16-class logits of either kind of model."""
    return outputs["fine"] if isinstance(outputs, dict) else outputs
