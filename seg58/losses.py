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
