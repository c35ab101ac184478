"""One training run from a composed config: validate, build data/model/trainer, fit.

Hydra-specific context (output folder, group choices) comes in as plain values from the entry
point; objects are built by seg58.factory, like every other command's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seg58 import factory
from seg58.callbacks import Callback, EarlyStopping
from seg58.checks import check_config
from seg58.data.folder import DataError
from seg58.runtime import autocast_dtype, available_cpus, precision_name

log = logging.getLogger(__name__)
COMPLETED_MARKER = "COMPLETED"


def resume_checkpoint(resume: str, run_dir: Path | None) -> Path | None:
    """auto: the run folder's own last.pt (a requeued or restarted job); never; or a path."""
    if resume == "never":
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / "last.pt" if run_dir else None
        return last if last is not None and last.is_file() else None
    return Path(resume)


def train(cfg: DictConfig, run_dir: Path | None = None, tags: dict[str, str] | None = None,
          callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Validate everything cheap first, then the data, and only then open a tracking run.

    `callbacks` run first (a search trial's reporter may stop the run before it is logged as
    finished); the summary holds the per-epoch history."""
    check_config(cfg)
    rt = factory.runtime(cfg)
    precision = precision_name(autocast_dtype(rt.device, cfg.trainer.amp, cfg.trainer.cpu_amp))
    log.info("device=%s amp=%s precision=%s threads=%d workers=%d (cpus available: %d)",
             rt.device, cfg.trainer.amp, precision, rt.threads, rt.workers, available_cpus())

    tags = {**(tags or {}), "precision": precision}
    run_name = cfg.tracking.run_name or f"{cfg.model.arch}-{cfg.encoder.name}".lower()
    if cfg.tracking.enabled:
        from seg58.mlflow_store import check_reachable, record_failed_run

        check_reachable(cfg.tracking.uri)  # before the expensive part
    try:
        splits = factory.data_splits(cfg, io_threads=max(1, rt.threads))
    except DataError as e:
        if cfg.tracking.enabled:  # the attempt is on record, with why; nothing else is written
            record_failed_run(cfg.tracking.uri, cfg.tracking.experiment_name, run_name, tags or {}, str(e))
        raise
    train_loader, val_loader = factory.loaders(cfg, splits, rt)

    callbacks = list(callbacks)
    if cfg.trainer.patience:
        callbacks.append(EarlyStopping(cfg.trainer.patience, cfg.trainer.min_delta))
    visuals_dir = run_dir / "visuals" if run_dir and cfg.trainer.visuals else None
    if visuals_dir is not None:  # before the tracker, which logs the folder at the end
        from seg58.visuals import BestEpochVisuals

        callbacks.append(BestEpochVisuals(splits.val, visuals_dir, cfg.trainer.visuals))
    if cfg.tracking.enabled:
        from seg58.tracking import MlflowCallback

        data = factory.lineage(cfg, splits, max(1, rt.threads))
        log.info("dataset %s: digest %s, %.1f MB (lineage in %.2f s)", data.name, data.digest,
                 data.n_bytes / 2**20, data.seconds)
        callbacks.append(MlflowCallback(
            cfg.tracking.uri,
            cfg.tracking.experiment_name,
            run_name,
            params=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
            tags=tags,
            artifact_dirs={".hydra": run_dir / ".hydra"} if run_dir else None,
            log_checkpoint=cfg.tracking.log_checkpoint,
            run_id_file=run_dir / "mlflow_run_id" if run_dir else None,
            parent_run_id=(tags or {}).get("sweep.parent_run_id"),
            end_artifact_dirs={"visuals": visuals_dir} if visuals_dir else None,
            dataset=data,
            system_metrics=cfg.tracking.system_metrics,
            system_metrics_interval_s=cfg.tracking.system_metrics_interval_s,
            model_config=(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
                          if cfg.tracking.log_model else None),
        ))
    trainer = factory.trainer(cfg, rt.device, run_dir, callbacks)
    summary = trainer.fit(train_loader, val_loader, resume_checkpoint(cfg.trainer.resume, run_dir))
    if run_dir is not None:
        (run_dir / COMPLETED_MARKER).touch()  # a later `resume=auto` must not pick this run up
    return {**summary, "history": trainer.history}
