"""Per-image confusion matrices in MLflow: `per_image/<scope>/per_image_confusion.npz` of a run
(scope `val`: the best training epoch; `eval/<split>[/tta_x]`: `seg58 evaluate`), logged and
fetched back for `seg58 report --compare`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from seg58.base.errors import UsageError
from seg58.base.names import PER_IMAGE_DIR, PER_IMAGE_FILE
from seg58.modeling.intervals import load_per_image, save_per_image


def artifact_dir(scope: str) -> str:
    return f"{PER_IMAGE_DIR}/{scope}"


def log_per_image(client: Any, run_id: str, scope: str, ids: list[str], matrices: np.ndarray) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = save_per_image(Path(tmp) / PER_IMAGE_FILE, ids, matrices, scope=scope)
        client.log_artifact(run_id, str(path), artifact_path=artifact_dir(scope))


def scopes(client: Any, run_id: str) -> list[str]:
    """The scopes a run has per-image matrices for, e.g. ["eval/val", "val"]."""
    found, folders = [], [PER_IMAGE_DIR]
    while folders:
        for entry in client.list_artifacts(run_id, folders.pop()):
            if entry.is_dir:
                folders.append(entry.path)
            elif entry.path.endswith(f"/{PER_IMAGE_FILE}"):
                found.append(entry.path[len(PER_IMAGE_DIR) + 1:-len(PER_IMAGE_FILE) - 1])
    return sorted(found)


def download_per_image(client: Any, run_id: str, scope: str) -> tuple[list[str], np.ndarray]:
    """(image ids, (N, C, C) matrices) of one run and scope; a UsageError naming the run and the
    scopes it does have when this one is missing."""
    if scope not in (have := scopes(client, run_id)):
        where = f"it has {', '.join(have)} (--scope)" if have else (
            "it has none (trained before they were kept, or without a run folder?)")
        raise UsageError(f"MLflow run {run_id} has no per-image confusion matrices for scope {scope!r}: {where}")
    with tempfile.TemporaryDirectory() as tmp:
        return load_per_image(client.download_artifacts(run_id, f"{artifact_dir(scope)}/{PER_IMAGE_FILE}", tmp))
