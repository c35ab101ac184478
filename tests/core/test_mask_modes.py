"""Masks as ARTeFACT-format folders may hold them: L, P, I or I;16 with labels 0..15 and 255; anything
else is one clear error naming the file. And PIL's pixel limit covers the release's largest scans."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from seg58.base.errors import DataError
from seg58.data.artefact_import import import_artefact
from seg58.data.dataset_check import check_dataset
from seg58.data.folder import MAX_IMAGE_PIXELS, load_pair, mask_labels, scan_folder
from seg58.data.splits import SplitSpec

LABELS = np.array([[0, 1, 7, 15], [255, 3, 3, 12], [9, 0, 255, 14]])


def _mask(mode: str, values: np.ndarray = LABELS) -> Image.Image:
    if mode == "P":
        image = Image.fromarray(values.astype(np.uint8)).convert("P")
        image.putpalette([v for c in range(256) for v in (c, 255 - c, c // 2)])  # colours unrelated to labels
        return image
    dtype = {"L": np.uint8, "I;16": np.uint16, "I": np.int32}[mode]
    return Image.fromarray(values.astype(dtype))


def _folder(root, masks: dict[str, Image.Image]):
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for name, mask in masks.items():
        Image.fromarray(np.full((*mask.size[::-1], 3), 90, np.uint8)).save(root / "images" / f"{name}.png")
        mask.save(root / "annotations" / f"{name}.png")
    return root


@pytest.mark.parametrize("mode", ["L", "P", "I;16"])
def test_png_masks_in_each_single_channel_mode_load_as_their_labels(tmp_path, mode):
    root = _folder(tmp_path / "d", {f"m{i}": _mask(mode) for i in range(5)})
    with Image.open(root / "annotations" / "m0.png") as written:
        assert written.mode == mode  # the file really is in that mode
    samples = scan_folder(root)
    _, mask = load_pair(samples[0])
    assert mask.dtype == np.uint8 and mask.tolist() == LABELS.tolist()
    assert load_pair(samples[0], max_side=2)[1].shape == (2, 2)  # downsized (nearest) like 8-bit masks
    assert "5 image/mask pairs" in check_dataset(root, SplitSpec(val_fraction=0.4), max_side=None)


def test_mode_i_masks_are_accepted_as_well():
    """PIL >= 10 reads 16-bit PNGs as I;16 and cannot write mode I as PNG; older PIL and TIFF give I."""
    labels = mask_labels(_mask("I"), "mask m.tif")
    assert labels.mode == "L" and np.asarray(labels).tolist() == LABELS.tolist()
    with pytest.raises(DataError, match=r"labels out of range in mask m\.tif: \[-1, 300\]"):
        mask_labels(_mask("I", np.array([[0, -1], [300, 255]])), "mask m.tif")


def test_bad_masks_are_errors_naming_each_file(tmp_path):
    root = _folder(tmp_path / "d", {
        "ok": _mask("I;16"),
        "rgb": Image.fromarray(np.zeros((3, 4, 3), np.uint8)),
        "wide": _mask("I;16", np.where(LABELS == 7, 300, LABELS)),  # 300 would wrap to 44 as uint8
        "eight": _mask("L", np.where(LABELS == 7, 42, LABELS)),
        "palette": _mask("P", np.where(LABELS == 7, 16, LABELS)),
    })
    with pytest.raises(DataError) as err:
        check_dataset(root, SplitSpec(val_fraction=0.4), max_side=None)
    problems = err.value.problems
    assert len(problems) == 4, problems
    assert any("rgb.png has mode RGB" in p and "L, P, I, I;16" in p for p in problems)
    assert any("wide.png: [300]" in p for p in problems)
    assert any("eight.png: [42]" in p for p in problems)
    assert any("palette.png: [16]" in p for p in problems)


def test_the_importer_converts_a_16_bit_or_mode_i_annotation_to_8_bit(tmp_path):
    rows = []
    for i, (mode, fmt) in enumerate([("I;16", "PNG"), ("I", "TIFF")]):
        buf = io.BytesIO()
        _mask(mode).save(buf, format=fmt)
        image = io.BytesIO()
        Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(image, format="PNG")
        rows.append({"id": f"r{i}", "image": {"bytes": image.getvalue(), "path": None},
                     "annotation": {"bytes": buf.getvalue(), "path": None}})
    (tmp_path / "hf").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "hf" / "train.parquet")
    assert import_artefact(tmp_path / "hf", tmp_path / "out") == 2
    for sample in scan_folder(tmp_path / "out"):
        with Image.open(sample.mask) as mask:
            assert mask.mode == "L" and np.asarray(mask).tolist() == LABELS.tolist()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header announces width x height (no pixels): enough for PIL's size check."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def test_pixel_limit_opens_the_releases_largest_scans(tmp_path):
    assert MAX_IMAGE_PIXELS >= 250_000_000  # the card raises PIL's limit to ~244 MP
    assert Image.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header(16_000, 15_000))  # 240 MP: above PIL's default ~179 MP refusal
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a DecompressionBombWarning
        with Image.open(path) as im:
            assert im.size == (16_000, 15_000)
    path.write_bytes(_png_header(30_000, 30_000))  # 900 MP: still refused, the guard is raised, not off
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
