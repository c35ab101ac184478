"""Torch dataset over ARTeFACT samples, decoded once into RAM as uint8 (the seed's key win)."""

from __future__ import annotations

import copy
import ctypes
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from seg58.base.errors import DataError
from seg58.data.folder import Sample, fitted_size, load_pair


class PackedPairs:
    """Every pre-loaded image and mask in ONE uint8 buffer in shared memory.

    One allocation sized from the file headers: no per-image allocator slack, no freed decode
    buffers left in malloc arenas, so RSS stays at the raw pixel bytes. DataLoader workers map
    the same pages (fork or spawn alike), so memory does not grow with the worker count.
    """

    def __init__(self, sizes: list[tuple[int, int]]):  # (w, h) per pair
        self.shapes = [((h, w, 3), (h, w)) for w, h in sizes]
        offsets, pos = [], 0
        for img, _mask in self.shapes:
            offsets.append(pos)
            pos += img[0] * img[1] * 4  # 3 bytes image + 1 byte mask per pixel
        self.offsets = offsets
        self.buffer = torch.empty(pos, dtype=torch.uint8).share_memory_()
        self.nbytes = pos
        self.indices = list(range(len(sizes)))

    def _views(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        (ishape, mshape), start = self.shapes[j], self.offsets[j]
        flat = self.buffer.numpy()
        n_img = ishape[0] * ishape[1] * 3
        image = flat[start:start + n_img].reshape(ishape)
        mask = flat[start + n_img:start + n_img + mshape[0] * mshape[1]].reshape(mshape)
        return image, mask

    def put(self, j: int, image: np.ndarray, mask: np.ndarray) -> None:
        dst_image, dst_mask = self._views(j)
        dst_image[...] = image
        dst_mask[...] = mask

    def subset(self, positions: list[int]) -> PackedPairs:
        view = copy.copy(self)
        view.indices = [self.indices[p] for p in positions]
        return view

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self._views(self.indices[i])


def preload(samples: list[Sample], max_side: int | None, threads: int = 4,
            keep: bool = True) -> PackedPairs | None:
    """Decode and validate every pair into one shared buffer; raise one DataError naming every
    bad file. Headers first (cheap) to size the buffer, then decode straight into place.
    keep=False only validates (for data that will be read lazily), holding nothing."""

    def size_of(s: Sample) -> tuple[int, int] | None:
        try:
            with Image.open(s.image) as im:
                return fitted_size(im.size, max_side)
        except Exception:
            return None  # reported with its reason by the decode pass

    with ThreadPoolExecutor(max(1, threads)) as pool:  # PIL releases the GIL while decoding
        sizes = list(pool.map(size_of, samples)) if keep else [(0, 0)] * len(samples)
        packed = PackedPairs([size or (0, 0) for size in sizes]) if keep else None

        def load(j: int) -> list[str]:
            try:
                image, mask = load_pair(samples[j], max_side)
            except DataError as e:
                return e.problems
            if packed is None:
                return []
            if image.shape != packed.shapes[j][0]:
                return [f"{samples[j].image}: decoded as {image.shape}, header said {packed.shapes[j][0]}"]
            packed.put(j, image, mask)
            return []

        problems = [p for ps in pool.map(load, range(len(samples))) for p in ps]
    _release_freed_memory()
    if problems:
        raise DataError(problems)
    return packed


def _release_freed_memory() -> None:
    """Decoding threads leave freed buffers in glibc's per-thread arenas, counted in RSS until
    trimmed; give them back so pre-loading costs the pixels and nothing more."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class SegmentationDataset(Dataset):
    """(image float CHW, mask long HW) pairs from pre-loaded arrays or lazily from disk."""

    def __init__(
        self,
        samples: list[Sample],
        transform: Callable[..., dict],
        arrays: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
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
