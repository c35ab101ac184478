"""`seg58 augment-artefact`: the seed's offline 3x set (data=artefact_augmented).

Every image keeps its original and gains `copies` geometric variants drawn (seeded) from
HFlip, VFlip, Rot90, Rot180, Rot270, applied identically to image and mask. metadata.csv
records each copy's `source_id`, and the splits keep all copies of one original on the same
side, so validation never sees a flipped twin of a training image. Written once (temp folder,
then rename), validated, and reused when it already exists.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from PIL import Image

from seg58.base.errors import DataError
from seg58.data.folder import scan_folder
from seg58.data.writer import atomic_dataset, write_metadata

T = Image.Transpose
TRANSFORMS = {"hflip": T.FLIP_LEFT_RIGHT, "vflip": T.FLIP_TOP_BOTTOM, "rot90": T.ROTATE_90,
              "rot180": T.ROTATE_180, "rot270": T.ROTATE_270}


def augment_folder(source: str | Path, out: str | Path, copies: int = 2, seed: int = 0) -> Path:
    out = Path(out)
    if (out / "metadata.csv").is_file():
        return out  # cached
    if not 0 <= copies <= len(TRANSFORMS):
        raise DataError([f"--copies must be 0..{len(TRANSFORMS)}, got {copies}"])
    samples = scan_folder(source)
    rng = random.Random(seed)
    with atomic_dataset(out) as tmp:
        rows = []
        for s in samples:
            shutil.copy2(s.image, tmp / "images" / s.image.name)
            shutil.copy2(s.mask, tmp / "annotations" / s.mask.name)
            rows.append({"id": s.id, "material": s.material, "content": s.content, "source_id": s.id})
            with Image.open(s.image) as im, Image.open(s.mask) as mk:
                for name in rng.sample(sorted(TRANSFORMS), copies):
                    new_id = f"{s.id}__{name}"
                    im.transpose(TRANSFORMS[name]).save(tmp / "images" / f"{new_id}.png")
                    mk.transpose(TRANSFORMS[name]).save(tmp / "annotations" / f"{new_id}.png")
                    rows.append({"id": new_id, "material": s.material, "content": s.content, "source_id": s.id})
        write_metadata(tmp, rows, ["id", "material", "content", "source_id"])
        written = scan_folder(tmp)  # every image has its mask, nothing orphaned
        if len(written) != len(samples) * (1 + copies):
            raise DataError([f"wrote {len(written)} pairs, expected {len(samples) * (1 + copies)}"], tmp)
    return out
