"""`seg58 import-artefact`: the Hugging Face ARTeFACT parquet shards -> our on-disk format.

ARTeFACT (danielaivanova/damaged-media, AFL-3.0) ships as parquet with columns id, image,
annotation, annotation_rgb (HF Image structs: {bytes, path}), material, content, type,
damage_description, llava_description, verified_description (older shards lack the last ones).
Only the columns written here are read, one row group at a time and one row at a time out of
it, so memory holds one row group's images and annotations as compressed bytes plus one decoded
scan (up to ~133 MP) — never a shard, never annotation_rgb or the descriptions (BENCHMARKS.md,
"Importer memory"). `--max-side` writes a resized copy (area filter for images, nearest for
masks) for fast training. The output appears atomically: written to a temporary folder,
renamed when complete.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from seg58.base.errors import DataError
from seg58.data.folder import MAX_IMAGE_PIXELS, fitted_size, mask_labels
from seg58.data.writer import atomic_dataset, write_metadata

HF_REPO = "danielaivanova/damaged-media"
REQUIRED_COLUMNS = ("id", "image", "annotation")
META_COLUMNS = ("material", "content", "type")


def _bytes_of(cell: Any) -> bytes:
    if isinstance(cell, dict):  # HF Image feature: {"bytes": ..., "path": ...}
        if cell.get("bytes"):
            return cell["bytes"]
        raise DataError([f"image cell without bytes (path={cell.get('path')!r})"])
    if isinstance(cell, (bytes, bytearray)):
        return bytes(cell)
    raise DataError([f"unsupported image cell of type {type(cell).__name__}"])


def _rows(shards: list[Path]) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for shard in shards:
        try:
            parquet = pq.ParquetFile(shard)
        except Exception as e:  # pyarrow raises several types for a file that is not parquet
            raise DataError([f"{shard} is not a readable parquet file ({type(e).__name__}: {str(e)[:200]})"]) from None
        names = parquet.schema_arrow.names
        missing = set(REQUIRED_COLUMNS) - set(names)
        if missing:
            raise DataError([f"{shard}: missing columns {sorted(missing)} (has {names}); not an ARTeFACT shard"])
        # pyarrow decodes a row group's column chunk whole: read one row group at a time, and only
        # the columns we write (annotation_rgb, another full-size image, and the descriptions are not).
        columns = [*REQUIRED_COLUMNS, *(c for c in META_COLUMNS if c in names)]
        for group in range(parquet.num_row_groups):
            for batch in parquet.iter_batches(batch_size=1, row_groups=[group], columns=columns, use_threads=False):
                yield from batch.to_pylist()


def _safe_id(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)).strip("._") or "item"


def convert_row(row: dict[str, Any], out: Path, max_side: int | None) -> dict[str, str]:
    """Write one row's image and mask. The image is decoded and released before the mask is, so
    at most one full-size scan is in memory."""
    name = _safe_id(row["id"])
    image, annotation = _bytes_of(row["image"]), _bytes_of(row["annotation"])
    with Image.open(io.BytesIO(image)) as im, Image.open(io.BytesIO(annotation)) as mk:  # headers only
        if im.size != mk.size:
            raise DataError([f"id {row['id']}: image {im.size} and annotation {mk.size} differ"])
        size, target = im.size, fitted_size(im.size, max_side)
    _write_image(image, target, out / "images", name)
    with Image.open(io.BytesIO(annotation)) as mk:
        mask = mask_labels(mk, f"annotation of id {row['id']}")
        if target != size:
            mask = mask.resize(target, Image.Resampling.NEAREST)
        mask.save(out / "annotations" / f"{name}.png")
    return {"id": name, **{c: str(row.get(c) or "") for c in META_COLUMNS}}


def _write_image(data: bytes, target: tuple[int, int], folder: Path, name: str) -> None:
    with Image.open(io.BytesIO(data)) as im:
        if target == im.size and im.format in ("PNG", "JPEG"):  # keep the original bytes
            (folder / f"{name}{'.png' if im.format == 'PNG' else '.jpg'}").write_bytes(data)
            return
        im.draft("RGB", target)  # JPEG: decode at reduced scale
        rgb = im if im.mode == "RGB" else im.convert("RGB")  # no second copy of an RGB scan
        rgb.resize(target, Image.Resampling.BOX).save(folder / f"{name}.png")


def import_artefact(source: str | Path, out: str | Path, max_side: int | None = None,
                    limit: int | None = None) -> int:
    """Convert every row; returns the number of pairs written to `out`."""
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # the release's largest scans open (folder.py says why)
    out = Path(out)
    if out.exists():
        raise DataError([f"--out {out} exists; remove it or choose another --out"])
    shards = sorted(Path(source).rglob("*.parquet")) if Path(source).is_dir() else [Path(source)]
    if not shards or not all(s.is_file() for s in shards):
        raise DataError([f"--source {source}: no such parquet file, or a folder without *.parquet shards"])
    import pyarrow as pa

    pool = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())  # frees each row group's buffers to the OS: -18% peak
    try:
        with atomic_dataset(out) as tmp:
            meta = []
            for i, row in enumerate(_rows(shards)):
                if limit is not None and i >= limit:
                    break
                meta.append(convert_row(row, tmp, max_side))
            write_metadata(tmp, meta, ["id", *META_COLUMNS])
    finally:
        pa.set_memory_pool(pool)
    return len(meta)


def download(target: Path) -> Path:
    """Fetch the parquet shards from the hub (needs network; not used offline)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(HF_REPO, repo_type="dataset", allow_patterns=["*.parquet"],
                                      local_dir=str(target)))
    except Exception as e:  # offline, proxy, hub outage: all end the same way for the user
        raise DataError([f"cannot download {HF_REPO} from the Hugging Face hub ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]}); download the parquet shards where there is "
                         f"network and pass --source <folder>"]) from None
