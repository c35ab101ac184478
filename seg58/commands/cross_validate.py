"""`data.split_holdout=all` in one job: a configuration trained on every fold in turn (a single
run, or one trial of a search), the mean over folds its objective.

In a search each fold's score is reported to the trial (step = the fold's place in the fold
list, the same in every trial) and the pruner asked after each: with Optuna's WilcoxonPruner a
trial whose folds are significantly worse than the best trial's stops early. The folds run in a
per-trial shuffled order, as that pruner wants. Per-epoch reports are off here: a trial has one
sequence of steps. With -m on a grid the sweeper makes one cell per fold instead (seg58/sweep/folds.py).
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seg58.base.classes import metric_key
from seg58.base.names import SWEEP_PARENT_TAG
from seg58.base.status import CellStatus
from seg58.base.stop import StopKind, StopReason
from seg58.engine.callback import FitSummary
from seg58.sweep.folds import cv_table, format_cv, quoted
from seg58.sweep.study import objective_of

log = logging.getLogger("seg58")


def cross_validate(cfg: DictConfig, run_dir: Path, tags: dict[str, str], metrics: list[str],
                   directions: list[str], train: Callable[..., FitSummary], trial: Any = None) -> dict[str, Any]:
    """`train(cfg, run_dir, tags)` runs one fold (seg58/commands/train.py's train)."""
    from seg58.config import factory
    from seg58.config.config_checks import check_config

    key = "data.split_holdout"
    check_config(cfg)
    folds = factory.fold_values(cfg)
    fold_cfgs = [_with_fold(cfg, v) for v in folds]
    for fold_cfg in fold_cfgs:  # every fold's config, before the first one trains
        check_config(fold_cfg)
    order = list(range(len(folds)))
    if trial is not None:
        random.Random(trial.number).shuffle(order)
    log.info("cross-validation over %d folds of %s: %s", len(folds), cfg.data.split, ", ".join(folds[i] for i in order))
    base_name = cfg.tracking.run_name or f"{cfg.model.arch}-{cfg.encoder.name}".lower()
    cv_run = _start_run(cfg, base_name, tags, len(folds))
    cells, failed = [], True
    hours: dict[str, float] = {}
    stop: StopReason | None = None
    try:
        for done, i in enumerate(order, 1):
            fold_cfg, fold_tags = fold_cfgs[i], {**tags, "cv.fold": folds[i], "cv.fold_index": str(i)}
            if cv_run:
                fold_tags[SWEEP_PARENT_TAG] = cv_run
            fold_cfg.tracking.run_name = f"{base_name}-{metric_key(folds[i])}"
            fold_dir = run_dir / f"fold_{i}"
            fold_dir.mkdir(parents=True, exist_ok=True)
            summary = train(fold_cfg, fold_dir, fold_tags)
            for key, value in summary.final.items():  # the folds' compute adds up: the configuration's cost
                if key.endswith("_hours"):
                    hours[key] = hours.get(key, 0.0) + value
            values = {m: objective_of(summary.history, m, d) for m, d in zip(metrics, directions, strict=True)}
            cells.append({"num": i, "overrides": [f"{key}={quoted(folds[i])}"], "status": CellStatus.COMPLETED,
                          "objective": values[metrics[0]], "values": values})
            log.info("fold %d/%d (%s): %s=%.4f", done, len(folds), folds[i], metrics[0], values[metrics[0]])
            if trial is not None:
                trial.report(values[metrics[0]], i)
                if done < len(folds) and trial.should_prune():
                    stop = StopReason(StopKind.pruned, done,
                                      f"after {done} of {len(folds)} folds: worse than the best trial's")
                    log.info("trial #%d pruned %s", trial.number, stop.detail)
                    break
        failed = False
    finally:
        table = cv_table(cells, key)
        text = format_cv(table, metrics[0])
        if cells:
            log.info("%s", text)
        if cv_run:
            from seg58.tracking.cross_validation import finish_cv_run

            finish_cv_run(cfg.tracking.uri, cv_run, table, text, failed, stop)
    group = table[0]
    result: dict[str, Any] = {m: sum(c["values"][m] for c in cells) / len(cells) for m in metrics}
    result.update(best_val_miou=group["mean"], cv_std=group["std"], cv_folds=len(cells),
                  stop=stop.to_dict() if stop else None,
                  epochs_trained=cfg.trainer.epochs, **hours)
    return result


def _with_fold(cfg: DictConfig, fold: str) -> DictConfig:
    fold_cfg = copy.deepcopy(cfg)
    fold_cfg.data.split_holdout = fold
    return fold_cfg


def _start_run(cfg: DictConfig, name: str, tags: dict[str, str], n_folds: int) -> str | None:
    if not cfg.tracking.enabled:
        return None
    from seg58.tracking.cross_validation import start_cv_run
    from seg58.tracking.store import check_reachable

    check_reachable(cfg.tracking.uri, cfg.tracking.experiment_name)
    params = {**OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), "cv": {"folds": n_folds}}
    return start_cv_run(cfg.tracking.uri, cfg.tracking.experiment_name, f"{name}-cv", tags, params)

