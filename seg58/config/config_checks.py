"""Semantic config checks that a schema cannot express; run before any data is touched (by a
single run, and by a sweep for every cell before its first job)."""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from seg58.base.choices import Resolution
from seg58.base.classes import CLASS_NAMES, NUM_CLASSES
from seg58.base.errors import ConfigError
from seg58.config.weights import weights_problems
from seg58.data.splits import ALL_FOLDS, GROUP_SPLITS
from seg58.modeling.models import compatibility_problems


def _positive(cfg: DictConfig, *keys: str) -> list[str]:
    values = {key: OmegaConf.select(cfg, key) for key in keys}
    return [f"{k}={v} must be > 0" for k, v in values.items() if v is not None and v <= 0]


def _resolution_problems(value: object) -> list[str]:
    """infer.resolution: a longest side in px, null, or a named value (typed int | str in the schema,
    so a typo is caught here, listed with the choices as the schema lists an enum's)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return []
    if isinstance(value, int):
        return [f"infer.resolution={value} must be > 0"]
    if str(value) in {r.value for r in Resolution}:
        return []
    return [f"infer.resolution={value!r}: invalid value, expected one of [{', '.join(r.value for r in Resolution)}], "
            "a longest side in px (an integer > 0) or null"]


def class_weight_problems(cfg: DictConfig) -> list[str]:
    """A class-weighted loss needs one weight per model output: 16, or 17 with data.background=class."""
    background = cfg.data.background == "class"
    outputs = cfg.data.num_classes + background
    problems = []

    def walk(node: object, key: str) -> None:
        if isinstance(node, dict):
            weights = node.get("weights")
            if str(node.get("_target_", "")).endswith("class_weighted_ce") and len(weights or ()) != outputs:
                problems.append(f"{key}.weights has {len(weights or ())} values but the model has {outputs} outputs "
                                f"(data.num_classes={cfg.data.num_classes}"
                                f"{' + 1: data.background=class' if background else ''}); give {outputs}")
            for k, v in node.items():
                walk(v, f"{key}.{k}")

    targets = [str(t) for t in _targets(OmegaConf.to_container(cfg.loss, resolve=False))]
    if any(t.endswith("class_weighted_ce") or "${" in t for t in targets):  # resolving costs: only then
        walk(OmegaConf.to_container(cfg.loss, resolve=True), "loss")
    return problems


def _targets(node: object) -> list[object]:
    """Every `_target_` in a (possibly nested) loss config, as written."""
    if isinstance(node, dict):
        own = [node["_target_"]] if "_target_" in node else []
        return own + [t for v in node.values() for t in _targets(v)]
    if isinstance(node, list):
        return [t for v in node for t in _targets(v)]
    return []


def _fold_problems(cfg: DictConfig) -> list[str]:
    d = cfg.data
    if d.split == "kfold":
        if d.folds < 2:
            return [f"data.folds={d.folds}: a k-fold cross-validation needs at least 2 folds"]
        if d.split_holdout is None:
            return ["data.split=kfold needs data.split_holdout=<a fold number 0.."
                    f"{d.folds - 1}>, or all (every fold in turn)"]
        if d.split_holdout != ALL_FOLDS and not (str(d.split_holdout).isdigit() and int(d.split_holdout) < d.folds):
            return [f"data.split_holdout={d.split_holdout!r}: a fold number 0..{d.folds - 1} (data.folds={d.folds}), "
                    "or all"]
    if d.split == "random" and d.split_holdout == ALL_FOLDS:
        return ["data.split_holdout=all is a cross-validation: choose data.split=leave_one_material_out, "
                "leave_one_content_out or kfold"]
    return []


def config_problems(cfg: DictConfig) -> list[str]:
    """Every problem found, each naming its key; empty when the config can run. Types and
    fixed value sets (enums) are the schema's job (seg58/config/schema.py): refused at composition."""
    problems = compatibility_problems(cfg.model.arch, cfg.encoder.name, cfg.data.img_size)
    problems += _positive(cfg, "data.img_size", "trainer.epochs", "trainer.batch_size",
                          "optim.lr", "trainer.limit_train_batches", "trainer.limit_val_batches",
                          "infer.window", "trainer.patience")
    problems += _resolution_problems(cfg.infer.resolution)
    if cfg.data.split in GROUP_SPLITS and not cfg.data.split_holdout:
        problems.append(f"data.split={cfg.data.split} needs data.split_holdout=<a value of the "
                        f"{GROUP_SPLITS[cfg.data.split]} column>, or all (a cross-validation)")
    problems += _fold_problems(cfg)
    if not 0.0 < cfg.data.val_fraction < 1.0:
        problems.append(f"data.val_fraction={cfg.data.val_fraction} must be between 0 and 1")
    if cfg.data.sampler_power < 0:
        problems.append(f"data.sampler_power={cfg.data.sampler_power} must be >= 0 (0: uniform draws)")
    if cfg.data.synthetic is not None and not 0 <= cfg.data.synthetic.rare <= 1:
        problems.append(f"data.synthetic.rare={cfg.data.synthetic.rare} must be in [0, 1]")
    if cfg.data.num_classes != NUM_CLASSES:
        problems.append(f"data.num_classes={cfg.data.num_classes} but the metrics name {NUM_CLASSES} classes "
                        f"({', '.join(CLASS_NAMES)}; seg58/base/classes.py)")
    problems += class_weight_problems(cfg)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.trainer.device):
        problems.append(f"trainer.device={cfg.trainer.device!r}; valid: auto, cpu, cuda, cuda:N")
    for key, lowest in (("num_workers", 0), ("threads", 1)):
        value = cfg.trainer[key]
        if value != "auto" and not (isinstance(value, int) and value >= lowest):
            problems.append(f"trainer.{key}={value!r}; valid: auto or an integer >= {lowest}")
    hierarchical_loss = str(cfg.loss.get("_target_", "")).endswith("HierarchicalLoss")
    if cfg.model.hierarchical != hierarchical_loss:
        problems.append("model.hierarchical=true and loss=hierarchical go together "
                        f"(now model.hierarchical={cfg.model.hierarchical}, loss={cfg.loss.get('_target_')})")
    if not 0 <= cfg.infer.overlap < 1:
        problems.append(f"infer.overlap={cfg.infer.overlap} must be in [0, 1)")
    resume = cfg.trainer.resume
    if resume not in ("auto", "never") and not Path(resume).is_file():
        problems.append(f"trainer.resume={resume!r}: no such checkpoint; valid: auto, never or a last.pt path")
    problems += weights_problems(cfg)
    if cfg.data.synthetic is None and not Path(cfg.data.root).expanduser().is_dir():
        problems.append(
            f"data.root={cfg.data.root!r}: folder not found (data={cfg.data.name}); "
            f"point data.root at an ARTeFACT-format folder or use data=synthetic"
        )
    return problems


def check_config(cfg: DictConfig) -> None:
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(problems)
