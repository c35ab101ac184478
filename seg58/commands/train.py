"""`seg58 [overrides]` / `seg58 -m [overrides]`: one training run from a composed config
(validate, build data/model/trainer, fit, track), and the same as each cell of a sweep.

Hydra-specific context (output folder, group choices) is read here and handed on as plain
values; objects are built by seg58.config.factory, like every other command's."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from seg58.base.names import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    COMPLETED_MARKER,
    LAST_CHECKPOINT,
    PARENT_EXPERIMENT_ENV,
    PARENT_RUN_ENV,
    PER_IMAGE_DIR,
    RUN_ID_FILE,
    SEARCH_STUDY_TAG,
    SEARCH_TRIAL_TAG,
    SWEEP_PARENT_TAG,
    VISUALS_DIR,
)
from seg58.config.schema import config_dir
from seg58.config.user_errors import reported_as_user_errors
from seg58.data.splits import ALL_FOLDS
from seg58.engine.callback import Callback, FitSummary
from seg58.sweep.study import StudySpec, objective_of

log = logging.getLogger("seg58")


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> dict:
    """One run; returns what a sweep records of it: the best value of hydra.sweeper.metric (the
    objective), epochs, why it stopped."""
    from seg58.base.secrets import mask_log_records
    from seg58.tracking.run_logger import git_commit  # heavy imports after Hydra has parsed the command line

    mask_log_records()  # in a job's own process too (local subprocess, SLURM node)

    hc = HydraConfig.get()
    choices = hc.runtime.choices
    commit, dirty = git_commit(Path(__file__).resolve().parent)
    tags = {
        "model": choices.get("model", ""),
        "encoder": choices.get("encoder", ""),
        "data": choices.get("data", ""),
        "experiment": str(choices.get("experiment") or "none"),
        "overrides": " ".join(hc.overrides.task) or "(defaults)",
        "hydra.output_dir": hc.runtime.output_dir,
        "hydra.job.num": str(hc.job.get("num", 0)),
    }
    if os.environ.get("CUDA_VISIBLE_DEVICES"):  # the GPU(s) a local parallel or SLURM job was given
        tags["cuda.visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    tags.update({str(k): str(v) for k, v in cfg.tracking.tags.items()})
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git.dirty"] = str(dirty).lower()
    if hc.mode == RunMode.MULTIRUN:
        parent = os.environ.get(PARENT_RUN_ENV)
        if parent and os.environ.get(PARENT_EXPERIMENT_ENV) == cfg.tracking.experiment_name:
            tags[SWEEP_PARENT_TAG] = parent
    run_dir = Path(hc.runtime.output_dir)
    if hc.mode == RunMode.RUN and cfg.trainer.resume == "auto":
        previous = unfinished_run(run_dir, list(hc.overrides.task))
        if previous is not None:  # the same command again after a crash or kill: continue it
            log.info("continuing the unfinished run in %s (trainer.resume=never starts afresh)", previous)
            run_dir = previous
    study = StudySpec.from_env() if hc.mode == RunMode.MULTIRUN else None
    callbacks = []
    if study is not None:  # a trial of a search sweep
        tags.update({SEARCH_STUDY_TAG: study.study_name, SEARCH_TRIAL_TAG: str(hc.job.num)})
    metrics, directions = hc.sweeper.get("metric") or "val/miou", hc.sweeper.get("direction", "maximize")
    if isinstance(metrics, str):  # a multi-objective search names one metric per direction
        metrics, directions = [metrics], [directions]
    if cfg.data.split_holdout == ALL_FOLDS:  # every fold in turn (a grid sweep makes one cell per fold instead)
        from seg58.commands.cross_validate import cross_validate

        trial = None
        if study is not None and not isinstance(study.direction, list):
            from seg58.sweep.trial import TrialHandle

            trial = TrialHandle(study, int(hc.job.num))
        with reported_as_user_errors():
            return cross_validate(cfg, run_dir, tags, [str(m) for m in metrics], [str(d) for d in directions], train,
                                  trial)
    if study is not None and not isinstance(study.direction, list):  # report every epoch, stop when pruned
        from seg58.engine.hooks import PruningHook  # (Optuna prunes no multi-objective study)
        from seg58.sweep.trial import TrialHandle

        trial = TrialHandle(study, int(hc.job.num))
        callbacks.append(PruningHook(trial.report, trial.should_prune, monitor=study.metric))
    started = time.time()
    with reported_as_user_errors():
        summary = train(cfg, run_dir, tags, callbacks)
    log.info("best val mIoU %.4f at epoch %d", summary.best_val_miou, summary.best_epoch + 1)
    result: dict[str, Any] = {"best_val_miou": summary.best_val_miou, "best_epoch": summary.best_epoch,
                              "epochs_trained": summary.epochs_trained,
                              "stop": summary.stop.to_dict() if summary.stop else None,
                              "seconds": round(time.time() - started, 1), **summary.final}
    for metric, direction in zip(metrics, directions, strict=False):  # the best epoch's value, or a cost
        result[metric] = result[metric] if metric in result else \
            objective_of(summary.history, metric, str(direction))
    return result


def unfinished_run(output_dir: Path, overrides: list[str]) -> Path | None:
    """The newest earlier single run of the same command that has a checkpoint but never
    completed (outputs/<date>/<time>/ layout), so that rerunning a killed command resumes it."""
    root = output_dir.parents[1]
    candidates = sorted(root.glob(f"*/*/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}"), key=lambda p: p.stat().st_mtime,
                        reverse=True)
    for last in candidates:
        folder = last.parent.parent
        if folder == output_dir or (folder / COMPLETED_MARKER).exists():
            continue
        saved = folder / ".hydra" / "overrides.yaml"
        if saved.is_file() and list(OmegaConf.load(saved)) == overrides:
            return folder
    return None


def resume_checkpoint(resume: str, run_dir: Path | None) -> Path | None:
    """auto: the run folder's own last.pt (a requeued or restarted job); never; or a path."""
    if resume == "never":
        return None
    if resume == "auto":
        last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT if run_dir else None
        return last if last is not None and last.is_file() else None
    return Path(resume)


