"""`seg58 evaluate` and `seg58 predict`: a checkpoint (or an MLflow run) + data -> metrics or masks.

Glue between the composed config and seg58.infer, like run.py is for training.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from seg58.checkpoints import CheckpointError, load_checkpoint
from seg58.classes import CLASS_NAMES, metric_key
from seg58.data.build import resolve_root
from seg58.data.folder import IMAGE_SUFFIXES, DataError, fitted_size, scan_folder
from seg58.data.splits import make_split
from seg58.infer import Predictor, evaluate, write_prediction
from seg58.models import build_model, input_stride
from seg58.runtime import resolve_device

log = logging.getLogger(__name__)


def with_run(cfg: DictConfig, explicit: list[str]) -> tuple[DictConfig, Path]:
    """With infer.run_id: that run's logged config and best checkpoint; data/paths given on the
    command line still win, so a run can be evaluated on other data."""
    if not cfg.infer.run_id:
        if not cfg.infer.checkpoint:
            raise CheckpointError("give infer.checkpoint=<best.pt> or infer.run_id=<MLflow run id>")
        return cfg, Path(cfg.infer.checkpoint)
    from mlflow.tracking import MlflowClient

    from seg58.mlflow_store import resolve_uri

    client = MlflowClient(resolve_uri(cfg.tracking.uri))
    tmp = Path(tempfile.mkdtemp(prefix="seg58-eval-"))
    try:
        logged = OmegaConf.load(client.download_artifacts(cfg.infer.run_id, ".hydra/config.yaml", str(tmp)))
        ckpt = Path(client.download_artifacts(cfg.infer.run_id, "checkpoints/best.pt", str(tmp)))
    except Exception as e:
        raise CheckpointError(f"run {cfg.infer.run_id}: cannot fetch .hydra/config.yaml and "
                              f"checkpoints/best.pt ({type(e).__name__}: {str(e)[:200]})") from None
    merged = OmegaConf.merge(logged, {"infer": cfg.infer, "tracking": cfg.tracking})
    if any(o.lstrip("+~").startswith(("data", "paths")) for o in explicit):
        merged.data, merged.paths = cfg.data, cfg.paths
    return merged, ckpt


def make_predictor(cfg: DictConfig, ckpt: Path) -> Predictor:
    device = resolve_device(cfg.trainer.device)
    model = build_model(cfg.model.arch, cfg.encoder.name, cfg.data.num_classes,
                        encoder_kwargs=OmegaConf.to_container(cfg.encoder.kwargs, resolve=True),
                        model_kwargs=OmegaConf.to_container(cfg.model.kwargs, resolve=True),
                        hierarchical=cfg.model.hierarchical)
    state = load_checkpoint(ckpt)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{ckpt} does not fit model {cfg.model.arch}/{cfg.encoder.name}: "
                              f"{str(e)[:200]}") from None
    i = cfg.infer
    return Predictor(model, device, cfg.data.num_classes, mode=i.mode, window=i.window or cfg.data.img_size,
                     overlap=i.overlap, stride=input_stride(cfg.model.arch), amp=cfg.trainer.amp)


def run_evaluate(cfg: DictConfig, explicit: list[str]) -> dict[str, Any]:
    cfg, ckpt = with_run(cfg, explicit)
    d, i = cfg.data, cfg.infer
    samples = scan_folder(resolve_root(d.root, OmegaConf.to_container(d.synthetic) if d.synthetic else None))
    train, val = make_split(samples, d.split, d.val_fraction, d.split_seed, d.split_holdout)
    chosen = {"val": val, "train": train, "all": samples}[i.split]  # checked in seg58.checks
    predictor = make_predictor(cfg, ckpt)
    resolution = i.resolution or (d.img_size if i.mode == "whole" else None)
    result = evaluate(predictor, chosen, resolution, d.preload_max_side, d.ignore_index)
    metrics = {f"eval/{i.split}/miou": result["miou"], f"eval/{i.split}/pixel_acc": result["pixel_acc"]}
    metrics.update({f"eval/{i.split}/iou/{metric_key(n)}": v
                    for n, v in zip(CLASS_NAMES, result["iou"]) if not math.isnan(v)})
    for level, level_result in result["levels"].items():  # the 16 -> 4 -> 2 hierarchy
        metrics[f"eval/{i.split}/{level}/miou"] = level_result["miou"]
    if cfg.tracking.enabled:
        _log_eval(cfg, ckpt, metrics, result["confusion"])
    return {"metrics": metrics, "images": result["images"], "checkpoint": str(ckpt), "mode": i.mode}


def _log_eval(cfg: DictConfig, ckpt: Path, metrics: dict[str, float], confusion: np.ndarray) -> None:
    """Into the source run when evaluating an MLflow run, else into a new run of `eval`."""
    from mlflow.tracking import MlflowClient

    from seg58.mlflow_store import ensure_store, experiment_id, resolve_uri
    from seg58.visuals import confusion as plot_confusion

    uri = resolve_uri(cfg.tracking.uri)
    ensure_store(uri)
    client = MlflowClient(uri)
    run_id = cfg.infer.run_id
    if not run_id:
        run_id = client.create_run(experiment_id(client, "eval", uri), run_name=f"eval-{ckpt.parent.parent.name}",
                                   tags={"checkpoint": str(ckpt)}).info.run_id
    for k, v in metrics.items():
        client.log_metric(run_id, k, v)
    client.set_tag(run_id, f"eval.{cfg.infer.split}.mode", f"{cfg.infer.mode} (window {cfg.infer.window})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"confusion_{cfg.infer.split}.png"
        plot_confusion(confusion, path, f"{cfg.infer.split}: mIoU {metrics[f'eval/{cfg.infer.split}/miou']:.3f}")
        client.log_artifact(run_id, str(path), artifact_path="eval")
    if not cfg.infer.run_id:
        client.set_terminated(run_id, "FINISHED")


def run_predict(cfg: DictConfig, explicit: list[str]) -> list[Path]:
    cfg, ckpt = with_run(cfg, explicit)
    i = cfg.infer
    if not i.input:
        raise DataError(["give infer.input=<an image or a folder of images>"])
    source = Path(i.input)
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if source.is_dir() else [source]
    missing = [str(p) for p in files if not p.is_file()]
    if missing or not files:
        raise DataError([f"no such image: {m}" for m in missing] or [f"no images in {source}"])
    predictor = make_predictor(cfg, ckpt)
    resolution = i.resolution or (cfg.data.img_size if i.mode == "whole" else None)
    from PIL import Image

    out = Path(i.output)
    for path in files:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im = im.resize(fitted_size(im.size, cfg.data.preload_max_side), Image.Resampling.BOX)
            image = np.asarray(im)
        pred = predictor.predict(image, resolution, image.shape[:2]).cpu().numpy()
        write_prediction(image, pred, out, path.stem)
    return files
