"""An 8-bit single-channel image (a label mask, an uncertainty map) written to a tiled, compressed
TIFF from bands of rows given top to bottom, so that the whole image is never in memory:
tifffile encodes the tiles in a thread that takes the bands from a short queue."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

TILE = 512  # px, square tiles (TIFF wants multiples of 16)
COMPRESSION = "zlib"  # Deflate: lossless, in Python's zlib (no imagecodecs needed), read by every TIFF reader
# tifffile's own limit for a classic TIFF (4 GB less room for metadata), applied to the uncompressed
# size so that even an incompressible image fits: larger images are written as BigTIFF.
BIGTIFF_ABOVE = 2**32 - 2**25
_END, _ABORT = object(), object()


class _Aborted(Exception):
    pass


class TiffBands:
    """`with TiffBands(path, (h, w)) as tiff: tiff.write(rows) ...` with uint8 rows (n x w), all h of
    them in order. An exception inside the block removes the unfinished file."""

    def __init__(self, path: str | Path, shape: tuple[int, int], *, tile: int = TILE,
                 compression: str = COMPRESSION):
        self.path, self.shape, self.tile, self.compression = Path(path), shape, tile, compression
        self.bigtiff = shape[0] * shape[1] > BIGTIFF_ABOVE
        self._bands: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"tiff {self.path.name}", daemon=True)

    def __enter__(self) -> TiffBands:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            try:
                self._put(_END)
                self._thread.join()
                self._check()
            except BaseException:
                self.path.unlink(missing_ok=True)
                raise
            return
        while True:  # make room, then tell the writer to stop
            try:
                self._bands.get_nowait()
            except queue.Empty:
                break
        self._bands.put(_ABORT)
        self._thread.join(timeout=60)
        self.path.unlink(missing_ok=True)

    def write(self, rows: np.ndarray) -> None:
        if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != self.shape[1]:
            raise ValueError(f"{self.path.name}: rows must be uint8 n x {self.shape[1]}, got {rows.dtype} {rows.shape}")
        self._put(rows)

    def _put(self, item: object) -> None:
        while True:
            self._check()
            try:
                self._bands.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if not self._thread.is_alive() and self._thread.ident is not None and self._bands.full():
            raise OSError(f"writing {self.path}: the writer stopped")

    def _tiles(self) -> Iterator[np.ndarray]:
        (height, width), t = self.shape, self.tile
        pending, seen, end = np.zeros((0, width), np.uint8), 0, False
        while not end:
            item = self._bands.get()
            if item is _ABORT:
                raise _Aborted
            end = item is _END
            if not end:
                pending = np.concatenate([pending, item]) if len(pending) else item
                seen += len(item)
                if seen > height:
                    raise ValueError(f"{seen} rows written to {self.path.name}, which has {height}")
            elif seen != height:
                raise ValueError(f"{seen} rows written to {self.path.name}, which has {height}")
            while len(pending) >= t or (end and len(pending)):
                strip, pending = pending[:t], pending[t:]
                for left in range(0, width, t):
                    tile = np.zeros((t, t), np.uint8)
                    part = strip[:, left:left + t]
                    tile[:part.shape[0], :part.shape[1]] = part
                    yield tile

    def _run(self) -> None:
        import tifffile

        try:
            tifffile.imwrite(self.path, self._tiles(), shape=self.shape, dtype=np.uint8, tile=(self.tile, self.tile),
                             compression=self.compression, photometric="minisblack", bigtiff=self.bigtiff)
        except _Aborted:
            pass
        except BaseException as e:  # reported to the caller by its next write or at the end
            self._error = e