def train(cfg: DictConfig, run_dir: Path | None = None, tags: dict[str, str] | None = None,
          callbacks: Sequence[Callback] = ()) -> FitSummary:
    """Validate everything cheap first, then the data, and only then open a tracking run.

    `callbacks` join the run's own hooks (a search trial's pruning reporter)."""
    from seg58.base.errors import DataError
    from seg58.config import factory
    from seg58.config.config_checks import check_config
    from seg58.engine.hooks import BestEpochPerImage, ComputeHours, CostMeter, EarlyStopping
    from seg58.engine.runtime import autocast_dtype, available_cpus, cpu_share, precision_name

    check_config(cfg)
    rt = factory.runtime(cfg)
    precision = precision_name(autocast_dtype(rt.device, cfg.trainer.amp, cfg.trainer.cpu_amp))
    log.info("device=%s amp=%s precision=%s threads=%d workers=%d (cpus available: %d)",
             rt.device, cfg.trainer.amp, precision, rt.threads, rt.workers, available_cpus())

    tags = {**(tags or {}), "precision": precision}
    run_name = cfg.tracking.run_name or f"{cfg.model.arch}-{cfg.encoder.name}".lower()
    if cfg.tracking.enabled:
        from seg58.tracking.store import check_reachable, record_failed_run

        check_reachable(cfg.tracking.uri, cfg.tracking.experiment_name)  # before the expensive part
    try:
        splits = factory.data_splits(cfg, io_threads=max(1, rt.threads))
    except DataError as e:
        if cfg.tracking.enabled:  # the attempt is on record, with why; nothing else is written
            record_failed_run(cfg.tracking.uri, cfg.tracking.experiment_name, run_name, tags or {}, str(e))
        raise
    train_loader, val_loader = factory.loaders(cfg, splits, rt)

    callbacks = [*callbacks, CostMeter(cfg.data.img_size),
                 ComputeHours(gpus=int(rt.device.type == "cuda"), cpus=cpu_share())]
    if cfg.trainer.patience:
        callbacks.append(EarlyStopping(cfg.trainer.patience, cfg.trainer.min_delta))
    visuals_dir = run_dir / VISUALS_DIR if run_dir and cfg.trainer.visuals else None
    if visuals_dir is not None:
        from seg58.engine.visuals import BestEpochVisuals

        callbacks.append(BestEpochVisuals(splits.val, visuals_dir, cfg.trainer.visuals, cfg.data.num_classes))
    end_dirs = {"visuals": visuals_dir} if visuals_dir else {}
    if run_dir is not None:  # the best epoch's per-image matrices, for `seg58 report --compare`
        end_dirs[PER_IMAGE_DIR] = run_dir / PER_IMAGE_DIR
        callbacks.append(BestEpochPerImage(end_dirs[PER_IMAGE_DIR]))
    if cfg.tracking.enabled:
        from seg58.tracking.run_logger import MlflowCallback

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
            run_id_file=run_dir / RUN_ID_FILE if run_dir else None,
            parent_run_id=(tags or {}).get(SWEEP_PARENT_TAG),
            end_artifact_dirs=end_dirs,
            dataset=data,
            system_metrics=cfg.tracking.system_metrics,
            system_metrics_interval_s=cfg.tracking.system_metrics_interval_s,
            model_config=(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
                          if cfg.tracking.log_model else None),
            best_checkpoint=folder / BEST_CHECKPOINT if (folder := factory.checkpoint_dir(cfg, run_dir)) else None,
        ))
    trainer = factory.trainer(cfg, rt.device, run_dir, callbacks)
    summary = trainer.fit(train_loader, val_loader, resume_checkpoint(cfg.trainer.resume, run_dir))
    if run_dir is not None:
        (run_dir / COMPLETED_MARKER).touch()  # a later `resume=auto` must not pick this run up
    return summary

