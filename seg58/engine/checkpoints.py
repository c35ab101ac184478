"""Checkpoint files: written atomically, read without executing code."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
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


def rng_state(data_order: torch.Generator | None = None) -> dict[str, Any]:
    """Every random stream a resumed run must continue, as tensors and plain values (readable with
    weights_only): torch's and CUDA's, numpy's and Python's (augmentations drawn in the main
    process) and the train loader's generator (its shuffle order, its workers' seeds)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                      "gauss": float(gauss)},
            "python": random.getstate(),
            "data_order": data_order.get_state() if data_order is not None else None}


def restore_rng(state: dict[str, Any], data_order: torch.Generator | None = None) -> None:
    """The inverse of rng_state; a checkpoint without a stream leaves that stream as it is."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])
    if state.get("numpy"):
        n = state["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if state.get("python"):
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if data_order is not None and state.get("data_order") is not None:
        data_order.set_state(state["data_order"].cpu())
