"""`seg58 import-artefact`: the Hugging Face ARTeFACT parquet shards -> our on-disk format.

ARTeFACT (danielaivanova/damaged-media, AFL-3.0) ships as parquet with columns id, image and
annotation (HF Image structs: {bytes, path}), material, content, type, ... Rows are streamed
one record batch at a time, so 37 MP scans never sit in memory all at once; `--max-side`
writes a resized copy (area filter for images, nearest for masks) for fast training.
The output appears atomically: written to a temporary folder, renamed when complete.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path
from typing import Any, Iterator

from PIL import Image

from seg58.data.folder import DataError, fitted_size  # also raises PIL's pixel limit for huge scans
from seg58.data.writer import atomic_dataset, write_metadata

HF_REPO = "danielaivanova/damaged-media"
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
        missing = {"id", "image", "annotation"} - set(parquet.schema_arrow.names)
        if missing:
            raise DataError([f"{shard}: missing columns {sorted(missing)} (has {parquet.schema_arrow.names}); "
                             f"not an ARTeFACT shard"])
        for batch in parquet.iter_batches(batch_size=4):
            yield from batch.to_pylist()


def _safe_id(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)).strip("._") or "item"


def convert_row(row: dict[str, Any], out: Path, max_side: int | None) -> dict[str, str]:
    name = _safe_id(row["id"])
    with Image.open(io.BytesIO(_bytes_of(row["image"]))) as im, \
            Image.open(io.BytesIO(_bytes_of(row["annotation"]))) as mk:
        if im.size != mk.size:
            raise DataError([f"id {row['id']}: image {im.size} and annotation {mk.size} differ"])
        if mk.mode not in ("L", "P"):
            raise DataError([f"id {row['id']}: annotation mode {mk.mode}, expected single-channel"])
        target = fitted_size(im.size, max_side)
        if target == im.size and im.format in ("PNG", "JPEG"):  # keep the original bytes
            suffix = ".png" if im.format == "PNG" else ".jpg"
            (out / "images" / f"{name}{suffix}").write_bytes(_bytes_of(row["image"]))
        else:
            im.draft("RGB", target)
            im.convert("RGB").resize(target, Image.Resampling.BOX).save(out / "images" / f"{name}.png")
        mask = mk if target == mk.size else mk.resize(target, Image.Resampling.NEAREST)
        mask.save(out / "annotations" / f"{name}.png")
    return {"id": name, **{c: str(row.get(c) or "") for c in META_COLUMNS}}


def import_artefact(source: str | Path, out: str | Path, max_side: int | None = None,
                    limit: int | None = None) -> int:
    """Convert every row; returns the number of pairs written to `out`."""
    out = Path(out)
    if out.exists():
        raise DataError([f"--out {out} exists; remove it or choose another --out"])
    shards = sorted(Path(source).rglob("*.parquet")) if Path(source).is_dir() else [Path(source)]
    if not shards or not all(s.is_file() for s in shards):
        raise DataError([f"--source {source}: no such parquet file, or a folder without *.parquet shards"])
    with atomic_dataset(out) as tmp:
        meta = []
        for i, row in enumerate(_rows(shards)):
            if limit is not None and i >= limit:
                break
            meta.append(convert_row(row, tmp, max_side))
        write_metadata(tmp, meta, ["id", *META_COLUMNS])
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 import-artefact", description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="folder of parquet shards (a local HF download) or one .parquet "
                                         "file; omit to download from the hub")
    parser.add_argument("--out", default="data/artefact", help="output folder (default: data/artefact)")
    parser.add_argument("--max-side", type=int, default=None, help="resize so the longer side is at most this")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows (quick tries)")
    args = parser.parse_args(argv)
    source = Path(args.source) if args.source else download(Path(args.out).parent / "artefact-hf")
    n = import_artefact(source, args.out, args.max_side, args.limit)
    print(f"wrote {n} image/mask pairs to {args.out}; check them with: "
          f"python -m seg58 check-data data=artefact data.root={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
