"""`seg58 evaluate` and `seg58 predict`: a checkpoint (or an MLflow run) + data -> metrics or masks.

Glue between the composed config and seg58.infer, like run.py is for training.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from seg58 import factory
from seg58.checkpoints import CheckpointError
from seg58.data.folder import IMAGE_SUFFIXES, DataError, fitted_size
from seg58.infer import evaluate, write_prediction
from seg58.runtime import resolve_device

log = logging.getLogger(__name__)


def with_run(cfg: DictConfig, explicit: list[str]) -> tuple[DictConfig, Path]:
    """With infer.run_id: that run's logged config and best checkpoint; with infer.model_uri
    (models:/NAME@champion, runs:/<id>/model): the MLflow Model's own config and best.pt, metrics
    logged into the run that logged it. data/paths given on the command line still win, so a run
    can be evaluated on other data."""
    model_uri = cfg.infer.model_uri
    if model_uri and (cfg.infer.run_id or cfg.infer.checkpoint):
        raise CheckpointError("give one of infer.model_uri, infer.run_id and infer.checkpoint, not several")
    if not cfg.infer.run_id and not model_uri:
        if not cfg.infer.checkpoint:
            raise CheckpointError("give infer.checkpoint=<best.pt>, infer.run_id=<MLflow run id> or "
                                  "infer.model_uri=models:/<name>@champion")
        return cfg, Path(cfg.infer.checkpoint)
    from seg58.mlflow_store import existing_store, get_run

    client = existing_store(cfg.tracking.uri)
    tmp = Path(tempfile.mkdtemp(prefix="seg58-eval-"))
    source = cfg.infer.run_id
    if model_uri:
        from seg58.mlflow_model import fetch_model

        config_path, ckpt, source = fetch_model(client.tracking_uri, model_uri, tmp)
        logged = OmegaConf.load(config_path)
    else:
        get_run(client, cfg.infer.run_id)
        try:
            logged = OmegaConf.load(client.download_artifacts(cfg.infer.run_id, ".hydra/config.yaml", str(tmp)))
            ckpt = Path(client.download_artifacts(cfg.infer.run_id, "checkpoints/best.pt", str(tmp)))
        except Exception as e:
            raise CheckpointError(f"run {cfg.infer.run_id}: cannot fetch .hydra/config.yaml and "
                                  f"checkpoints/best.pt ({type(e).__name__}: {str(e)[:200]})") from None
    from omegaconf.errors import OmegaConfBaseException

    from seg58.config import Seg58Conf
    from seg58.errors import ConfigError

    try:  # typed like a composed config; keys added since the run get today's defaults
        merged = OmegaConf.merge(OmegaConf.structured(Seg58Conf), logged,
                                 {"infer": cfg.infer, "tracking": cfg.tracking})
    except OmegaConfBaseException as e:
        raise ConfigError([f"the config logged by {f'model {model_uri}' if model_uri else f'run {source}'} does "
                           f"not fit this version of seg58 ({type(e).__name__}: {str(e).splitlines()[0]})"]) from None
    merged.infer.run_id = source  # a model's eval metrics go into its source run, as a run's do
    if any(o.lstrip("+~").startswith(("data", "paths")) for o in explicit):
        background = merged.data.background  # the checkpoint's output count: the run's, unless given
        merged.data, merged.paths = cfg.data, cfg.paths
        if not any(o.lstrip("+~").startswith("data.background") for o in explicit):
            merged.data.background = background
    return merged, ckpt


def eval_scope(cfg: DictConfig) -> str:
    """`<split>`, or `<split>/tta_<choice>` with infer.tta: metrics `eval/val/miou` and
    `eval/val/tta_d4/miou` of one model sit side by side in the same run, neither overwriting the other."""
    tta = str(cfg.infer.tta)
    return str(cfg.infer.split) if tta == "none" else f"{cfg.infer.split}/tta_{tta}"


def warn_if_data_changed(cfg: DictConfig) -> str | None:
    """Metrics of a run on data that is no longer what it trained on (files changed, added or
    removed, or another folder) are not comparable with its training metrics: say so, naming
    both digests. A warning, not an error: evaluating on new data is legitimate."""
    if not cfg.infer.run_id:
        return None  # a bare checkpoint records no data to compare with
    from seg58.mlflow_store import existing_store
    from seg58.tracking import data_change_warning

    root, digest = factory.current_digest(cfg)
    message = data_change_warning(existing_store(cfg.tracking.uri), cfg.infer.run_id, root, digest)
    if message:
        log.warning("%s", message)
    return message


def run_evaluate(cfg: DictConfig, explicit: list[str]) -> dict[str, Any]:
    cfg, ckpt = with_run(cfg, explicit)
    warn_if_data_changed(cfg)
    chosen = factory.samples(cfg, cfg.infer.split)
    predictor = factory.predictor(cfg, ckpt, resolve_device(cfg.trainer.device))
    result = evaluate(predictor, chosen, factory.inference_resolution(cfg), cfg.data.preload_max_side,
                      f"eval/{eval_scope(cfg)}", cfg.data.ignore_index, cfg.data.background, cfg.data.hierarchy)
    metrics = result["metrics"]
    if cfg.tracking.enabled:
        _log_eval(cfg, ckpt, metrics, result["confusion"])
    return {"metrics": metrics, "images": result["images"], "checkpoint": str(ckpt), "mode": str(cfg.infer.mode),
            "tta": str(cfg.infer.tta)}


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
    from mlflow.entities import Metric

    now = int(time.time() * 1000)  # one request, not one per metric: ~150 with per-class P/R/F1
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    scope = eval_scope(cfg)
    client.set_tag(run_id, f"eval.{scope.replace('/', '.')}.mode", f"{cfg.infer.mode} (window {cfg.infer.window})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"confusion_{scope.replace('/', '_')}.png"
        plot_confusion(confusion, path, f"{scope}: mIoU {metrics[f'eval/{scope}/miou']:.3f}")
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
    predictor = factory.predictor(cfg, ckpt, resolve_device(cfg.trainer.device))
    resolution = factory.inference_resolution(cfg)
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
