"""DataLoaders for a train/val split: seeded shuffling (or class-balanced draws), per-worker numpy
seeds, pinned memory on GPU."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, SequentialSampler, WeightedRandomSampler

from seg58.base.choices import SamplerKind
from seg58.base.errors import ConfigError
from seg58.data.build import DataSplits
from seg58.data.dataset import SegmentationDataset
from seg58.data.sampling import masks_on_disk, train_weights


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32  # the loader's draw for this worker: follows its generator
    np.random.seed(seed)
    info = torch.utils.data.get_worker_info()
    _seed_transform(info.dataset if info is not None else None, seed)


def _seed_transform(dataset: object, seed: int) -> None:
    """albumentations 2 draws from each pipeline's own generators, seeded from the OS unless told:
    without this, two runs with the same trainer.seed would augment differently."""
    transform = getattr(dataset, "transform", None)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


def _masks(ds: SegmentationDataset) -> Iterator[np.ndarray]:
    """The masks as loaded (pre-loaded arrays, else read from disk)."""
    if ds.arrays is None:
        return iter(masks_on_disk(ds.samples))
    return (ds.arrays[i][1] for i in range(len(ds)))


def make_loaders(splits: DataSplits, batch_size: int, workers: int, device: torch.device,
                 seed: int, sampler: SamplerKind | str = SamplerKind.random,
                 sampler_power: float = 0.5) -> tuple[DataLoader, DataLoader]:
    """`sampler`: random (every image once per epoch, shuffled) or class_balanced (len(train)
    draws with replacement, weighted by seg58/data/sampling.py); both seeded by `seed`."""
    if len(splits.train) < batch_size:
        raise ConfigError([f"trainer.batch_size={batch_size} is larger than the training split "
                           f"({len(splits.train)} images in {splits.root})"])
    common = dict(num_workers=workers, pin_memory=device.type == "cuda",
                  persistent_workers=workers > 0, worker_init_fn=_seed_worker)
    generator = torch.Generator().manual_seed(seed)
    _seed_transform(splits.train, seed)  # with workers=0 the main process augments
    weights = train_weights(sampler, sampler_power, _masks(splits.train))
    order = dict(shuffle=True) if weights is None else dict(sampler=WeightedRandomSampler(
        weights.tolist(), num_samples=len(splits.train), replacement=True, generator=generator))
    train = DataLoader(splits.train, batch_size=batch_size, drop_last=True, generator=generator,
                       **order, **common)
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
