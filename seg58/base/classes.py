"""ARTeFACT label set: one place for names, ids and the colour palette."""

import re

CLASS_NAMES: tuple[str, ...] = (
    "Clean",
    "Material loss",
    "Peel",
    "Dust",
    "Scratch",
    "Hair",
    "Dirt",
    "Fold",
    "Writing",
    "Cracks",
    "Staining",
    "Stamp",
    "Sticker",
    "Puncture",
    "Burn marks",
    "Lightleak",
)
NUM_CLASSES = len(CLASS_NAMES)
# ARTeFACT's rarest: tens of thousands of pixels against tens of millions of Clean (0 IoU if drawn uniformly)
RARE_CLASSES: tuple[int, ...] = (3, 5, 13, 14)  # Dust, Hair, Puncture, Burn marks
IGNORE_INDEX = 255  # ARTeFACT "background": outside the object, never scored

# The dataset's own colours (its `annotation_rgb` column), so that our overlays read like its previews.
COLORS: dict[int, str] = {
    0: "#000000",  # Clean
    1: "#1CE6FF",  # Material loss
    2: "#FF34FF",  # Peel
    3: "#FF4A46",  # Dust
    4: "#008941",  # Scratch
    5: "#006FA6",  # Hair
    6: "#A30059",  # Dirt
    7: "#FFA500",  # Fold
    8: "#7A4900",  # Writing
    9: "#0000A6",  # Cracks
    10: "#63FFAC",  # Staining
    11: "#004D43",  # Stamp
    12: "#8FB0FF",  # Sticker
    13: "#997D87",  # Puncture
    14: "#809693",  # Burn marks
    15: "#F6FF1B",  # Lightleak
    IGNORE_INDEX: "#5A0007",  # background
}


def rgb(hex_color: str) -> tuple[int, int, int]:
    """Hex "#RRGGBB" -> (r, g, b)."""
    return int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16)


PALETTE: tuple[tuple[int, int, int], ...] = tuple(rgb(COLORS[c]) for c in range(NUM_CLASSES))
BACKGROUND_RGB = rgb(COLORS[IGNORE_INDEX])


def metric_key(name: str) -> str:
    """MLflow-safe metric suffix for a class or metadata name ("Material loss" -> "material_loss",
    "Film / emulsion" -> "film_emulsion"): lower case, every run of other characters one "_"."""
    return re.sub(r"[^a-z0-9.-]+", "_", name.strip().lower()).strip("_") or "_"
