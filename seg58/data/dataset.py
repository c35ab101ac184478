"""Torch dataset over ARTeFACT samples, decoded once into RAM as uint8 (the seed's key win)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset

from seg58.data.folder import DataError, Sample, load_pair


def preload(samples: list[Sample], max_side: int | None, threads: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode and validate every pair; raise one DataError naming every bad file.

    uint8 arrays in one process: DataLoader workers fork and share these pages copy-on-write,
    and numpy buffers carry no refcounts, so the memory is not multiplied by workers.
    """
    def load(s: Sample):
        try:
            return load_pair(s, max_side)
        except DataError as e:
            return e

    with ThreadPoolExecutor(max(1, threads)) as pool:  # PIL decoding releases the GIL
        results = list(pool.map(load, samples))
    problems = [p for r in results if isinstance(r, DataError) for p in r.problems]
    if problems:
        raise DataError(problems)
    return results  # type: ignore[return-value]


class SegmentationDataset(Dataset):
    """(image float CHW, mask long HW) pairs from pre-loaded arrays or lazily from disk."""

    def __init__(
        self,
        samples: list[Sample],
        transform: Callable[..., dict],
        arrays: list[tuple[np.ndarray, np.ndarray]] | None = None,
        max_side: int | None = None,
    ):
        self.samples = samples
        self.transform = transform
        self.arrays = arrays
        self.max_side = max_side

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.arrays[i] if self.arrays is not None else load_pair(self.samples[i], self.max_side)
        out = self.transform(image=image, mask=mask)
        return out["image"], out["mask"].long()
