"""ARTeFACT-format folders: `images/` + single-channel `annotations/` (+ optional metadata.csv).

Everything here fails *before* training starts and lists every offending file at once, so a
sweep never burns GPU hours on a dataset that breaks at image 300.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from seg58.base.classes import IGNORE_INDEX, NUM_CLASSES
from seg58.base.errors import DataError

# ARTeFACT's scans reach ~12k px wide and one is ~133 MP; its dataset card raises PIL's limit to
# ~244 MP to open them. PIL warns above ~89 MP and refuses above ~179 MP (decompression-bomb guard).
# We read trusted local scans, so raise the ceiling deliberately, above the card's figure, rather
# than disable it. The one value for every reader here (folders, importer, evaluate/predict).
MAX_IMAGE_PIXELS = 300_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MASK_SUFFIX = ".png"
# Single-channel label images: 8-bit (L, or P read as indices) and integer modes (I;16 is how PIL
# reads a 16-bit PNG, I how older PIL and TIFF give it); values must be labels all the same.
MASK_MODES = ("L", "P", "I", "I;16")
VALID_LABELS = frozenset(range(NUM_CLASSES)) | {IGNORE_INDEX}


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    mask: Path
    material: str = ""
    content: str = ""
    source: str = ""  # for augmented copies: the id of the original (kept on one split side)

    @property
    def group(self) -> str:
        return self.source or self.id


def scan_folder(root: str | Path) -> list[Sample]:
    """Pair images with masks by file stem; orphans on either side are errors."""
    root = Path(root)
    img_dir, ann_dir = root / "images", root / "annotations"
    problems = [f"missing folder: {d}" for d in (root, img_dir, ann_dir) if not d.is_dir()]
    if problems:
        raise DataError(problems[:1] if not root.is_dir() else problems, root)
    images = {p.stem: p for p in sorted(img_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in sorted(ann_dir.iterdir()) if p.suffix.lower() == MASK_SUFFIX}
    problems += [f"image without mask: {images[k]}" for k in sorted(images.keys() - masks.keys())]
    problems += [f"mask without image: {masks[k]}" for k in sorted(masks.keys() - images.keys())]
    if not images and not problems:
        problems.append(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {img_dir}")
    if problems:
        raise DataError(problems, root)
    meta = read_metadata(root / "metadata.csv")
    return [
        Sample(k, images[k], masks[k], *meta.get(k, ("", "", ""))) for k in sorted(images)
    ]


def read_metadata(path: Path) -> dict[str, tuple[str, str, str]]:
    """id -> (material, content, source_id); no file means no metadata (plain random splits)."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "id" not in reader.fieldnames:
            raise DataError([f"{path}: needs an 'id' column, has {reader.fieldnames}"])
        return {
            str(row["id"]): (row.get("material") or "", row.get("content") or "", row.get("source_id") or "")
            for row in reader
        }


def fitted_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(w, h) scaled so the longer side is at most `max_side`; unchanged when it already fits."""
    if not max_side or max(size) <= max_side:
        return size
    scale = max_side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def mask_labels(mask: Image.Image, what: str) -> Image.Image:
    """`mask` as an 8-bit label image (L or P), once its mode and every value are checked: a mode in
    MASK_MODES and values in 0..15 or 255; else one DataError naming `what` (the file)."""
    if mask.mode not in MASK_MODES:
        raise DataError([f"{what} has mode {mask.mode}; expected single-channel labels "
                         f"({', '.join(MASK_MODES)})"])
    if mask.mode in ("L", "P"):  # a histogram: no copy of a ~133 MP mask
        array, values = None, [v for v, n in enumerate(mask.histogram()) if n]
    else:
        array = np.asarray(mask)
        values = np.unique(array).tolist()
    bad = sorted(set(values) - VALID_LABELS)
    if bad:
        raise DataError([f"labels out of range in {what}: {bad[:10]} (valid: 0..{NUM_CLASSES - 1} and {IGNORE_INDEX})"])
    return mask if array is None else Image.fromarray(array.astype(np.uint8))


def load_pair(sample: Sample, max_side: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode one image (HxWx3 uint8 RGB) and mask (HxW uint8), validating both.

    `max_side` downsizes on load (area filter for the image, nearest for the mask) so that
    pre-loading a set of huge scans costs memory in proportion to the training resolution.
    """
    problems: list[str] = []
    try:
        with Image.open(sample.image) as im:
            orig_size, target = im.size, fitted_size(im.size, max_side)
            if target != im.size:
                im.draft("RGB", target)  # JPEG: decode at reduced scale, far cheaper for 100+ MP scans
            rgb = im.convert("RGB")
            if rgb.size != target:
                rgb = rgb.resize(target, Image.Resampling.BOX)
            image = np.asarray(rgb)
    except Exception as e:  # PIL raises many types for truncated/corrupt files
        problems.append(f"unreadable image {sample.image}: {e}")
        orig_size, image = None, None
    try:
        with Image.open(sample.mask) as mk:
            mask_size = mk.size
            labels = mask_labels(mk, f"mask {sample.mask}")  # every full-resolution pixel checked
            target = fitted_size(mk.size, max_side)
            mask = np.asarray(labels if target == mk.size else labels.resize(target, Image.Resampling.NEAREST))
    except DataError as e:
        problems += e.problems
        mask_size, mask = None, None
    except Exception as e:
        problems.append(f"unreadable mask {sample.mask}: {e}")
        mask_size, mask = None, None
    if orig_size and mask_size and orig_size != mask_size:
        problems.append(
            f"size mismatch: image {sample.image} is {orig_size[0]}x{orig_size[1]}, "
            f"mask {sample.mask} is {mask_size[0]}x{mask_size[1]}"
        )
    if problems:
        raise DataError(problems)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask.astype(np.uint8))
