"""The one place where config sections become objects: runtime, data splits and loaders, model,
trainer, predictor. Every command (train, bench, evaluate, predict, check-data) builds through
here, so a setting such as the split protocol means the same thing in all of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from seg58.base.choices import InferSplit, Resolution
from seg58.base.errors import ConfigError
from seg58.base.names import CHECKPOINT_DIR
from seg58.config.weights import fetch_command
from seg58.data.build import DataSplits, build_splits, resolve_root
from seg58.data.folder import Sample, scan_folder
from seg58.data.lineage import Lineage, content_digest, dataset_lineage
from seg58.data.loaders import make_loaders
from seg58.data.splits import SplitSpec
from seg58.engine.callback import Callback
from seg58.engine.checkpoints import load_checkpoint, load_weights
from seg58.engine.evaluator import SegmentationEvaluator
from seg58.engine.hooks import Checkpointer, LRSchedule
from seg58.engine.inference import Predictor
from seg58.engine.options import TrainerOptions
from seg58.engine.runtime import resolve_device, resolve_threads, resolve_workers, seed_everything
from seg58.engine.trainer import Trainer
from seg58.modeling.losses import BackgroundAsClass
from seg58.modeling.models import build_model, input_multiple


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    threads: int
    workers: int


def runtime(cfg: DictConfig) -> Runtime:
    """Set this process's CPU threads and seeds; resolve device and loader workers."""
    threads = resolve_threads(cfg.trainer.threads)
    torch.set_num_threads(threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.trainer.device)
    return Runtime(device, threads, resolve_workers(cfg.trainer.num_workers, device))


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True) if node is not None else None


def synthetic_settings(cfg: DictConfig) -> dict | None:
    """data.synthetic as plain keyword arguments of the generator (None for real data)."""
    return _plain(cfg.data.synthetic)


def split_spec(cfg: DictConfig) -> SplitSpec:
    d = cfg.data
    return SplitSpec(d.split, d.val_fraction, d.split_seed, d.split_holdout, d.folds)


def dataset_root(cfg: DictConfig) -> Path:
    """The dataset folder (for data=synthetic: generated into the cache first)."""
    return resolve_root(cfg.data.root, synthetic_settings(cfg))


def data_splits(cfg: DictConfig, io_threads: int = 4, preload: bool | None = None) -> DataSplits:
    d = cfg.data
    return build_splits(d.root, d.img_size, split_spec(cfg), d.preload if preload is None else preload,
                        d.preload_max_side, synthetic_settings(cfg), io_threads=io_threads)


def loaders(cfg: DictConfig, splits: DataSplits, rt: Runtime) -> tuple[DataLoader, DataLoader]:
    return make_loaders(splits, cfg.trainer.batch_size, rt.workers, rt.device, cfg.seed,
                        cfg.data.sampler, cfg.data.sampler_power)


def samples(cfg: DictConfig, which: InferSplit | str) -> list[Sample]:
    """The images of one side of the configured split (or all of them), undecoded."""
    everything = scan_folder(dataset_root(cfg))
    train, val = split_spec(cfg).apply(everything)
    return {InferSplit.train: train, InferSplit.val: val, InferSplit.all: everything}[InferSplit(which)]


def fold_values(cfg: DictConfig) -> list[str]:
    """The folds of the configured split's cross-validation (data.split_holdout=all): the
    dataset's materials or contents, or the kfold numbers. Generates synthetic data first."""
    return split_spec(cfg).fold_values(scan_folder(dataset_root(cfg)))


def outputs(cfg: DictConfig) -> int:
    """The model's output channels: the scored classes, + 1 when background is a class."""
    return cfg.data.num_classes + (cfg.data.background == "class")


def loss(cfg: DictConfig) -> nn.Module:
    """The configured loss; with data.background=class it sees 255 as the extra class."""
    fn = instantiate(cfg.loss)
    if cfg.data.background == "class":
        fn = BackgroundAsClass(fn, cfg.data.num_classes, cfg.data.ignore_index)
    return fn


