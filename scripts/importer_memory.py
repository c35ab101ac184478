"""Peak memory of `seg58 import-artefact` on ARTeFACT-sized scans (BENCHMARKS.md, "Importer memory").

Writes a parquet shard shaped like danielaivanova/damaged-media into a temporary folder: `--rows`
rows of `--side` x `--side` RGB scans in row groups of `--row-group` rows, with every column of the
release, including those the importer must not read (annotation_rgb and long descriptions). The
scans are smooth gradients stored as uncompressed PNG: quick to generate, yet each weighs what an
incompressible photograph would (3 bytes per pixel); masks and annotation_rgb are flat colours and
compress well, as the release's do. Then runs the importer (`python -m seg58.commands.import_artefact`)
in a subprocess and prints its peak RSS next to the shard's size and one scan's decoded size.

The peak is the child's own VmHWM (/proc/self/status, read as it exits): getrusage's ru_maxrss of
a child also counts the parent's high-water mark when the child is started by vfork, as Python's
subprocess does.

    .venv/bin/python scripts/importer_memory.py                  # 6 rows of 10000 x 10000 (100 MP)
    .venv/bin/python scripts/importer_memory.py --rows 12          # twice the shard, same row groups
    .venv/bin/python scripts/importer_memory.py --importer old.py  # another importer file, same shard
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # our own generated pictures


def _png(array: np.ndarray, compress_level: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def scan_pngs(side: int) -> tuple[bytes, bytes, bytes]:
    """(image, annotation, annotation_rgb) PNG bytes of one side x side scan."""
    ramp = np.linspace(0, 255, side).astype(np.uint8)
    image = np.empty((side, side, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = ramp[:, None], ramp[None, :], 128
    mask = np.zeros((side, side), np.uint8)
    for label in range(1, 16):  # a band of every class, and a background border
        mask[label * side // 17:(label + 1) * side // 17, side // 4:side // 2] = label
    mask[:, : side // 50] = 255
    rgb = np.zeros((side, side, 3), np.uint8)
    rgb[mask > 0] = (28, 230, 255)
    return _png(image, 0), _png(mask, 1), _png(rgb, 1)


def write_shard(path: Path, side: int, rows: int, row_group: int) -> None:
    image, annotation, annotation_rgb = scan_pngs(side)
    description = "a scan of a damaged painting. " * 20_000  # ~600 kB of text, like the long descriptions
    schema = None
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, rows, row_group):
            batch = [{
                "id": f"scan_{i:03d}",
                "image": {"bytes": image, "path": f"{i}.png"},
                "annotation": {"bytes": annotation, "path": f"{i}_mask.png"},
                "annotation_rgb": {"bytes": annotation_rgb, "path": f"{i}_rgb.png"},
                "material": "Paper", "content": "Artistic depiction", "type": "scan",
                "damage_description": description, "llava_description": description,
                "verified_description": description,
            } for i in range(start, min(rows, start + row_group))]
            table = pa.Table.from_pylist(batch, schema=schema)
            schema = table.schema
            if writer is None:
                writer = pq.ParquetWriter(path, schema, compression="none", use_dictionary=False)
            writer.write_table(table)  # one row group per call
            del table, batch
    finally:
        if writer is not None:
            writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=10_000, help="scan width and height in px")
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--row-group", type=int, default=2, help="rows per parquet row group")
    parser.add_argument("--max-side", type=int, default=1024, help="the importer's --max-side")
    parser.add_argument("--importer", help="a .py file to run instead of seg58.commands.import_artefact")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seg58-importer-memory-") as tmp:
        shard = Path(tmp) / "hf" / "train-00000-of-00001.parquet"
        shard.parent.mkdir()
        start = time.perf_counter()
        write_shard(shard, args.side, args.rows, args.row_group)
        generated = time.perf_counter() - start
        meta = pq.ParquetFile(shard).metadata
        columns = {meta.row_group(0).column(c).path_in_schema.split(".")[0]: 0 for c in range(meta.num_columns)}
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                chunk = meta.row_group(g).column(c)
                columns[chunk.path_in_schema.split(".")[0]] += chunk.total_uncompressed_size
        argv = ["--source", str(shard.parent), "--out", str(Path(tmp) / "out"), "--max-side", str(args.max_side)]
        run = (f"runpy.run_path({args.importer!r}, run_name='__main__')" if args.importer else
               "runpy.run_module('seg58.commands.import_artefact', run_name='__main__', alter_sys=True)")
        code = (f"import runpy, sys\nsys.argv = ['importer', *{argv!r}]\ntry:\n    {run}\nfinally:\n"
                "    print(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')))")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode:
            sys.exit(f"importer failed ({done.returncode}):\n{done.stderr[-3000:]}")
        peak_mb = int(done.stdout.split("VmHWM:")[1].split()[0]) / 1024  # kB
        decoded = args.side * args.side * 3 / 2**20
        per_group = (columns["image"] + columns["annotation"]) * args.row_group / args.rows / 2**20
        print(f"shard: {args.rows} rows of {args.side}x{args.side} ({args.side ** 2 / 1e6:.0f} MP), "
              f"{meta.num_row_groups} row groups, {shard.stat().st_size / 2**20:,.0f} MiB on disk "
              f"(generated in {generated:.1f} s)")
        for name, size in columns.items():
            if size > 2**20:
                print(f"  column {name:<22} {size / 2**20:9,.0f} MiB")
        print(f"one scan decoded (RGB):        {decoded:9,.0f} MiB")
        print(f"image+annotation per row group: {per_group:8,.0f} MiB")
        print(f"importer peak RSS:             {peak_mb:9,.0f} MiB  ({elapsed:.1f} s)")


if __name__ == "__main__":
    main()
