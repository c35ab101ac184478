"""Native-resolution prediction of scans too large for one tensor (`seg58 predict
infer.resolution=native`). The sliding window of `Predictor.logits` (the same windows, padding,
averaging of overlaps and TTA) run one row of windows at a time: the logits of the rows that no
later window reaches are final and go out as a band; only the rows the next windows still
overlap are carried. No more than one band of logits (a window's height across the scan's width,
per TTA pass its overlap) is ever held, and on an image small enough for both the bands put
together are `Predictor(mode="slide").scores` of the whole image. Labels (and uncertainty) stream
into tiled, compressed TIFFs at the scan's full size; the overlays are downsized previews."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from seg58.base.choices import Tta
from seg58.data.folder import fitted_size
from seg58.engine.inference import (
    TTA_SYMMETRIES,
    Predictor,
    Symmetry,
    blend,
    inferno,
    to_tensor,
    uncertainty_grey,
    window_starts,
)
from seg58.engine.tiff_bands import TILE, TiffBands
from seg58.engine.visuals import colorize
from seg58.modeling.calibration import normalized_entropy
from seg58.modeling.hierarchy import fine_labels

PREVIEW_SIDE = 2048  # longest side of the overlay previews
ROWS = 128  # rows of a band turned into probabilities / labels at a time: bounds the temporaries


def _coverage(starts: list[int], window: int, size: int) -> torch.Tensor:
    """How many windows (starting at `starts`, `window` long) cover each of `size` pixels."""
    count = np.zeros(size, np.float32)
    for s in starts:
        count[max(s, 0):max(min(s + window, size), 0)] += 1
    return torch.from_numpy(count)


class _WindowRows:
    """The windows one TTA pass (`symmetry`) slides over the image, mapped back onto it: the pass
    pads the transformed image at its bottom and right, so on the image a window may start in the
    padding above or left of it (negative). `advance` runs the next row of windows."""

    def __init__(self, predictor: Predictor, image: Any, symmetry: Symmetry):
        self.predictor, self.image, self.symmetry = predictor, image, symmetry
        h, w = image.shape[:2]
        win, overlap = predictor.window, predictor.overlap
        shape = (w, h) if symmetry.turns % 2 else (h, w)  # the transformed image ...
        frame = (max(shape[0], win), max(shape[1], win))  # ... padded as Predictor.logits pads it
        top, _, left, _ = symmetry.undo_box((0, shape[0], 0, shape[1]), frame)  # the image in that frame
        boxes = [symmetry.undo_box((y, y + win, x, x + win), frame)
                 for y in window_starts(frame[0], win, overlap) for x in window_starts(frame[1], win, overlap)]
        self.rows = sorted({b[0] - top for b in boxes})
        self.cols = sorted({b[2] - left for b in boxes})
        self.row_count, self.col_count = _coverage(self.rows, win, h), _coverage(self.cols, win, w)
        self.next = 0  # the next row of windows
        self.front = 0  # image rows above it are final
        self.carry: torch.Tensor | None = None  # summed logits of rows front.. that later windows add to

    def _window(self, y: int, x: int) -> torch.Tensor:
        """Logits (C x win x win, on the image's own orientation) of the window at (y, x)."""
        win, (h, w) = self.predictor.window, self.image.shape[:2]
        r0, r1, c0, c1 = max(y, 0), min(y + win, h), max(x, 0), min(x + win, w)
        pixels = F.pad(to_tensor(np.array(self.image[r0:r1, c0:c1])), (c0 - x, x + win - c1, r0 - y, y + win - r1))
        s = self.symmetry
        return s.undo(self.predictor.forward_logits(s.apply(pixels)[None])[0])

    def advance(self) -> tuple[int, torch.Tensor]:
        """(first row, C x n x W logits) of the rows this row of windows makes final. A row of
        windows closer to the next than half a window and than the grid's step (the grid's last
        start is pulled back to end at the border) is run together with it: a carry of most of a
        window's height beside the next band would cost more than the few extra rows."""
        win, (h, w) = self.predictor.window, self.image.shape[:2]
        first, top = self.next, self.front
        step = max(1, int(win * (1 - self.predictor.overlap)))
        while self.next + 1 < len(self.rows) and self.rows[self.next + 1] - self.rows[self.next] < min(step, win / 2):
            self.next += 1
        bottom = min(self.rows[self.next] + win, h)
        total: torch.Tensor | None = None
        for y, x in itertools.product(self.rows[first:self.next + 1], self.cols):
            out = self._window(y, x)
            if total is None:
                total = torch.zeros(out.shape[0], bottom - top, w, device=out.device)
                if self.carry is not None:
                    total[:, :self.carry.shape[1]] = self.carry
                    self.carry = None
            r0, r1, c0, c1 = max(y, 0), min(y + win, h), max(x, 0), min(x + win, w)
            total[:, r0 - top:r1 - top, c0:c1] += out[:, r0 - y:r1 - y, c0 - x:c1 - x]
        assert total is not None
        self.next += 1
        end = h if self.next == len(self.rows) else min(max(self.rows[self.next], top), h)
        count = self.row_count[top:end, None] * self.col_count[None, :]
        self.carry = total[:, end - top:].clone() if end < bottom else None
        self.front = end
        return top, total[:, :end - top].div_(count.to(total.device))  # a view: frees `total` when dropped


def stream_scores(predictor: Predictor, image: Any) -> Iterator[tuple[int, torch.Tensor]]:
    """(first row, C x n x W scores) of consecutive bands of rows, top to bottom, of a uint8 H x W x 3
    image (an array, a memory map, anything sliced as image[r0:r1, c0:c1]): the sliding-window
    `predictor.scores` of the whole image (logits, or with TTA the averaged probabilities), one
    band at a time. Drop each band before asking for the next: it holds the band's memory."""
    h = image.shape[0]
    passes = [_WindowRows(predictor, image, s) for s in TTA_SYMMETRIES[predictor.tta]]
    if predictor.tta is Tta.none:
        while passes[0].front < h:
            yield passes[0].advance()
        return
    # The passes' windows start on different rows: advance the one furthest behind, add its final
    # rows' probabilities, and hand on the rows every pass has finished.
    total: torch.Tensor | None = None  # summed probabilities of rows done..
    done = 0
    while done < h:
        slowest = min(passes, key=lambda p: p.front)
        top, logits = slowest.advance()
        end = top + logits.shape[1]
        kept = 0 if total is None else total.shape[1]
        if total is None or done + kept < end:
            grown = torch.zeros(logits.shape[0], end - done, logits.shape[2], device=logits.device)
            if total is not None:
                grown[:, :kept] = total
            total = grown
        for a in range(0, logits.shape[1], ROWS):
            total[:, top - done + a:min(top - done + a + ROWS, end - done)] += logits[:, a:a + ROWS].softmax(0)
        del logits
        ready = min(p.front for p in passes)
        if ready > done:
            yield done, total[:, :ready - done] / len(passes)
            total, done = total[:, ready - done:].clone(), ready


class _Preview:
    """Every k-th pixel of the image and the labels (nearest, so labels stay labels), collected as
    bands go by, for overlays of at most `side` px."""

    def __init__(self, image: Any, side: int, uncertainty: bool):
        h, w = image.shape[:2]
        pw, ph = fitted_size((w, h), side)
        self.image = image
        self.rows = ((np.arange(ph) + 0.5) * h / ph).astype(int)
        self.cols = ((np.arange(pw) + 0.5) * w / pw).astype(int)
        self.pixels = np.zeros((ph, pw, 3), np.uint8)
        self.labels = np.zeros((ph, pw), np.uint8)
        self.grey = np.zeros((ph, pw), np.uint8) if uncertainty else None

    def add(self, top: int, labels: np.ndarray, grey: np.ndarray | None) -> None:
        for i in np.flatnonzero((self.rows >= top) & (self.rows < top + len(labels))):
            r = self.rows[i]
            self.pixels[i] = self.image[r:r + 1, :][0, self.cols]
            self.labels[i] = labels[r - top, self.cols]
            if self.grey is not None and grey is not None:
                self.grey[i] = grey[r - top, self.cols]


def predict_native(predictor: Predictor, image: Any, out_dir: Path, stem: str, *, uncertainty: bool = False,
                   preview_side: int = PREVIEW_SIDE, tile: int = TILE, alpha: float = 0.5) -> list[Path]:
    """<stem>_mask.tif: the labels (0..15, 255 = predicted background) at the image's full size, a
    tiled Deflate-compressed TIFF (BigTIFF when large); <stem>_overlay.png: the palette on the
    image, longest side `preview_side`. With `uncertainty`: <stem>_uncertainty.tif (normalised
    entropy as 8-bit grey) and <stem>_uncertainty_overlay.png (inferno), the same way."""
    h, w = image.shape[:2]
    paths = [out_dir / f"{stem}_mask.tif", out_dir / f"{stem}_overlay.png"]
    if uncertainty:
        paths += [out_dir / f"{stem}_uncertainty.tif", out_dir / f"{stem}_uncertainty_overlay.png"]
    preview = _Preview(image, preview_side, uncertainty)
    with ExitStack() as files:
        masks = files.enter_context(TiffBands(paths[0], (h, w), tile=tile))
        greys = files.enter_context(TiffBands(paths[2], (h, w), tile=tile)) if uncertainty else None
        for top, scores in stream_scores(predictor, image):
            part = scores
            for a in range(0, scores.shape[1], ROWS):
                part = scores[:, a:a + ROWS]
                labels = fine_labels(part, predictor.num_classes, dim=0).to(torch.uint8).cpu().numpy()
                masks.write(labels)
                grey = None
                if greys is not None:
                    grey = uncertainty_grey(normalized_entropy(predictor.as_probabilities(part)).cpu().numpy())
                    greys.write(grey)
                preview.add(top + a, labels, grey)
            del scores, part  # the band's memory, before the next band is computed
    blend(preview.pixels, colorize(preview.labels), alpha).save(paths[1])
    if preview.grey is not None:
        blend(preview.pixels, inferno(preview.grey), alpha).save(paths[3])
    return paths
