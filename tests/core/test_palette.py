"""Overlays use ARTeFACT's own palette (its annotation_rgb colours), background included."""

from __future__ import annotations

import numpy as np
from PIL import Image

from seg58.engine.inference import write_prediction
from seg58.engine.visuals import colorize

# The dataset card's colours, written out here independently of seg58/base/classes.py.
CARD = {
    "Clean": "#000000", "Material loss": "#1CE6FF", "Peel": "#FF34FF", "Dust": "#FF4A46",
    "Scratch": "#008941", "Hair": "#006FA6", "Dirt": "#A30059", "Fold": "#FFA500", "Writing": "#7A4900",
    "Cracks": "#0000A6", "Staining": "#63FFAC", "Stamp": "#004D43", "Sticker": "#8FB0FF",
    "Puncture": "#997D87", "Burn marks": "#809693", "Lightleak": "#F6FF1B",
}
ORDER = ["Clean", "Material loss", "Peel", "Dust", "Scratch", "Hair", "Dirt", "Fold", "Writing", "Cracks",
         "Staining", "Stamp", "Sticker", "Puncture", "Burn marks", "Lightleak"]


def _rgb(hex_color: str) -> list[int]:
    return [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]


def test_colorize_maps_every_label_to_the_card_colour_and_background_to_5a0007():
    mask = np.array([[*range(16), 255]], np.uint8)
    colors = colorize(mask)[0].tolist()
    assert colors[:16] == [_rgb(CARD[name]) for name in ORDER]
    assert colors[16] == [0x5A, 0x00, 0x07]


def test_written_overlay_blends_the_card_palette(tmp_path):
    image = np.full((2, 3, 3), 200, np.uint8)
    pred = np.array([[1, 9, 255], [0, 15, 4]], np.uint8)
    write_prediction(image, pred, tmp_path, "x", alpha=1.0)  # alpha 1: the palette alone
    overlay = np.asarray(Image.open(tmp_path / "x_overlay.png")).tolist()
    assert overlay == [[_rgb(CARD["Material loss"]), _rgb(CARD["Cracks"]), _rgb("#5A0007")],
                       [_rgb(CARD["Clean"]), _rgb(CARD["Lightleak"]), _rgb(CARD["Scratch"])]]
    assert np.asarray(Image.open(tmp_path / "x_mask.png")).tolist() == pred.tolist()
