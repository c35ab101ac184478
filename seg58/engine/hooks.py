"""Ready-made trainer hooks: the trainer's own (LR schedule, checkpoints) and the optional ones
(early stopping, pruning, costs, per-image matrices). The Callback base is in callback.py."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from seg58.base.names import BEST_CHECKPOINT, LAST_CHECKPOINT, PER_IMAGE_FILE
from seg58.base.stop import StopKind, StopReason
from seg58.engine.benchmark import inference_ms, parameter_count
from seg58.engine.callback import Callback
from seg58.engine.checkpoints import save_atomic
from seg58.engine.trainer import Trainer
from seg58.modeling.intervals import save_per_image

Scheduler = torch.optim.lr_scheduler.LRScheduler


class LRSchedule(Callback):
    """A per-step LR schedule (OneCycle) over the whole run: `build(optimizer, total_steps=...)`
    makes it when training starts; a resumed run continues it where the checkpoint left it."""

    priority = 10
    state_key = "scheduler"  # the checkpoint key the trainer always used

    def __init__(self, build: Callable[..., Scheduler]):
        self.build = build
        self.scheduler: Scheduler | None = None
        self._restored: list[dict[str, Any]] = []

    def on_fit_start(self, trainer: Trainer) -> None:
        self.start(trainer.optimizer, trainer.total_steps)

    def start(self, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        # a new schedule resets lr (and OneCycle's momentum) in the param groups: keep what a
        # resumed optimizer holds, to put back when the schedule's own state is restored
        self._restored = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        self.scheduler = self.build(optimizer, total_steps=total_steps)

    def after_step(self, trainer: Trainer) -> None:
        if self.scheduler is not None:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: Any) -> None:
        if self.scheduler is None or not state:
            return
        self.scheduler.load_state_dict(state)
        for group, saved in zip(self.scheduler.optimizer.param_groups, self._restored, strict=True):
            group.update(saved)


class Checkpointer(Callback):
    """After every epoch: `last.pt`, the full state a resume needs; when the epoch is the best so
    far, `best.pt`, its weights only (what evaluate and predict load, a third of the size). Runs
    before any reporter, so an epoch that was logged is never lost."""

    priority = 20

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @property
    def best(self) -> Path:
        return self.folder / BEST_CHECKPOINT

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        save_atomic(trainer.state_dict(epoch), self.folder / LAST_CHECKPOINT)
        if trainer.best["epoch"] == epoch:
            save_atomic({"model": trainer.model.state_dict(), "epoch": epoch, "best": trainer.best}, self.best)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    The count is rebuilt from the trainer's history at the start, so a resumed run continues
    it instead of starting over."""

    def __init__(self, patience: int, min_delta: float = 0.0, monitor: str = "val/miou", mode: str = "max"):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience, self.min_delta, self.monitor = patience, min_delta, monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.best, self.waited = -math.inf, 0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.best, self.waited = -math.inf, 0
        for metrics in trainer.history:
            self._update(metrics)

    def _update(self, metrics: Mapping[str, float]) -> None:
        value = self.sign * metrics[self.monitor]
        if value > self.best + self.min_delta:
            self.best, self.waited = value, 0
        else:
            self.waited += 1

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        self._update(metrics)
        if self.waited >= self.patience:
            trainer.request_stop(StopReason(StopKind.early_stop, epoch + 1, f"{self.monitor} gained no more than "
                                            f"{self.min_delta} in {self.patience} epoch(s)"))


class PruningHook(Callback):
    """Hands `monitor` to `report(value, epoch)` after every epoch (and, at the start, the epochs a
    resumed run already has) and stops the run as `pruned` when `should_prune()` says so: a search
    trial's link to its pruner (seg58/sweep/trial.py), with no Optuna in the engine. The run
    ends cleanly, its checkpoint and metrics kept."""

    def __init__(self, report: Callable[[float, int], None], should_prune: Callable[[], bool],
                 monitor: str = "val/miou"):
        self.report, self.should_prune, self.monitor = report, should_prune, monitor

    def on_fit_start(self, trainer: Trainer) -> None:
        for epoch, metrics in enumerate(trainer.history):  # a resumed run: epochs before the restart
            self.report(metrics.get(self.monitor, math.nan), epoch)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        value = metrics.get(self.monitor, math.nan)
        if not math.isfinite(value):
            return
        self.report(value, epoch)
        if self.should_prune():
            trainer.request_stop(StopReason(StopKind.pruned, epoch + 1))


class CostMeter(Callback):
    """What a model costs, beside how well it segments: parameters (millions), inference time per
    image at the training size, peak memory of an epoch (GPU allocated, or process RSS on CPU).
    Returned into the fit summary's `final` figures (the tracker logs them, a Pareto search
    optimises them)."""

    def __init__(self, img_size: int):
        self.img_size = img_size

    def finish(self, trainer: Trainer) -> Mapping[str, float]:
        peaks = [m["perf/peak_mem_mb"] for m in trainer.history if "perf/peak_mem_mb" in m]
        return {
            "cost/params_m": parameter_count(trainer.model) / 1e6,
            "cost/infer_ms": inference_ms(trainer.model, self.img_size, trainer.device,
                                          memory_format=trainer.memory_format),
            "cost/peak_mem_mb": max(peaks, default=math.nan),
        }


class BestEpochPerImage(Callback):
    """Writes the best epoch's per-image validation confusion matrices to
    `folder/<scope>/per_image_confusion.npz` whenever the best epoch changes (so a crash keeps
    them), for comparing two training runs image by image (`seg58 report --compare`); a tracker
    that logs `folder` at the end carries them into the run."""

    def __init__(self, folder: Path, scope: str = "val"):
        self.path = Path(folder) / scope / PER_IMAGE_FILE
        self.scope = scope

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        if trainer.best["epoch"] != epoch or trainer.last_per_image is None:
            return
        ids, matrices = trainer.last_per_image
        save_per_image(self.path, ids, matrices, scope=self.scope, epoch=str(epoch))


class ComputeHours(Callback):
    """What a run cost of an allocation: `cost/gpu_hours` (GPUs x wall time) and `cost/cpu_hours`
    (CPUs granted x wall time), from the first epoch's start to the end of training. A resumed run
    adds its time to what the checkpoint says was spent before (a requeued job pays twice for the
    epochs it repeats, as the cluster bills it)."""

    state_key = "compute_seconds"

    def __init__(self, gpus: int, cpus: int):
        self.gpus, self.cpus = gpus, cpus
        self.before = 0.0  # seconds spent by earlier attempts of this run (from the checkpoint)
        self.started: float | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.started = time.monotonic()

    def seconds(self) -> float:
        return self.before + (time.monotonic() - self.started if self.started is not None else 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state: Any) -> None:
        self.before = float(state.get("seconds", 0.0))

    def finish(self, trainer: Trainer) -> Mapping[str, float]:
        hours = self.seconds() / 3600
        return {"cost/gpu_hours": self.gpus * hours, "cost/cpu_hours": self.cpus * hours}
