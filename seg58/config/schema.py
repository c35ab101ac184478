"""Structured-config schema: types and known keys for every group, so a typo or a wrong type in
an override fails at composition with the key named, before anything runs. Importing this
module registers the schema (`seg58_schema`, the first entry of conf/config.yaml's defaults) in
Hydra's ConfigStore, as Hydra's own config modules do; config_dir() is where the YAML lives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from seg58.base.choices import (
    Background,
    CpuAmp,
    HierarchyMapping,
    InferMode,
    InferSplit,
    NonFinite,
    SamplerKind,
    SplitKind,
    Tta,
)


@dataclass
class SyntheticConf:
    n_images: int = 160
    size: int = 160  # nominal side of generated images (each varies 0.8-1.25x)
    seed: int = 0
    # chance that each of Dust, Hair, Puncture, Burn marks (ARTeFACT's rarest) is kept where drawn:
    # 1 = as common as the other classes (the default, and the cache of earlier versions); 0.1 = rare
    rare: float = 1.0


@dataclass
class DataConf:
    name: str = MISSING
    root: str = MISSING  # dataset folder; for synthetic data, the cache folder it is written to
    img_size: int = 128
    val_fraction: float = 0.2
    # random (seeded, by material) | leave_one_material_out | leave_one_content_out | kfold
    split: SplitKind = SplitKind.random
    # what the validation side is: the material/content held out by the leave-one-out splits, the fold's
    # number (0..folds-1) for kfold; `all`: every one in turn (a cross-validation: with -m one cell each)
    split_holdout: str | None = None
    folds: int = 5  # data.split=kfold: how many
    split_seed: int = 0
    preload: bool = True  # decode once into RAM as uint8
    # training draws: random (a seeded shuffle, each image once per epoch) | class_balanced (with
    # replacement, image weight = max over its classes of (1 / share of images holding it) ** sampler_power)
    sampler: SamplerKind = SamplerKind.random
    sampler_power: float = 0.5  # class_balanced only: 0 = uniform, 1 = fully inverse frequency
    preload_max_side: int | None = None  # downsize huge scans at load time
    synthetic: SyntheticConf | None = None
    num_classes: int = 16
    ignore_index: int = 255
    # 255 (outside the object): ignore (left out of loss and metrics) | class (a 17th output trained on it,
    # as in the dataset card's example; metrics still over the 16 classes; predicted masks write it as 255)
    background: Background = Background.ignore
    hierarchy: HierarchyMapping = HierarchyMapping.seg58  # 16 -> 4 -> 2 groups for coarse/binary: seg58 | poc55


@dataclass
class ModelConf:
    arch: str = MISSING  # SMP architecture name
    hierarchical: bool = False  # + coarse (4) and binary heads; needs loss=hierarchical
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class EncoderConf:
    name: str = MISSING  # SMP encoder name; "tu-*" = any timm model
    weights: str | None = None  # None offline; "imagenet", True (timm) or a local .pth file
    allow_partial_weights: bool = False  # a weights file missing encoder tensors: warn instead of refusing
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConf:
    lr: float = 1e-3
    weight_decay: float = 0.01
    optimizer: Any = MISSING  # _partial_ optimizer factory
    scheduler: Any = None  # _partial_ scheduler factory, called with total_steps


@dataclass
class TrainerConf:
    epochs: int = 15
    batch_size: int = 8
    amp: bool = True  # fp16+GradScaler on CUDA, bf16 autocast on CPU (see cpu_amp)
    cpu_amp: CpuAmp = CpuAmp.auto  # auto: bf16 where the CPU runs it natively (AVX512/AMX), else fp32 | bf16 | off
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: Any = "auto"  # int, or auto: CPUs-1 on GPU, 0 on CPU
    threads: Any = "auto"  # torch CPU threads; auto: CPUs granted / concurrent local jobs
    limit_train_batches: int | None = None
    limit_val_batches: int | None = None
    checkpoint: bool = True
    visuals: int = 4  # best epoch: IoU bars, confusion matrix, overlays of this many val images (0: off)
    channels_last: bool = False  # NHWC tensors: faster convolutions on tensor cores
    compile: bool = False  # torch.compile the model (minutes of warm-up; pays off on long GPU runs)
    nonfinite: NonFinite = NonFinite.skip  # NaN/inf loss: skip the step (recorded) | stop the run
    resume: str = "auto"  # auto: continue from last.pt in this run's folder if there is one | never | a path
    patience: int | None = None  # early stopping: epochs without a val mIoU gain > min_delta (None: off)
    min_delta: float = 0.0
    progress: bool | None = None  # None: a bar on a terminal, one line per epoch in logs


@dataclass
class TrackingConf:
    enabled: bool = True
    uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the cwd
    experiment_name: str = "default"
    run_name: str | None = None  # None: <model>-<encoder>
    log_checkpoint: bool = True
    tags: dict[str, str] = field(default_factory=dict)  # extra run tags (e.g. source_run of a rerun)
    # system/* metrics over time (CPU %, RAM, disk, network; utilisation and memory of the job's own
    # GPUs, i.e. CUDA_VISIBLE_DEVICES) by MLflow's sampler thread; $MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL wins
    system_metrics: bool = True
    system_metrics_interval_s: float = 10.0  # seconds between samples (each sample is logged as one step)
    # the best checkpoint + resolved config as an MLflow Model (pyfunc) at runs:/<run id>/model
    log_model: bool = True
    register: str | None = None  # a sweep registers its best run's model under this name, alias `champion`


@dataclass
class BenchConf:
    warmup: int = 3  # compute-only steps before timing
    steps: int = 10  # timed compute-only steps
    epochs: int = 2  # timed epochs of the real training loop
    data_batches: int = 30  # batches of the data pipeline alone
    memory_workers: Any = "auto"  # loader workers for the memory check (auto: 2..4)
    json: str | None = None  # also write the result here (always: <run dir>/bench.json)


@dataclass
class InferConf:
    checkpoint: str | None = None  # a best.pt / last.pt ...
    run_id: str | None = None  # ... or an MLflow run: its best checkpoint and logged config
    model_uri: str | None = None  # ... or an MLflow Model: models:/NAME@champion, models:/NAME/3, runs:/<id>/model
    mode: InferMode = InferMode.whole  # whole: one padded pass | slide: overlapping windows
    tta: Tta = Tta.none  # none | flips (4 passes) | d4 (8: flips x 90° rotations); softmax averaged
    # longest side to infer at; None: data.img_size (whole), as loaded (slide); native (predict): the scan's
    # full size, streamed window row by window row (infer.window, infer.overlap), mask as a tiled TIFF
    resolution: int | str | None = None
    window: int | None = None  # slide window; None: data.img_size
    overlap: float = 0.25
    split: InferSplit = InferSplit.val  # evaluate: val | train | all
    input: str | None = None  # predict: an image or a folder of images
    output: str = "predictions"  # predict: where <name>_mask.png and <name>_overlay.png go
    # predict: also <name>_uncertainty.png (normalised entropy of the class probabilities, TTA-averaged
    # under infer.tta; 0 = certain, 255 = uniform) and <name>_uncertainty_overlay.png
    uncertainty: bool = False
    onnx: str | None = None  # export: the .onnx to write; None: model.onnx in the command's output folder


@dataclass
class PathsConf:
    data_dir: str = "data"
    cache_dir: str = "data/cache"  # synthetic data; pretrained weights in <cache_dir>/huggingface/hub and /torch
    # true: jobs never download encoder weights, they read the cache above (compute nodes have no internet;
    # fill it on a login node with `seg58 fetch-weights encoder=a,b`); false: the hub may download
    hub_offline: bool = True


@dataclass
class Seg58Conf:
    data: DataConf = MISSING
    model: ModelConf = MISSING
    encoder: EncoderConf = MISSING
    optim: OptimConf = MISSING
    loss: Any = MISSING
    trainer: TrainerConf = field(default_factory=TrainerConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    paths: PathsConf = field(default_factory=PathsConf)
    bench: BenchConf = field(default_factory=BenchConf)
    infer: InferConf = field(default_factory=InferConf)
    seed: int = 58


def config_dir() -> str:
    """conf/ of a source checkout, else the copy packaged inside seg58/."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "conf", package / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"seg58 config folder not found next to {package}")


ConfigStore.instance().store(name="seg58_schema", node=Seg58Conf)
