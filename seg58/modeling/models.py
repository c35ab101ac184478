"""SMP model factory plus the compatibility rules SMP only reports deep inside a constructor."""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext
from pathlib import Path

import segmentation_models_pytorch as smp
import torch

from seg58.base.errors import WeightsError
from seg58.modeling.hub_weights import (
    UNREACHABLE,
    WeightSource,
    hub_cache,
    is_local_file,
    missing_weights_message,
    smp_weights,
    weight_source,
)

log = logging.getLogger(__name__)


# Architectures that need an encoder with dilated convolutions (output_stride < 32), and the
# factor every input side must be divisible by.
NEEDS_DILATION = {"deeplabv3", "deeplabv3plus"}
# timm families known to lack dilation support (SMP raises a TypeError on output_stride).
NO_DILATION_PREFIXES = ("tu-swin", "tu-maxvit", "tu-coatnet", "tu-test_maxvit", "tu-test_coatnet")


# timm's Swin refuses any input size but the one it was built for unless told not to insist; it then
# pads each window itself, so a model trained at one size runs at any other (evaluate, predict, TTA).
SIZE_FREE_KWARGS = {"tu-swin": {"strict_img_size": False}}
# MaxViT/CoAtNet partition every stage into a grid of windows sized for the built image: each input
# side must be a multiple of that size.
WINDOWS_OF_BUILT_SIZE = ("tu-maxvit", "tu-maxxvit", "tu-coatnet", "tu-test_maxvit", "tu-test_coatnet")


def input_stride(arch: str) -> int:
    """Input sides must be multiples of this (DeepLabV3(+) downsample by 16, the others by 32)."""
    return 16 if arch.lower() in NEEDS_DILATION else 32


def input_multiple(arch: str, encoder: str, encoder_kwargs: dict | None = None) -> int:
    """What every input side must be a multiple of at inference: the architecture's stride, and for
    an encoder whose windows are sized for the image it was built for, that size too."""
    stride = input_stride(arch)
    built = (encoder_kwargs or {}).get("img_size")
    if built and encoder.startswith(WINDOWS_OF_BUILT_SIZE):
        return math.lcm(stride, int(built))
    return stride


def encoder_kwargs_for(encoder: str, encoder_kwargs: dict | None) -> dict:
    """The encoder's keyword arguments, with what lets a fixed-size family run at any size added
    (unless the config set it): also for runs logged before this was added."""
    kwargs = dict(encoder_kwargs or {})
    for prefix, extra in SIZE_FREE_KWARGS.items():
        if encoder.startswith(prefix):
            kwargs = {**extra, **kwargs}
    return kwargs


def compatibility_problems(arch: str, encoder: str, img_size: int) -> list[str]:
    problems = []
    if arch.lower() not in smp.MODEL_ARCHITECTURES_MAPPING:
        problems.append(
            f"model.arch={arch!r} is not an SMP architecture; valid: "
            f"{sorted(smp.MODEL_ARCHITECTURES_MAPPING)}"
        )
    if arch.lower() in NEEDS_DILATION and encoder.startswith(NO_DILATION_PREFIXES):
        problems.append(
            f"encoder {encoder!r} cannot be used with model {arch!r}: {arch} needs a dilated "
            f"encoder (resnet*, convnext*, efficientnet*); use model=unet, fpn or unetplusplus"
        )
    stride = input_stride(arch)
    if img_size % stride:
        problems.append(
            f"data.img_size={img_size} is not divisible by {stride}, the input stride of {arch}; "
            f"try {max(stride, round(img_size / stride) * stride)}"
        )
    return problems


def build_model(
    arch: str,
    encoder: str,
    num_classes: int,
    weights: str | bool | None = None,
    in_channels: int = 3,
    encoder_kwargs: dict | None = None,
    model_kwargs: dict | None = None,
    hierarchical: bool = False,
    hierarchy: str = "seg58",
    allow_partial_weights: bool = False,
    cache_dir: str | Path | None = None,
    offline: bool = False,
    fetch_command: str = "seg58 fetch-weights encoder=<choice>",
) -> torch.nn.Module:
    """SMP model; `weights` may be an SMP weights name, True (timm default), or a local file.

    Pretrained weights come through the hub cache under `cache_dir` (None: the hub's default
    cache); `offline` forbids downloading them, and one that is not cached is a WeightsError
    naming the encoder, the cache and `fetch_command`, the command that fetches it."""
    local_file = is_local_file(weights)
    pretrained = None if local_file else smp_weights(encoder, weights)
    with hub_cache(cache_dir, offline) if pretrained else nullcontext():
        try:
            model = smp.create_model(
                arch,
                encoder_name=encoder,
                encoder_weights=pretrained,
                in_channels=in_channels,
                classes=num_classes,
                **(model_kwargs or {}),
                **encoder_kwargs_for(encoder, encoder_kwargs),
            )
        except UNREACHABLE as e:
            try:
                source: WeightSource | str = weight_source(encoder, pretrained, encoder_kwargs)
            except ValueError:
                source = encoder
            raise WeightsError(missing_weights_message(source, cache_dir, offline, fetch_command, e)) from None
    if local_file:
        load_encoder_weights(model, weights, allow_partial_weights)
    if hierarchical:
        from seg58.modeling.hierarchy import HierarchicalModel

        model = HierarchicalModel(model, hierarchy)
    return model


def load_encoder_weights(model: torch.nn.Module, path: str, allow_partial: bool = False) -> None:
    """Offline clusters: encoder weights from a file (state dict of the encoder or a timm model).

    A file that leaves encoder tensors unset would train a half-random encoder without a word:
    that is an error listing them, or with `allow_partial` (encoder.allow_partial_weights) a
    warning. Extra tensors (a classifier head of a timm checkpoint) are ignored."""
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"encoder.weights={path}: cannot read ({type(e).__name__}: {str(e)[:200]})") from None
    target = model.encoder.model if hasattr(model.encoder, "model") else model.encoder
    try:
        missing, unexpected = target.load_state_dict(state, strict=False)
    except RuntimeError as e:  # same names, other shapes
        raise WeightsError(f"encoder.weights={path} does not fit encoder {type(target).__name__}: "
                           f"{str(e)[:300]}") from None
    if len(state) == len(unexpected):
        raise WeightsError(f"encoder.weights={path}: no tensor matches encoder {type(target).__name__}")
    if missing:
        listed = ", ".join(missing[:10]) + (f" ... ({len(missing)} in all)" if len(missing) > 10 else "")
        message = f"encoder.weights={path} leaves {len(missing)} encoder tensor(s) unset: {listed}"
        if not allow_partial:
            raise WeightsError(f"{message}. Use a complete file, or encoder.allow_partial_weights=true "
                               f"to train with the rest randomly initialised")
        log.warning("%s (kept random: encoder.allow_partial_weights=true)", message)
