"""ARTeFACT label set: one place for names, ids and the colour palette."""

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
IGNORE_INDEX = 255  # ARTeFACT "background": outside the object, never scored

# RGB colours for overlays; 255 (ignore) is drawn black.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
)


def metric_key(name: str) -> str:
    """MLflow-safe metric suffix for a class name ("Material loss" -> "material_loss")."""
    return name.lower().replace(" ", "_")
