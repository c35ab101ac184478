import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seg58.base.classes import IGNORE_INDEX
from seg58.base.errors import DataError
from seg58.data.build import build_splits
from seg58.data.dataset import preload
from seg58.data.folder import load_pair, scan_folder
from seg58.data.splits import random_split
from seg58.data.synthetic import ensure_synthetic, generate


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_synthetic_is_deterministic_by_seed(tmp_path):
    generate(tmp_path / "a", 6, 64, seed=1)
    generate(tmp_path / "b", 6, 64, seed=1)
    generate(tmp_path / "c", 6, 64, seed=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_synthetic_covers_every_class_and_is_valid_artefact_format(cache_dir):
    root = ensure_synthetic(cache_dir, n_images=30, size=96, seed=0)
    samples = scan_folder(root)
    assert len(samples) == 30 and all(s.material and s.content for s in samples)
    labels = set()
    for s in samples:
        image, mask = load_pair(s)
        assert image.dtype == np.uint8 and image.shape[:2] == mask.shape and image.shape[2] == 3
        labels |= set(np.unique(mask).tolist())
    assert set(range(16)) <= labels and IGNORE_INDEX in labels


def test_synthetic_cache_is_reused(cache_dir):
    first = ensure_synthetic(cache_dir, n_images=4, size=64, seed=3)
    stamp = (first / "metadata.csv").stat().st_mtime_ns
    assert ensure_synthetic(cache_dir, n_images=4, size=64, seed=3) == first
    assert (first / "metadata.csv").stat().st_mtime_ns == stamp


def _dataset(root: Path, n: int = 3, size=(32, 24)) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(n):
        Image.fromarray(np.full((size[1], size[0], 3), 100, np.uint8)).save(root / "images" / f"im{i}.png")
        Image.fromarray(np.zeros((size[1], size[0]), np.uint8)).save(root / "annotations" / f"im{i}.png")
    return root


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        scan_folder(tmp_path / "nope")


def test_orphans_on_both_sides_are_all_listed(tmp_path):
    root = _dataset(tmp_path / "d")
    (root / "annotations" / "im0.png").unlink()
    (root / "images" / "im1.png").unlink()
    with pytest.raises(DataError) as err:
        scan_folder(root)
    assert "image without mask" in str(err.value) and "im0.png" in str(err.value)
    assert "mask without image" in str(err.value) and "im1.png" in str(err.value)


def test_every_bad_file_is_reported_at_once(tmp_path):
    root = _dataset(tmp_path / "d", n=5)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "annotations" / "im0.png")  # size
    Image.fromarray(np.full((24, 32), 42, np.uint8)).save(root / "annotations" / "im1.png")  # label
    (root / "images" / "im2.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")  # corrupt
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(root / "annotations" / "im3.png")  # RGB
    with pytest.raises(DataError) as err:
        preload(scan_folder(root), max_side=None)
    msg = str(err.value)
    assert "size mismatch" in msg and "im0.png" in msg
    assert "labels out of range" in msg and "im1.png" in msg and "[42]" in msg
    assert "unreadable image" in msg and "im2.png" in msg
    assert "mode RGB" in msg and "im3.png" in msg
    assert "im4" not in msg
    assert len(err.value.problems) == 4


def test_preload_downsizes_image_and_mask_identically(tmp_path):
    root = _dataset(tmp_path / "d", n=1, size=(300, 200))
    image, mask = load_pair(scan_folder(root)[0], max_side=150)
    assert image.shape == (100, 150, 3) and mask.shape == (100, 150)


def test_split_is_seeded_disjoint_and_stratified(cache_dir):
    samples = scan_folder(ensure_synthetic(cache_dir, n_images=30, size=96, seed=0))
    train, val = random_split(samples, 0.2, seed=5)
    again = random_split(samples, 0.2, seed=5)
    assert (train, val) == again
    assert random_split(samples, 0.2, seed=6)[1] != val
    assert {s.id for s in train}.isdisjoint(s.id for s in val)
    assert len(train) + len(val) == 30 and len(val) == 6
    # 5 materials x 6 images each: every material lands on both sides
    assert {s.material for s in val} == {s.material for s in train}


def test_datasets_yield_normalized_tensors_and_long_masks(cache_dir):
    splits = build_splits(cache_dir, img_size=64, synthetic={"n_images": 10, "size": 80, "seed": 0})
    image, mask = splits.train[0]
    assert image.shape == (3, 64, 64) and image.dtype.is_floating_point
    assert mask.shape == (64, 64) and mask.dtype.is_signed is True
    assert splits.pixel_bytes > 0
    # val keeps the whole image: longest side 64, the rest padded with ignore
    _, vmask = splits.val[0]
    assert vmask.shape == (64, 64)


def test_bad_files_fail_up_front_even_without_preloading(tmp_path):
    root = _dataset(tmp_path / "d", n=4)
    Image.fromarray(np.full((24, 32), 77, np.uint8)).save(root / "annotations" / "im3.png")
    with pytest.raises(DataError, match=r"im3\.png"):
        build_splits(root, img_size=32, preload_ram=False)
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(root / "annotations" / "im3.png")
    splits = build_splits(root, img_size=32, preload_ram=False)
    assert splits.train.arrays is None and splits.pixel_bytes == 0
    assert splits.train[0][0].shape == (3, 32, 32)  # decoded lazily from disk