def model(cfg: DictConfig, pretrained: bool = True) -> nn.Module:
    """The SMP model; `pretrained=False` skips encoder weights (a checkpoint supplies them).

    Pretrained weights are read from the hub cache under paths.cache_dir, offline unless
    paths.hub_offline=false (compute nodes have no internet: `seg58 fetch-weights` fills it)."""
    weights = cfg.encoder.weights if pretrained else None
    return build_model(
        cfg.model.arch, cfg.encoder.name, outputs(cfg),
        weights=weights,
        encoder_kwargs=_plain(cfg.encoder.kwargs), model_kwargs=_plain(cfg.model.kwargs),
        hierarchical=cfg.model.hierarchical, hierarchy=str(cfg.data.hierarchy),
        allow_partial_weights=cfg.encoder.allow_partial_weights,
        cache_dir=cfg.paths.cache_dir, offline=cfg.paths.hub_offline,
        fetch_command=fetch_command(cfg) if weights is not None else "",
    )


def checkpoint_dir(cfg: DictConfig, run_dir: Path | None) -> Path | None:
    """Where a run's last.pt and best.pt go (None: trainer.checkpoint=false, or no run folder)."""
    return run_dir / CHECKPOINT_DIR if (run_dir and cfg.trainer.checkpoint) else None


def evaluator(cfg: DictConfig, device: torch.device) -> partial[SegmentationEvaluator]:
    """A fresh evaluator per validation, scoring what the data config says the masks hold."""
    return partial(SegmentationEvaluator, cfg.data.num_classes, ignore_index=cfg.data.ignore_index, device=device,
                   background=cfg.data.background, mapping=cfg.data.hierarchy, per_image=True)


def trainer(cfg: DictConfig, device: torch.device, run_dir: Path | None = None,
            callbacks: Sequence[Callback] = ()) -> Trainer:
    """The Trainer with its own hooks (the LR schedule, checkpoints) beside `callbacks`."""
    hooks = [*callbacks]
    if cfg.optim.scheduler:
        hooks.append(LRSchedule(instantiate(cfg.optim.scheduler)))
    folder = checkpoint_dir(cfg, run_dir)
    if folder is not None:
        hooks.append(Checkpointer(folder))
    return Trainer(model(cfg), loss(cfg), instantiate(cfg.optim.optimizer), device=device,
                   options=TrainerOptions.from_mapping(cfg.trainer), evaluator=evaluator(cfg, device), hooks=hooks)


def size_multiple(cfg: DictConfig) -> int:
    """What the model's input sides must be multiples of (the architecture's stride, or more)."""
    return input_multiple(cfg.model.arch, cfg.encoder.name, _plain(cfg.encoder.kwargs))


def predictor(cfg: DictConfig, checkpoint: Path, device: torch.device) -> Predictor:
    net = model(cfg, pretrained=False)
    load_weights(net, load_checkpoint(checkpoint), str(checkpoint), f"{cfg.model.arch}/{cfg.encoder.name}")
    i = cfg.infer
    return Predictor(net, device, cfg.data.num_classes, mode=i.mode, window=i.window or cfg.data.img_size,
                     overlap=i.overlap, stride=size_multiple(cfg), amp=cfg.trainer.amp,
                     cpu_amp=cfg.trainer.cpu_amp, tta=i.tta)


def inference_resolution(cfg: DictConfig) -> int | None:
    """Longest side to infer at: infer.resolution, else the training size for whole images.
    infer.resolution=native is `seg58 predict`'s alone (seg58/engine/tiled.py): refused here."""
    if native_resolution(cfg):
        raise ConfigError(["infer.resolution=native is for seg58 predict (full-size masks as tiled TIFFs); "
                           "evaluate and served models infer at a longest side: give an integer or null"])
    return cfg.infer.resolution or (cfg.data.img_size if str(cfg.infer.mode) == "whole" else None)


def native_resolution(cfg: DictConfig) -> bool:
    return str(cfg.infer.resolution) == Resolution.native.value


def lineage(cfg: DictConfig, splits: DataSplits, threads: int = 4) -> Lineage:
    """Digest and profile of the data a run trains on; file hashes cached under paths.cache_dir."""
    return dataset_lineage(splits.root, splits.train.samples, splits.val.samples, split_spec(cfg),
                           cfg.paths.cache_dir, threads)


def current_digest(cfg: DictConfig, threads: int = 4) -> tuple[Path, str]:
    """(folder, digest) of the configured data as it is on disk today, to compare with a run's."""
    root = dataset_root(cfg)
    return root, content_digest(root, scan_folder(root), cfg.paths.cache_dir, threads)
