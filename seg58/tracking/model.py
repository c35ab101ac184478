"""A run's best checkpoint as an MLflow Model, and the model registry.

`mlflow.pyfunc.load_model("runs:/<id>/model").predict(images)` turns uint8 RGB images into label
masks with the run's own normalisation and inference mode, in a process that has never seen the
run's folder: the model carries best.pt, the run's resolved config and a copy of the seg58
package (code/), and pins the packages inference imports. The same artifacts let `seg58
evaluate/predict infer.model_uri=models:/NAME@champion` rebuild a Predictor through factory.
Served by `mlflow models serve -m models:/NAME@champion --env-manager local` (POST {"inputs": [...]}).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np

from seg58.base.environment import environ
from seg58.base.errors import TrackingError

log = logging.getLogger(__name__)

MODEL_NAME = "model"  # runs:/<run id>/model
ALIAS = "champion"  # models:/<name>@champion: the latest registered best
# What inference imports (seg58.config.factory -> seg58.engine.inference, SMP/timm models, the config), pinned to the
# versions that trained the run; MLflow adds mlflow itself. seg58 travels as code, not as a package.
INFERENCE_PACKAGES = ("torch", "torchvision", "segmentation-models-pytorch", "timm", "huggingface-hub",
                      "hydra-core", "omegaconf", "albumentations", "numpy", "pillow", "tqdm")


def pip_requirements() -> list[str]:
    """Explicit pins: MLflow would otherwise infer them by loading the model in a subprocess at every log."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in INFERENCE_PACKAGES]


def signature() -> Any:
    """N x H x W x 3 uint8 in, N x H x W uint8 labels out (0..15; 255 where a data.background=class
    model sees background); any H and W, one size per call (a tensor signature takes one array, so
    images of different sizes go in separate calls)."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
                          outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1))]))


def input_example() -> np.ndarray:
    """One small image (also MLflow's serving example, checked by a real prediction at log time)."""
    y, x = np.mgrid[0:8, 0:12]
    return np.stack([y * 30, x * 20, (x + y) * 12], axis=-1).astype(np.uint8)[None]


def predict_masks(predictor: Any, images: np.ndarray, resolution: int | None, max_side: int | None) -> np.ndarray:
    """Label masks at each input's own H x W. Images larger than data.preload_max_side are first
    downsized as training loaded them (as `seg58 predict` does); logits are upsampled back."""
    from PIL import Image

    from seg58.data.folder import fitted_size

    images = np.array(images, dtype=np.uint8)  # a writable copy (serving hands in read-only arrays)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected N x H x W x 3 uint8 images, got shape {images.shape}")
    masks = np.empty(images.shape[:3], dtype=np.uint8)
    for i, image in enumerate(images):
        size = fitted_size((image.shape[1], image.shape[0]), max_side)
        if size != (image.shape[1], image.shape[0]):
            image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
        masks[i] = predictor.predict(image, resolution, images.shape[1:3]).cpu().numpy()
    return masks


class Seg58Model(mlflow.pyfunc.PythonModel):
    """The pyfunc model: rebuilt from its artifacts (config + best.pt) through seg58.config.factory.
    Logged as a model from code (seg58/tracking/model_code.py), with the seg58 package as its code."""

    def load_context(self, context: Any) -> None:
        from omegaconf import OmegaConf

        from seg58.config import factory
        from seg58.config.schema import Seg58Conf
        from seg58.engine.runtime import resolve_device

        cfg = OmegaConf.merge(OmegaConf.structured(Seg58Conf), OmegaConf.load(context.artifacts["config"]))
        # where it is served decides the device (a run trained on cuda:3 is served on a laptop too)
        self.predictor = factory.predictor(cfg, Path(context.artifacts["checkpoint"]), resolve_device("auto"))
        self.resolution = factory.inference_resolution(cfg)
        self.max_side = cfg.data.preload_max_side

    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        return predict_masks(self.predictor, model_input, self.resolution, self.max_side)


@contextlib.contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's model APIs (log_model, register_model, models:/ URIs) read the global tracking URI:
    point it at `uri` meanwhile, then put back exactly what was there (mlflow.set_tracking_uri(None)
    alone would also delete $MLFLOW_TRACKING_URI, which later jobs of a local sweep still need)."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    before = getattr(tracking_utils, "_tracking_uri", None)
    with environ(keep=["MLFLOW_TRACKING_URI"]):
        mlflow.set_tracking_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(before)


@contextlib.contextmanager
def _kept_sys_path() -> Iterator[None]:
    """Log-time validation loads the model, which puts its code/ folder first on sys.path."""
    saved = list(sys.path)
    try:
        yield
    finally:
        sys.path[:] = saved


NO_PROGRESS_BARS = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
"""Logging a model downloads its artifacts back to validate the input example, and MLflow draws
three progress bars for that per run: noise in a sweep's output."""


def log_best_model(uri: str, run_id: str, checkpoint: Path, config: dict[str, Any]) -> str:
    """best.pt + the run's resolved config (+ seg58's code) as the pyfunc model runs:/<run_id>/model."""
    from omegaconf import OmegaConf

    from seg58.tracking.model_digests import DIGESTS_TAG, package_files, write_digests

    here = Path(__file__).resolve().parent
    package = here.parent  # the whole seg58 package travels as the model's code
    with tempfile.TemporaryDirectory() as tmp, tracking_uri(uri), _kept_sys_path(), environ(NO_PROGRESS_BARS):
        config_path, digests_path = Path(tmp) / "config.yaml", Path(tmp) / "digests.json"
        OmegaConf.save(OmegaConf.create(config), config_path)
        # the files as the model will hold them, and the digest of their list for the run's tag
        digest = write_digests({**package_files(package, "code"), "model_code.py": here / "model_code.py",
                                "artifacts/best.pt": checkpoint, "artifacts/config.yaml": config_path}, digests_path)
        with mlflow.start_run(run_id=run_id, log_system_metrics=False):  # the caller sets the final status
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME, python_model=str(here / "model_code.py"),  # from code, not a pickle
                artifacts={"checkpoint": str(checkpoint), "config": str(config_path), "digests": str(digests_path)},
                code_paths=[str(package)], pip_requirements=pip_requirements(),
                signature=signature(), input_example=input_example())
            mlflow.set_tag(DIGESTS_TAG, digest)
    return info.model_uri


