"""From data settings to train/val datasets: locate or generate, scan, split, pre-load."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from seg58.data.dataset import SegmentationDataset, preload
from seg58.data.folder import Sample, scan_folder
from seg58.data.splits import SplitSpec
from seg58.data.synthetic import ensure_synthetic
from seg58.data.transforms import train_transform, val_transform

log = logging.getLogger(__name__)


@dataclass
class DataSplits:
    root: Path
    train: SegmentationDataset
    val: SegmentationDataset
    pixel_bytes: int  # raw uint8 bytes of the pre-loaded images + masks (0 when lazy)


def resolve_root(root: str | Path, synthetic: dict | None) -> Path:
    """The dataset folder; for synthetic data, generate it into `root` (a cache) first."""
    if synthetic:
        return ensure_synthetic(root, **synthetic)
    return Path(root).expanduser()


def build_splits(
    root: str | Path,
    img_size: int,
    split: SplitSpec = SplitSpec(),  # noqa: B008 -- frozen dataclass, safe as a default
    preload_ram: bool = True,
    max_side: int | None = None,
    synthetic: dict | None = None,
    io_threads: int = 4,
) -> DataSplits:
    folder = resolve_root(root, synthetic)
    samples: list[Sample] = scan_folder(folder)
    train_s, val_s = split.apply(samples)
    # Decoding validates every file; without pre-loading it is still done once, up front, so a
    # corrupt image fails the run now rather than in epoch 7.
    packed = preload(samples, max_side, io_threads, keep=preload_ram)
    position = {s.id: i for i, s in enumerate(samples)}

    def pick(subset: list[Sample]):
        return packed.subset([position[s.id] for s in subset]) if packed is not None else None

    nbytes = packed.nbytes if packed is not None else 0
    log.info("data %s: %d train / %d val images, pre-loaded %.1f MB",
             folder, len(train_s), len(val_s), nbytes / 2**20)
    return DataSplits(
        root=folder,
        train=SegmentationDataset(train_s, train_transform(img_size), pick(train_s), max_side),
        val=SegmentationDataset(val_s, val_transform(img_size), pick(val_s), max_side),
        pixel_bytes=nbytes,
    )
