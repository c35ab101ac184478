"""Checkpoint files: written atomically, read without executing code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from seg58.base.errors import CheckpointError


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Tensors and plain containers only (weights_only): a checkpoint cannot run code."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except Exception as e:
        raise CheckpointError(f"cannot load checkpoint {path} (corrupt or not a seg58 checkpoint): "
                              f"{type(e).__name__}: {str(e)[:300]}") from None


def load_weights(model: torch.nn.Module, state: dict[str, Any], source: str, model_name: str) -> None:
    """The checkpoint's model weights, all of them, or a CheckpointError naming both sides."""
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {source} does not fit model {model_name}: {str(e)[:300]}") from None


def save_atomic(obj: Any, path: Path) -> None:
    """A crash mid-write leaves the previous checkpoint intact, never a truncated one."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