def fetch_model(uri: str, model_uri: str, dst: Path) -> tuple[Path, Path, str | None]:
    """(config.yaml, best.pt, source run id) of a seg58 model: runs:/<id>/model, models:/NAME@alias,
    models:/NAME/3 ...; a CheckpointError names the URI when it is not there or not a seg58 model,
    and names the file when the model's files are not those its run recorded (model_digests.py)."""
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    from seg58.base.errors import CheckpointError
    from seg58.tracking.model_digests import DIGESTS_TAG, checked_path, source_run, verify

    try:
        with tracking_uri(uri):
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
        model = Model.load(str(local))
        paths = [model.flavors["python_function"]["artifacts"][k]["path"] for k in ("config", "checkpoint")]
        client = MlflowClient(uri)
        run_id = source_run(client, model_uri, model.run_id)
        recorded = client.get_run(run_id).data.tags.get(DIGESTS_TAG) if run_id else None
    except Exception as e:
        raise CheckpointError(f"model {model_uri}: cannot fetch a seg58 model's config and checkpoint from {uri} "
                              f"({type(e).__name__}: {str(e)[:300]})") from None
    verify(local, recorded, model_uri, run_id)  # before anything reads the weights
    config, checkpoint = (checked_path(local, p, recorded, model_uri) for p in paths)
    return config, checkpoint, run_id


def register_best(client: Any, rows: list[dict[str, Any]], name: str, parent: str | None = None) -> dict[str, Any]:
    """The leaderboard's best finished run: its model as a new version of `name`, alias champion."""
    from mlflow.exceptions import MlflowException

    best = next((r for r in rows if r["status"] == "FINISHED"), None)
    if best is None:
        raise TrackingError(f"nothing to register as {name!r}: no run of the sweep finished")
    tags = {"seg58.source_run": best["run_id"], "seg58.best_val_miou": f"{best['best_val_miou']:.6f}"}
    if parent:
        tags["seg58.sweep_run"] = parent
    registry_log = logging.getLogger("mlflow.tracking._model_registry.fluent")
    level = registry_log.level  # its "no artifacts at 'model', using models:/<id>" is MLflow 3's normal path
    registry_log.setLevel(logging.ERROR)
    try:
        with tracking_uri(client.tracking_uri):
            version = mlflow.register_model(f"runs:/{best['run_id']}/{MODEL_NAME}", name, tags=tags)
        client.set_registered_model_alias(name, ALIAS, version.version)
    except MlflowException as e:
        raise TrackingError(f"cannot register the model of run {best['run']} ({best['run_id']}) as {name!r}: "
                            f"{e.message[:300]} (trained with tracking.log_model=false?)") from None
    finally:
        registry_log.setLevel(level)
    return {"name": name, "version": str(version.version), "alias": ALIAS, "run_id": best["run_id"],
            "run": best["run"], "best_val_miou": best["best_val_miou"], "uri": f"models:/{name}@{ALIAS}"}


def describe(registered: dict[str, Any]) -> str:
    r = registered
    return (f"registered {r['name']} version {r['version']}, alias {r['alias']} ({r['uri']}) <- run {r['run']} "
            f"({r['run_id']}), best val mIoU {r['best_val_miou']:.4f}")
