"""albumentations pipelines: the seed's train augmentation and a whole-image val view."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network call on import

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

from seg58.base.classes import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(size: int, scale: tuple[float, float] = (0.5, 1.0)) -> A.Compose:
    """Random crop at a random scale of the shorter side, flips, rot90, normalize."""
    return A.Compose(
        [
            A.SmallestMaxSize(max_size=size),
            A.RandomResizedCrop(size=(size, size), scale=scale, ratio=(0.75, 1.333)),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
            ToTensorV2(),
        ]
    )


def val_transform(size: int) -> A.Compose:
    """The whole image, longest side = size, padded square with ignore."""
    return A.Compose(
        [
            A.LongestMaxSize(max_size=size),
            # Pad with ignore so padded pixels never count in loss or metrics.
            A.PadIfNeeded(size, size, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE_INDEX),
            A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
            ToTensorV2(),
        ]
    )
