"""One training run from a composed config: validate, build data/model/trainer, fit.

The only module that reads the config tree; Hydra-specific context (output folder, group
choices) comes in as plain values from the entry point.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from seg58.checks import ConfigError, check_config
from seg58.data.build import build_splits
from seg58.data.folder import DataError
from seg58.models import build_model
from seg58.runtime import available_cpus, resolve_device, resolve_threads, resolve_workers, seed_everything
from seg58.trainer import Trainer

log = logging.getLogger(__name__)
COMPLETED_MARKER = "COMPLETED"


def _seed_worker(worker_id: int) -> None:
    np.random.seed(torch.initial_seed() % 2**32)


def make_loaders(splits, batch_size: int, workers: int, device: torch.device, seed: int):
    if len(splits.train) < batch_size:
        raise ConfigError([f"trainer.batch_size={batch_size} is larger than the training split "
                           f"({len(splits.train)} images in {splits.root})"])
    common = dict(num_workers=workers, pin_memory=device.type == "cuda",
                  persistent_workers=workers > 0, worker_init_fn=_seed_worker)
    train = DataLoader(splits.train, batch_size=batch_size, shuffle=True, drop_last=True,
                       generator=torch.Generator().manual_seed(seed), **common)
    val = DataLoader(splits.val, batch_size=batch_size, shuffle=False, **common)
    return train, val


def build_trainer(cfg: DictConfig, device: torch.device, run_dir: Path | None, callbacks=()) -> Trainer:
    model = build_model(
        cfg.model.arch, cfg.encoder.name, cfg.data.num_classes, weights=cfg.encoder.weights,
        encoder_kwargs=OmegaConf.to_container(cfg.encoder.kwargs, resolve=True),
        model_kwargs=OmegaConf.to_container(cfg.model.kwargs, resolve=True),
        hierarchical=cfg.model.hierarchical,
    )
    return Trainer(
        model,
        instantiate(cfg.loss),
        instantiate(cfg.optim.optimizer),
        instantiate(cfg.optim.scheduler) if cfg.optim.scheduler else None,
        device=device,
        epochs=cfg.trainer.epochs,
        amp=cfg.trainer.amp,
        num_classes=cfg.data.num_classes,
        ignore_index=cfg.data.ignore_index,
        checkpoint_dir=run_dir / "checkpoints" if (run_dir and cfg.trainer.checkpoint) else None,
        callbacks=callbacks,
        limit_train_batches=cfg.trainer.limit_train_batches,
        limit_val_batches=cfg.trainer.limit_val_batches,
        progress=cfg.trainer.progress,
        nonfinite=cfg.trainer.nonfinite,
        channels_last=cfg.trainer.channels_last,
        compile_model=cfg.trainer.compile,
    )


def resume_checkpoint(resume: str, run_dir: Path | None) -> Path | None:
    """auto: the run folder's own last.pt (a requeued or restarted job); never; or a path."""
    if resume == "never":
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / "last.pt" if run_dir else None
        return last if last is not None and last.is_file() else None
    return Path(resume)


def train(cfg: DictConfig, run_dir: Path | None = None, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Validate everything cheap first, then the data, and only then open a tracking run."""
    check_config(cfg)
    threads = resolve_threads(cfg.trainer.threads)
    torch.set_num_threads(threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.trainer.device)
    workers = resolve_workers(cfg.trainer.num_workers, device)
    log.info("device=%s amp=%s threads=%d workers=%d (cpus available: %d)",
             device, cfg.trainer.amp, threads, workers, available_cpus())

    run_name = cfg.tracking.run_name or f"{cfg.model.arch}-{cfg.encoder.name}".lower()
    if cfg.tracking.enabled:
        from seg58.mlflow_store import check_reachable, record_failed_run

        check_reachable(cfg.tracking.uri)  # before the expensive part
    d = cfg.data
    try:
        splits = build_splits(
            d.root, d.img_size, d.val_fraction, d.split_seed, d.preload, d.preload_max_side,
            OmegaConf.to_container(d.synthetic) if d.synthetic else None,
            io_threads=max(1, threads), split=d.split, holdout=d.split_holdout,
        )
    except DataError as e:
        if cfg.tracking.enabled:  # the attempt is on record, with why; nothing else is written
            record_failed_run(cfg.tracking.uri, cfg.tracking.experiment_name, run_name, tags or {}, str(e))
        raise
    train_loader, val_loader = make_loaders(splits, cfg.trainer.batch_size, workers, device, cfg.seed)

    callbacks = []
    visuals_dir = run_dir / "visuals" if run_dir and cfg.trainer.visuals else None
    if visuals_dir is not None:  # before the tracker, which logs the folder at the end
        from seg58.visuals import BestEpochVisuals

        callbacks.append(BestEpochVisuals(splits.val, visuals_dir, cfg.trainer.visuals))
    if cfg.tracking.enabled:
        from seg58.tracking import MlflowCallback

        callbacks.append(MlflowCallback(
            cfg.tracking.uri,
            cfg.tracking.experiment_name,
            run_name,
            params=OmegaConf.to_container(cfg, resolve=True),
            tags=tags,
            artifact_dirs={".hydra": run_dir / ".hydra"} if run_dir else None,
            log_checkpoint=cfg.tracking.log_checkpoint,
            run_id_file=run_dir / "mlflow_run_id" if run_dir else None,
            parent_run_id=(tags or {}).get("sweep.parent_run_id"),
            end_artifact_dirs={"visuals": visuals_dir} if visuals_dir else None,
        ))
    trainer = build_trainer(cfg, device, run_dir, callbacks)
    summary = trainer.fit(train_loader, val_loader, resume_checkpoint(cfg.trainer.resume, run_dir))
    if run_dir is not None:
        (run_dir / COMPLETED_MARKER).touch()  # a later `resume=auto` must not pick this run up
    return summary
