"""How far predicted probabilities can be trusted: expected calibration error over pixels, and
the per-pixel normalised entropy shown as an uncertainty map.

ECE (Guo et al. 2017) bins each pixel's top-class probability (its confidence) into equal-width
bins ((m-1)/M, m/M] and sums |accuracy - mean confidence| of each bin weighted by its share of
the pixels. Only three numbers per bin are kept, accumulated on the device, so a whole split is
scored without holding its pixels.
"""

from __future__ import annotations

import math

import torch


class CalibrationBins:
    """Per-bin pixel count, confidence sum and correct count over every `update`."""

    def __init__(self, n_bins: int = 15, ignore_index: int = 255, device: torch.device | str = "cpu"):
        if n_bins < 1:
            raise ValueError(f"n_bins={n_bins} must be at least 1")
        self.n_bins, self.ignore_index = n_bins, ignore_index
        self.edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64, device=device)
        self.count = torch.zeros(n_bins, dtype=torch.int64, device=device)
        self.correct = torch.zeros(n_bins, dtype=torch.int64, device=device)
        self.confidence = torch.zeros(n_bins, dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, probs: torch.Tensor, truth: torch.Tensor, dim: int = 0) -> None:
        """probs: class probabilities along `dim` (CxHxW by default); truth: the label map of the
        other dims. Pixels labelled `ignore_index` are left out. A predicted class that no truth
        carries (a background output) is simply wrong."""
        confidence, pred = probs.max(dim)
        keep = truth != self.ignore_index
        confidence, hit = confidence[keep].double(), (pred[keep] == truth[keep])
        # bucketize(right=False) on the inner edges puts c in bin m when edges[m] < c <= edges[m+1]
        bins = torch.bucketize(confidence, self.edges[1:-1])
        self.count += torch.bincount(bins, minlength=self.n_bins)
        self.correct += torch.bincount(bins[hit], minlength=self.n_bins)
        self.confidence += torch.bincount(bins, weights=confidence, minlength=self.n_bins)

    def table(self) -> dict[str, list[float]]:
        """The reliability table, on the CPU: per bin its edges, pixel count, accuracy and mean
        confidence (NaN for an empty bin)."""
        count = self.count.double().cpu()
        nonempty = count.clamp(min=1)
        empty = count == 0
        return {
            "lower": self.edges[:-1].cpu().tolist(),
            "upper": self.edges[1:].cpu().tolist(),
            "count": self.count.cpu().tolist(),
            "accuracy": (self.correct.cpu() / nonempty).masked_fill(empty, math.nan).tolist(),
            "confidence": (self.confidence.cpu() / nonempty).masked_fill(empty, math.nan).tolist(),
        }

    def ece(self) -> float:
        """sum over bins of |accuracy - confidence| * n_bin / N; NaN before any scored pixel."""
        total = int(self.count.sum())
        if not total:
            return math.nan
        gap = (self.correct.double() - self.confidence).abs()  # n_bin * |acc - conf|
        return float(gap.sum()) / total


def normalized_entropy(probs: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """H(p) / log(C) along `dim`: 0 for a one-hot distribution, 1 for the uniform one."""
    classes = probs.shape[dim]
    if classes < 2:
        return torch.zeros_like(probs.select(dim, 0))
    return (torch.special.entr(probs).sum(dim) / math.log(classes)).clamp(0, 1)
