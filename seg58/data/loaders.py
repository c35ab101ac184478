"""DataLoaders for a train/val split: seeded shuffling, per-worker numpy seeds, pinned memory
on GPU."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, SequentialSampler

from seg58.base.errors import ConfigError
from seg58.data.build import DataSplits


def _seed_worker(worker_id: int) -> None:
    np.random.seed(torch.initial_seed() % 2**32)


def make_loaders(splits: DataSplits, batch_size: int, workers: int, device: torch.device,
                 seed: int) -> tuple[DataLoader, DataLoader]:
    if len(splits.train) < batch_size:
        raise ConfigError([f"trainer.batch_size={batch_size} is larger than the training split "
                           f"({len(splits.train)} images in {splits.root})"])
    common = dict(num_workers=workers, pin_memory=device.type == "cuda",
                  persistent_workers=workers > 0, worker_init_fn=_seed_worker)
    train = DataLoader(splits.train, batch_size=batch_size, shuffle=True, drop_last=True,
                       generator=torch.Generator().manual_seed(seed), **common)
    val = DataLoader(splits.val, batch_size=batch_size, shuffle=False, **common)
    return train, val


def ordered_samples(loader: Any) -> list[Any] | None:
    """The samples a loader yields, in its order when it does not shuffle (validation), so that
    per-image results can be attributed to images by position; None when that order is unknown."""
    dataset = getattr(loader, "dataset", None)
    samples = getattr(dataset, "samples", None)
    if samples is None or not isinstance(getattr(loader, "sampler", None), SequentialSampler):
        return None
    return list(samples) if len(samples) == len(dataset) else None
