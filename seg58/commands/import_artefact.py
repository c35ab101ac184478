"""`seg58 import-artefact [--source DIR] [--out DIR]`: ARTeFACT's parquet shards (a local download,
else the hub) -> an image/mask folder seg58 trains on (seg58/data/artefact_import.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seg58.data.artefact_import import download, import_artefact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 import-artefact",
                                     description="ARTeFACT parquet -> an image/mask folder")
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
