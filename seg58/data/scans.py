"""A scan's pixels for native-resolution prediction, decoded once and never as floats: an
uncompressed TIFF is read from the file a band of rows at a time (never held whole), another
TIFF is read once with tifffile, anything else once with PIL (then held as uint8 HxWx3, ~730 MB
for 244 MP, after a peak of ~2.3 times that while PIL holds its own 4-byte pixels). Whatever the file
holds (grey, RGBA, 16-bit), slicing gives uint8 RGB."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from seg58.data.folder import MAX_IMAGE_PIXELS  # noqa: F401  (importing it raises PIL's pixel limit)

TIFF_SUFFIXES = (".tif", ".tiff")
PIL_BAND = 512  # rows copied out of a decoded PIL image at a time


class RGB8:
    """`pixels[r0:r1, c0:c1]` as uint8 (h, w, 3) of (H, W[, C]) uint8 or uint16 pixels (an array, a
    RowFile): grey repeated into three channels, alpha dropped, 16 bits rounded to 8; a copy."""

    def __init__(self, pixels: np.ndarray | RowFile):
        if pixels.dtype not in (np.uint8, np.uint16) or len(pixels.shape) not in (2, 3):
            raise ValueError(f"pixels of {pixels.dtype} {pixels.shape}: expected uint8/uint16 H x W [x C]")
        self.pixels = pixels
        self.shape = (*pixels.shape[:2], 3)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        block = np.asarray(self.pixels[key])
        if block.dtype == np.uint16:
            block = ((block.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        if block.ndim == 2 or block.shape[-1] < 3:  # grey (+ alpha)
            grey = block if block.ndim == 2 else block[..., 0]
            return np.repeat(grey[..., None], 3, axis=-1)
        return np.array(block[..., :3])  # a copy: never a view of a read-only map


class RowFile:
    """The pixels of an uncompressed image stored contiguously in a file, row after row, read with
    pread when sliced (rows, columns): nothing is mapped or kept but the last band of rows read,
    which the windows of one row of a sliding window share."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, np.dtype(dtype)
        self.row_bytes = int(np.prod(shape[1:])) * self.dtype.itemsize
        self._file = open(path, "rb", buffering=0)  # closed with the object
        self._band: tuple[tuple[int, int], np.ndarray] | None = None

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key
        r0, r1, _ = rows.indices(self.shape[0])
        if self._band is not None and self._band[0] == (r0, r1):
            return self._band[1][:, cols]
        data = os.pread(self._file.fileno(), (r1 - r0) * self.row_bytes, self.offset + r0 * self.row_bytes)
        block = np.frombuffer(data, self.dtype).reshape(r1 - r0, *self.shape[1:])
        if r1 - r0 > 1:
            self._band = ((r0, r1), block)
        return block[:, cols]

    def __del__(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()


def open_scan(path: str | Path) -> np.ndarray | RGB8:
    """The pixels of the image at `path`, sliceable as uint8 (rows, columns, 3)."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        pixels = _tiff_pixels(path)
        if pixels is not None:
            return RGB8(pixels)
    with Image.open(path) as im:
        if im.mode != "RGB":
            im = im.convert("RGB")
        # copied out a band at a time: np.asarray(im) of the whole would hold two more copies at once
        pixels = np.empty((im.height, im.width, 3), np.uint8)
        for top in range(0, im.height, PIL_BAND):
            pixels[top:top + PIL_BAND] = np.asarray(im.crop((0, top, im.width, min(top + PIL_BAND, im.height))))
        return pixels


def _tiff_pixels(path: Path) -> np.ndarray | RowFile | None:
    """The first image of a TIFF as (H, W[, C]) uint8/uint16: read from the file on demand when it
    is stored uncompressed, row after row; else decoded whole. None for a layout left to PIL."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes, dtype = series.axes, series.dtype
        if axes not in ("YX", "YXS", "SYX") or dtype not in (np.uint8, np.uint16):
            return None
        if series.dataoffset is not None and axes != "SYX":
            return RowFile(path, series.dataoffset, series.shape, dtype.newbyteorder(tif.byteorder))
        pixels = series.asarray()
    return np.moveaxis(pixels, 0, -1) if axes == "SYX" else pixels
