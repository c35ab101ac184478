"""Loss combinations; the single losses come straight from SMP / torch via `_target_`."""

from __future__ import annotations

import torch
from torch import nn


class WeightedSum(nn.Module):
    """sum_i w_i * loss_i(logits, target), e.g. Dice + CE or Dice + Focal."""

    def __init__(self, terms: dict[str, nn.Module], weights: dict[str, float] | None = None):
        super().__init__()
        self.terms = nn.ModuleDict(terms)
        weights = dict(weights or {})
        unknown = set(weights) - set(terms)
        if unknown:
            raise ValueError(f"loss weights for unknown terms {sorted(unknown)}; terms: {sorted(terms)}")
        self.weights = {k: float(weights.get(k, 1.0)) for k in terms}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(self.weights[k] * term(logits, target) for k, term in self.terms.items())


def class_weighted_ce(weights: list[float], ignore_index: int = 255) -> nn.CrossEntropyLoss:
    """Cross-entropy with per-class weights (config lists are not tensors, hence this factory)."""
    return nn.CrossEntropyLoss(weight=torch.tensor(list(weights), dtype=torch.float32),
                               ignore_index=ignore_index)


class BackgroundAsClass(nn.Module):
    """data.background=class: the wrapped loss sees ARTeFACT's background (255) as one more class,
    `background` (16), so the model learns to predict it; the metrics still leave it out."""

    def __init__(self, loss: nn.Module, background: int = 16, ignore_index: int = 255):
        super().__init__()
        self.loss, self.background, self.ignore_index = loss, background, ignore_index

    def forward(self, outputs: torch.Tensor | dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs, target.masked_fill(target == self.ignore_index, self.background))
