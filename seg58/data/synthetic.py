"""Procedural ARTeFACT look-alike: textured "artworks" with all 15 damage types drawn on top
(optionally with ARTeFACT's rarest four made rare).

Each damage class has its own visual signature (colour, shape, scale) so that a small model can
actually learn the task in minutes on a CPU, which makes the default run and the tests
meaningful. Output is an ordinary ARTeFACT-format folder; generation is deterministic by seed and
cached (written to a temporary folder, then renamed into place, so concurrent jobs never see a
half-written set).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from seg58.base.classes import IGNORE_INDEX, NUM_CLASSES, RARE_CLASSES
from seg58.base.errors import ConfigError
from seg58.data.writer import atomic_dataset, write_metadata

GENERATOR_VERSION = 1  # bump when the drawing code changes: it is part of the cache key
MATERIALS = ("Paper", "Canvas", "Parchment", "Wood", "Film emulsion")
CONTENTS = ("Artistic depiction", "Photographic depiction", "Geometric patterns", "Line art")
_TINT = {
    "Paper": (0.95, 0.93, 0.88),
    "Canvas": (0.90, 0.86, 0.78),
    "Parchment": (0.93, 0.85, 0.68),
    "Wood": (0.75, 0.6, 0.42),
    "Film emulsion": (0.85, 0.85, 0.85),
}


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, ch: int = 3) -> np.ndarray:
    small = rng.random((cells, cells, ch)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, ch).clip(0, 1)


def _artwork(rng: np.random.Generator, h: int, w: int, material: str, content: str) -> np.ndarray:
    tint = np.array(_TINT[material], np.float32)
    if content == "Artistic depiction":
        img = 0.35 + 0.5 * _smooth_noise(rng, h, w, 4)
        for _ in range(4):
            c = rng.random(3).tolist()
            cv2.ellipse(img, (int(rng.integers(w)), int(rng.integers(h))),
                        (int(rng.integers(8, w // 3)), int(rng.integers(8, h // 3))),
                        float(rng.integers(180)), 0, 360, c, -1)
        img = cv2.GaussianBlur(img, (0, 0), 3)
    elif content == "Photographic depiction":
        grey = 0.25 + 0.6 * _smooth_noise(rng, h, w, 6, 1)
        img = np.repeat(grey, 3, axis=2) * np.array([1.0, 0.92, 0.78], np.float32)
    elif content == "Geometric patterns":
        period = int(rng.integers(10, 24))
        yy, xx = np.mgrid[0:h, 0:w]
        a, b = rng.random(3).astype(np.float32), rng.random(3).astype(np.float32)
        checker = (((yy // period) + (xx // period)) % 2).astype(np.float32)[..., None]
        img = 0.3 + 0.5 * (checker * a + (1 - checker) * b)
    else:  # Line art on a plain ground
        img = np.ones((h, w, 3), np.float32) * 0.9
        for _ in range(6):
            pts = rng.integers(0, (w, h), size=(4, 2)).astype(np.int32)
            cv2.polylines(img, [pts], False, (0.35, 0.3, 0.3), 3)
    img = img * tint
    if material == "Canvas":  # weave texture
        yy, xx = np.mgrid[0:h, 0:w]
        img *= (0.93 + 0.07 * ((yy % 4 < 2) ^ (xx % 4 < 2)))[..., None]
    elif material == "Wood":
        yy = np.mgrid[0:h, 0:w][0]
        img *= (0.9 + 0.1 * np.sin(yy / 3.0 + 4 * _smooth_noise(rng, h, w, 3, 1)[..., 0]))[..., None]
    return img + rng.normal(0, 0.015, img.shape).astype(np.float32)


def _blob(rng: np.random.Generator, h: int, w: int, r: float) -> np.ndarray:
    """Irregular filled polygon mask around a random centre."""
    cx, cy = rng.integers(0, w), rng.integers(0, h)
    ang = np.sort(rng.random(12)) * 2 * np.pi
    rad = r * (0.6 + 0.8 * rng.random(12))
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [pts], 1)
    return m.astype(bool)


def _walk(rng: np.random.Generator, h: int, w: int, steps: int, step: float, turn: float) -> np.ndarray:
    pos, ang, pts = np.array([rng.integers(w), rng.integers(h)], float), rng.random() * 6.3, []
    for _ in range(steps):
        ang += rng.normal(0, turn)
        pos = pos + step * np.array([np.cos(ang), np.sin(ang)])
        pts.append(pos.copy())
    return np.array(pts, np.int32)


def _lines(h: int, w: int, polylines: list[np.ndarray], thickness: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.polylines(m, polylines, False, 1, thickness)
    return m.astype(bool)


def _paint(img: np.ndarray, where: np.ndarray, colour, alpha: float = 1.0) -> None:
    img[where] = (1 - alpha) * img[where] + alpha * np.asarray(colour, np.float32)


def _damage(rng: np.random.Generator, img: np.ndarray, cls: int) -> np.ndarray:
    """Draw damage `cls` onto img in place; return its boolean footprint."""
    h, w = img.shape[:2]
    s = min(h, w)
    if cls == 1:  # material loss: bare substrate showing through
        m = _blob(rng, h, w, s * 0.12)
        _paint(img, m, (0.97, 0.95, 0.9))
    elif cls == 2:  # peel: lifted, lighter flake with a dark rim
        m = _blob(rng, h, w, s * 0.1)
        img[m] = img[m] * 0.4 + 0.6
        edge = m ^ cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        _paint(img, edge, (0.2, 0.15, 0.1))
    elif cls == 3:  # dust: many small bright specks in a region
        m = np.zeros((h, w), bool)
        cx, cy = rng.integers(0, w), rng.integers(0, h)
        for _ in range(40):
            x = int(np.clip(cx + rng.normal(0, s * 0.12), 0, w - 1))
            y = int(np.clip(cy + rng.normal(0, s * 0.12), 0, h - 1))
            m[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = True
        _paint(img, m, (0.85, 0.85, 0.82))
    elif cls == 4:  # scratch: long, nearly straight, thin and bright
        m = _lines(h, w, [_walk(rng, h, w, 8, s / 8, 0.05) for _ in range(2)], 2)
        _paint(img, m, (1.0, 1.0, 1.0))
    elif cls == 5:  # hair: thin, dark, curly
        m = _lines(h, w, [_walk(rng, h, w, 30, s / 40, 0.35)], 1)
        _paint(img, m, (0.05, 0.04, 0.03))
    elif cls == 6:  # dirt: brownish semi-transparent grime
        m = _blob(rng, h, w, s * 0.15) & (_smooth_noise(rng, h, w, 8, 1)[..., 0] > 0.45)
        _paint(img, m, (0.35, 0.25, 0.12), 0.55)
    elif cls == 7:  # fold: a crease across the object, dark on one side, light on the other
        x0, x1 = rng.integers(0, w, 2)
        m = _lines(h, w, [np.array([[x0, 0], [x1, h - 1]], np.int32)], 5)
        dark = _lines(h, w, [np.array([[x0 - 1, 0], [x1 - 1, h - 1]], np.int32)], 2)
        img[m] = img[m] * 0.6 + 0.4
        _paint(img, dark & m, (0.15, 0.15, 0.15))
    elif cls == 8:  # writing: ink handwriting-like text
        canvas = np.zeros((h, w), np.uint8)
        text = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz "), 8))
        org = (int(rng.integers(0, max(1, w // 3))), int(rng.integers(h // 5, h - 4)))
        cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, s / 220, 1, 2)
        m = canvas.astype(bool)
        _paint(img, m, (0.05, 0.1, 0.35))
    elif cls == 9:  # cracks: branching dark network (craquelure)
        trunk = _walk(rng, h, w, 14, s / 18, 0.5)
        branches = [trunk]
        for p in trunk[::3]:
            b = _walk(rng, h, w, 5, s / 25, 0.6)
            branches.append(b - b[0] + p)
        m = _lines(h, w, branches, 1)
        _paint(img, m, (0.1, 0.08, 0.06))
    elif cls == 10:  # staining: large yellow-brown tide mark
        m = _blob(rng, h, w, s * 0.2)
        _paint(img, m, (0.8, 0.6, 0.2), 0.35)
        rim = m ^ cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        _paint(img, rim, (0.55, 0.4, 0.15), 0.6)
    elif cls == 11:  # stamp: red or blue double ring
        c = (int(rng.integers(s // 6, w - s // 6)), int(rng.integers(s // 6, h - s // 6)))
        r = int(s * rng.uniform(0.08, 0.14))
        colour = (0.8, 0.1, 0.1) if rng.random() < 0.5 else (0.1, 0.2, 0.75)
        ring = np.zeros((h, w), np.uint8)
        cv2.circle(ring, c, r, 1, 2)
        cv2.circle(ring, c, max(2, r - 5), 1, 1)
        _paint(img, ring.astype(bool), colour)
        m = np.zeros((h, w), np.uint8)
        cv2.circle(m, c, r + 1, 1, -1)
        m = m.astype(bool)
    elif cls == 12:  # sticker: bright rotated label
        box = cv2.boxPoints(((float(rng.integers(w)), float(rng.integers(h))),
                             (s * 0.2, s * 0.12), float(rng.integers(180)))).astype(np.int32)
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [box], 1)
        m = m.astype(bool)
        _paint(img, m, (0.98, 0.95, 0.4) if rng.random() < 0.5 else (1.0, 1.0, 1.0))
    elif cls == 13:  # puncture: small black holes
        m = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(2, 5))):
            cv2.circle(m, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(2, 5)), 1, -1)
        m = m.astype(bool)
        _paint(img, m, (0.0, 0.0, 0.0))
    elif cls == 14:  # burn mark: charred centre fading to brown
        m = _blob(rng, h, w, s * 0.1)
        dist = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 3)
        a = (dist / max(dist.max(), 1))[m][:, None]
        img[m] = img[m] * (1 - a) * 0.3 + a * np.array([0.05, 0.02, 0.0]) + (1 - a) * np.array([0.3, 0.15, 0.05])
    elif cls == 15:  # light leak: orange glow from one edge
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        d = [xx, w - 1 - xx, yy, h - 1 - yy][int(rng.integers(4))] / s
        a = np.clip(1 - d / rng.uniform(0.2, 0.35), 0, 1)
        m = a > 0.3
        img[:] = img * (1 - a[..., None] * 0.8) + (a[..., None] * 0.8) * np.array([1.0, 0.55, 0.1], np.float32)
    else:
        raise ValueError(f"no synthetic drawing for class {cls}")
    return m


def render(rng: np.random.Generator, h: int, w: int, classes: list[int],
           material: str, content: str) -> tuple[np.ndarray, np.ndarray]:
    """One image (uint8 RGB) and mask (uint8): artwork, damages in order, ignore border."""
    img = _artwork(rng, h, w, material, content)
    mask = np.zeros((h, w), np.uint8)
    for cls in classes:
        mask[_damage(rng, img, cls)] = cls
    if rng.random() < 0.5:  # ARTeFACT "background": scanner bed around the object
        top, bottom, left, right = (int(v) for v in rng.integers(0, max(2, min(h, w) // 8), 4))
        border = np.ones((h, w), bool)
        border[top:h - bottom, left:w - right] = False
        img[border] = 0.08
        mask[border] = IGNORE_INDEX
    return (img.clip(0, 1) * 255).astype(np.uint8), mask


def generate(root: str | Path, n_images: int, size: int, seed: int, rare: float = 1.0) -> None:
    """Write an ARTeFACT-format folder; every damage class appears in many images, unless `rare`
    < 1: then each of ARTeFACT's rarest classes (RARE_CLASSES) chosen for an image is kept with probability `rare` (from
    its own seeded stream; rare=1 draws nothing from it, so the output is that of version 1)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    rng, keep = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    rows = []
    for i in range(n_images):
        h, w = (int(size * rng.uniform(0.8, 1.25)) for _ in range(2))
        k = int(rng.integers(3, 6))
        guaranteed = i % (NUM_CLASSES - 1) + 1  # round-robin: every class in every ~15 images
        others = [c for c in range(1, NUM_CLASSES) if c != guaranteed]
        classes = [guaranteed, *(int(c) for c in rng.choice(others, k - 1, replace=False))]
        rng.shuffle(classes)
        if rare < 1:
            classes = [c for c in classes if c not in RARE_CLASSES or keep.random() < rare]
        material, content = MATERIALS[i % len(MATERIALS)], CONTENTS[(i // 2) % len(CONTENTS)]
        img, mask = render(rng, h, w, classes, material, content)
        name = f"syn_{i:05d}"
        Image.fromarray(img).save(root / "images" / f"{name}.png")
        Image.fromarray(mask, mode="L").save(root / "annotations" / f"{name}.png")
        rows.append({"id": name, "material": material, "content": content})
    write_metadata(root, rows, ["id", "material", "content"])


def ensure_synthetic(cache_dir: str | Path, n_images: int, size: int, seed: int, rare: float = 1.0) -> Path:
    """Return the cached set for these parameters, generating it once (atomically) if absent."""
    if not 0 <= rare <= 1:
        raise ConfigError([f"data.synthetic.rare={rare} must be in [0, 1] (1: rare classes as common as the rest)"])
    cache_dir = Path(cache_dir).expanduser()
    target = cache_dir / (f"synthetic-v{GENERATOR_VERSION}-n{n_images}-s{size}-seed{seed}"
                          + (f"-rare{rare:g}" if rare < 1 else ""))
    if target.is_dir():
        return target
    try:
        with atomic_dataset(target) as tmp:
            generate(tmp, n_images, size, seed, rare)
    except OSError:  # a concurrent job renamed its complete copy into place first
        if not target.is_dir():
            raise
    return target
