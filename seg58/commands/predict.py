"""`seg58 predict`: label masks and colour overlays of new images from a checkpoint (or an MLflow
run or Model); with infer.resolution=native, full-size masks of huge scans as tiled TIFFs."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seg58.base.errors import DataError
from seg58.config.schema import config_dir
from seg58.config.user_errors import reported_as_user_errors


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> None:
    from seg58.config import factory
    from seg58.config.config_checks import check_config

    with reported_as_user_errors():
        check_config(cfg)
        files = run_predict(cfg, list(HydraConfig.get().overrides.task))
    masks, overlays = ("full-size masks (tiled TIFF)", "overlay previews") if factory.native_resolution(cfg) else (
        "masks", "overlays")
    what = f"{masks}, {overlays} and uncertainty maps" if cfg.infer.uncertainty else f"{masks} and {overlays}"
    print(f"wrote {what} of {len(files)} image(s) to {cfg.infer.output}")


def run_predict(cfg: DictConfig, explicit: list[str]) -> list[Path]:
    from seg58.config import factory
    from seg58.data.folder import IMAGE_SUFFIXES, fitted_size
    from seg58.engine.inference import write_prediction, write_uncertainty
    from seg58.engine.runtime import resolve_device
    from seg58.modeling.calibration import normalized_entropy
    from seg58.modeling.hierarchy import fine_labels
    from seg58.tracking.run_source import with_run

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
    out = Path(i.output)
    if factory.native_resolution(cfg):
        from seg58.data.scans import open_scan
        from seg58.engine.tiled import predict_native

        for path in files:
            predict_native(predictor, open_scan(path), out, path.stem, uncertainty=i.uncertainty)
        return files
    resolution = factory.inference_resolution(cfg)
    from PIL import Image

    for path in files:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im = im.resize(fitted_size(im.size, cfg.data.preload_max_side), Image.Resampling.BOX)
            image = np.asarray(im)
        scores = predictor.scores_at(image, resolution, image.shape[:2])  # at the mask's size
        write_prediction(image, fine_labels(scores, predictor.num_classes, dim=0).cpu().numpy(), out, path.stem)
        if i.uncertainty:
            entropy = normalized_entropy(predictor.as_probabilities(scores))
            write_uncertainty(image, entropy.cpu().numpy(), out, path.stem)
    return files
