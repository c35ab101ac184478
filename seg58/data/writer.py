"""Writing ARTeFACT-format folders so that they appear whole or not at all."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_dataset(out: Path) -> Iterator[Path]:
    """Yield a temporary folder (with images/ and annotations/) next to `out`; rename it to
    `out` when the block succeeds, delete it otherwise. A concurrent writer that got there
    first makes the rename fail with OSError, leaving its complete folder in place."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "annotations").mkdir()
        yield tmp
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_metadata(folder: Path, rows: list[dict[str, str]], fields: list[str]) -> None:
    with (Path(folder) / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
