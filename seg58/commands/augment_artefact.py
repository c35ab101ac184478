"""`seg58 augment-artefact`: the seed's offline 3x ARTeFACT set (original + flipped/rotated copies,
kept on one side of every split) (seg58/data/augment.py)."""

from __future__ import annotations

import argparse
import sys

from seg58.data.augment import augment_folder
from seg58.data.folder import scan_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 augment-artefact",
                                     description="the seed's offline 3x augmented ARTeFACT set")
    parser.add_argument("--source", default="data/artefact")
    parser.add_argument("--out", default="data/artefact_augmented")
    parser.add_argument("--copies", type=int, default=2, help="variants per image (2 = the seed's 3x set)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = augment_folder(args.source, args.out, args.copies, args.seed)
    print(f"{out}: {len(scan_folder(out))} image/mask pairs; train on it with data=artefact_augmented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
