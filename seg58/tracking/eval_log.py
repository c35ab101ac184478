"""`seg58 evaluate`'s metrics, confusion matrix and per-image matrices into MLflow: into the source run when a run
was evaluated (beside its training metrics), else into a new run of the `eval` experiment."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig


def log_eval(cfg: DictConfig, ckpt: Path, scope: str, metrics: dict[str, float], confusion: np.ndarray,
             reliability: dict[str, list[float]] | None = None,
             per_image: tuple[list[str], np.ndarray] | None = None) -> None:
    """Into the source run when evaluating an MLflow run, else into a new run of `eval`; the
    confusion matrix, and the reliability diagram when given, as PNGs under eval/; the per-image
    matrices under per_image/eval/<scope>/ (what `seg58 report --compare` reads)."""
    from mlflow.tracking import MlflowClient

    from seg58.engine.visuals import confusion as plot_confusion
    from seg58.engine.visuals import reliability as plot_reliability
    from seg58.tracking.store import ensure_store, experiment_id, resolve_uri

    uri = resolve_uri(cfg.tracking.uri)
    ensure_store(uri)
    client = MlflowClient(uri)
    run_id = cfg.infer.run_id
    if not run_id:
        run_id = client.create_run(experiment_id(client, "eval", uri), run_name=f"eval-{ckpt.parent.parent.name}",
                                   tags={"checkpoint": str(ckpt)}).info.run_id
    from mlflow.entities import Metric

    now = int(time.time() * 1000)  # one request, not one per metric: ~150 with per-class P/R/F1
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    client.set_tag(run_id, f"eval.{scope.replace('/', '.')}.mode", f"{cfg.infer.mode} (window {cfg.infer.window})")
    with tempfile.TemporaryDirectory() as tmp:
        name = scope.replace("/", "_")
        plot_confusion(confusion, Path(tmp) / f"confusion_{name}.png",
                       f"{scope}: mIoU {metrics[f'eval/{scope}/miou']:.3f}")
        if reliability is not None:
            plot_reliability(reliability, Path(tmp) / f"reliability_{name}.png",
                             f"{scope}: ECE {metrics[f'eval/{scope}/ece']:.3f}")
        client.log_artifacts(run_id, tmp, artifact_path="eval")
    if per_image is not None:
        from seg58.tracking.per_image import log_per_image

        log_per_image(client, run_id, f"eval/{scope}", *per_image)
    if not cfg.infer.run_id:
        client.set_terminated(run_id, "FINISHED")
