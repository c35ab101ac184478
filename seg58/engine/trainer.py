"""The training loop: plain PyTorch, no Hydra or MLflow (those hook in through callbacks)."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from seg58.base.choices import Background, CpuAmp, HierarchyMapping, NonFinite
from seg58.base.classes import CLASS_NAMES
from seg58.base.errors import NonFiniteLossError
from seg58.base.names import BEST_CHECKPOINT, LAST_CHECKPOINT
from seg58.base.stop import StopReason
from seg58.engine.checkpoints import load_checkpoint, load_weights, save_atomic
from seg58.engine.evaluator import SegmentationEvaluator
from seg58.engine.runtime import autocast_dtype, peak_memory_mb, reset_peak_memory
from seg58.engine.validation import as_float, validation_pass

log = logging.getLogger(__name__)


class Callback:
    """A trainer hook. Every method does nothing by default (like detectron2's HookBase), so a
    callback overrides only what it needs and the trainer never probes with hasattr."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (also after a resume: trainer.history holds the earlier epochs)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """After validation and after the epoch's checkpoint is on disk."""

    def on_fit_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        """After the last epoch (or an early stop)."""

    def on_failure(self, trainer: Trainer, error: BaseException) -> None:
        """fit() is ending by an exception, including SystemExit/KeyboardInterrupt (preemption)."""

    def on_event(self, trainer: Trainer, key: str, value: Any) -> None:
        """Something notable happened mid-epoch (OOM back-off, a skipped non-finite step)."""


class Trainer:
    """AMP training with AdamW-style optimizers and a per-batch LR schedule (OneCycle).

    fp16 + GradScaler on CUDA, bf16 autocast on CPU. Loss and metrics accumulate on the
    device so the hot loop never waits for the GPU; they are read once per epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None,
        *,
        device: torch.device,
        epochs: int,
        amp: bool = True,
        cpu_amp: CpuAmp | str = CpuAmp.auto,
        num_classes: int = len(CLASS_NAMES),
        class_names: Sequence[str] = CLASS_NAMES,
        ignore_index: int = 255,
        background: Background | str = Background.ignore,
        hierarchy: HierarchyMapping | str = HierarchyMapping.seg58,
        checkpoint_dir: str | Path | None = None,
        callbacks: Sequence[Callback] = (),
        limit_train_batches: int | None = None,
        limit_val_batches: int | None = None,
        progress: bool | None = None,
        nonfinite: NonFinite | str = NonFinite.skip,
        channels_last: bool = False,
        compile_model: bool = False,
    ):
        self.device = device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=self.memory_format)
        self._forward = torch.compile(self.model) if compile_model else self.model
        self.loss_fn = loss_fn.to(device)
        self.optimizer = optimizer(self.model.parameters())
        self._scheduler_factory = scheduler
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.epochs = epochs
        dtype = autocast_dtype(device, amp, cpu_amp)
        self.amp, self.amp_dtype = dtype is not None, dtype or torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and device.type == "cuda")
        self.num_classes = num_classes
        self.class_names = class_names
        self.ignore_index = ignore_index
        self.background, self.hierarchy = Background(background), HierarchyMapping(hierarchy)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.callbacks = list(callbacks)
        self.limit_train_batches = limit_train_batches
        self.limit_val_batches = limit_val_batches
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] = {"val/miou": -math.inf, "epoch": -1}
        self.start_epoch = 0  # > 0 after resuming from a checkpoint
        self.stop_reason: StopReason | None = None  # set by request_stop()
        self.nonfinite = NonFinite(nonfinite)
        self.accum_steps = 1  # doubled on out-of-memory; the effective batch stays the same
        self.global_step = 0
        self._nonfinite_in_epoch = 0
        self.last_confusion: torch.Tensor | None = None  # of the latest validation, on the CPU
        self.last_per_image: tuple[list[str], Any] | None = None  # (image ids, (N, C, C) matrices), idem
        self.meta: dict[str, Any] = {}  # saved in checkpoints; callbacks may note ids here

    # -- public -------------------------------------------------------------------------
    def fit(self, train_loader: DataLoader, val_loader: DataLoader,
            resume_from: str | Path | None = None) -> dict[str, Any]:
        """Train `epochs` epochs; with `resume_from` (a last.pt), continue after its epoch with
        the same optimizer, scheduler, scaler and RNG state, as if never interrupted."""
        self.configure_schedule(self.epochs * self.batches_per_epoch(train_loader))
        if resume_from is not None:
            self.load_state_dict(load_checkpoint(resume_from, self.device))
            log.info("resumed from %s at epoch %d/%d", resume_from, self.start_epoch + 1, self.epochs)
        try:
            return self._fit_epochs(train_loader, val_loader)
        except BaseException as e:
            for cb in self.callbacks:
                cb.on_failure(self, e)
            raise

    def request_stop(self, reason: StopReason) -> None:
        """End fit() after the current epoch (early stopping, pruning); that epoch is
        checkpointed and reported to every callback first."""
        self.stop_reason = reason

    def configure_schedule(self, total_steps: int) -> None:
        """(Re)build the per-step LR schedule for `total_steps` optimisation steps."""
        if self._scheduler_factory is not None:
            self.scheduler = self._scheduler_factory(self.optimizer, total_steps=total_steps)

    def batches_per_epoch(self, loader: DataLoader) -> int:
        return self._n_batches(loader, self.limit_train_batches)

    def _fit_epochs(self, train_loader: DataLoader, val_loader: DataLoader) -> dict[str, Any]:
        for cb in self.callbacks:
            cb.on_fit_start(self)
        for epoch in range(self.start_epoch, self.epochs):
            metrics = {**self.train_epoch(train_loader, epoch), **self.validate(val_loader)}
            self.history.append(metrics)
            improved = metrics["val/miou"] > self.best["val/miou"]
            if improved:
                self.best = {"val/miou": metrics["val/miou"], "epoch": epoch}
            self._checkpoint(epoch, improved)  # before callbacks: what is logged is never lost
            log.info(self._epoch_line(epoch, metrics))
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, metrics)
            if self.stop_reason is not None:
                log.info("stopping after epoch %d/%d: %s", epoch + 1, self.epochs, self.stop_reason)
                break
        summary = {"best_val_miou": self.best["val/miou"], "best_epoch": self.best["epoch"],
                   "epochs": self.epochs, "epochs_trained": len(self.history), "stop": self.stop_reason,
                   "last": self.history[-1] if self.history else {}}
        for cb in self.callbacks:
            cb.on_fit_end(self, summary)
        return summary

    def train_epoch(self, loader: DataLoader, epoch: int) -> dict[str, float]:
        self.model.train()
        reset_peak_memory(self.device)
        n_batches = self.batches_per_epoch(loader)
        loss_sum = torch.zeros((), device=self.device)
        n_imgs, data_wait = 0, 0.0
        self._nonfinite_in_epoch = 0
        bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{self.epochs}", leave=False,
                   disable=not self.progress)
        start = time.perf_counter()
        it = iter(loader)
        for _ in range(n_batches):
            t0 = time.perf_counter()
            images, masks = next(it)
            data_wait += time.perf_counter() - t0
            images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
            masks = masks.to(self.device, non_blocking=True)
            loss = self.step(images, masks)
            loss_sum += loss.detach()
            n_imgs += images.shape[0]
            bar.update()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - start
        bar.close()
        return {
            "train/loss": float(loss_sum) / max(1, n_batches),
            "lr": self.optimizer.param_groups[0]["lr"],
            "perf/train_imgs_per_s": n_imgs / elapsed,
            "perf/step_imgs_per_s": n_imgs / max(1e-9, elapsed - data_wait),
            "perf/data_wait_frac": data_wait / elapsed,
            "perf/epoch_time_s": elapsed,
            "perf/peak_mem_mb": peak_memory_mb(self.device),
            "train/nonfinite_steps": float(self._nonfinite_in_epoch),
            "train/accum_steps": float(self.accum_steps),
        }

    @torch.no_grad()
    def validate(self, loader: DataLoader) -> dict[str, float]:
        self.model.eval()
        evaluator = SegmentationEvaluator(self.num_classes, self.class_names, self.ignore_index, self.device,
                                          self.background, self.hierarchy, per_image=True)
        start = time.perf_counter()
        loss = validation_pass(self._forward, self.loss_fn, loader, evaluator, self._n_batches(
            loader, self.limit_val_batches), amp_dtype=self.amp_dtype if self.amp else None,
            memory_format=self.memory_format)
        self.last_confusion = evaluator.confusion
        self.last_per_image = evaluator.per_image_confusion()
        return {"val/loss": loss, **evaluator.metrics("val"), "perf/val_time_s": time.perf_counter() - start}

    def state_dict(self, epoch: int) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "global_step": self.global_step,
            "accum_steps": self.accum_steps,
            "best": self.best,
            "history": self.history,
            "meta": self.meta,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_weights(self.model, state, "being resumed", type(self.model).__name__)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.best = dict(state["best"])
        self.meta = dict(state.get("meta", {}))
        self.history = list(state["history"])
        self.start_epoch = int(state["epoch"]) + 1
        self.global_step = int(state.get("global_step", 0))
        self.accum_steps = int(state.get("accum_steps", 1))
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in state["rng"]["cuda"]])

    def step(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """One optimisation step on a batch already on the device; returns the loss.

        On out-of-memory the batch is retried in twice as many chunks (gradient accumulation,
        same effective batch); a non-finite loss skips the step or stops (`nonfinite`)."""
        while True:
            try:
                return self._accumulated_step(images, masks)
            except (torch.cuda.OutOfMemoryError, MemoryError) as e:
                self.optimizer.zero_grad(set_to_none=True)
                if self.accum_steps * 2 > images.shape[0]:
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.accum_steps *= 2
                log.warning("out of memory at step %d (%s): retrying with %d accumulation steps of "
                            "%d images", self.global_step, type(e).__name__, self.accum_steps,
                            -(-images.shape[0] // self.accum_steps))
                self._event("oom.accumulation_steps", self.accum_steps)

    def _accumulated_step(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        n = images.shape[0]
        for x, y in zip(images.chunk(self.accum_steps), masks.chunk(self.accum_steps), strict=True):
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                out = self._forward(x)
            loss = self.loss_fn(as_float(out), y)  # losses in fp32: Dice sums overflow fp16
            if not torch.isfinite(loss):  # one host sync; GradScaler syncs per step anyway
                return self._skip_nonfinite(loss)
            self.scaler.scale(loss * (x.shape[0] / n)).backward()
            total += loss.detach() * (x.shape[0] / n)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._advance()
        return total

    def _skip_nonfinite(self, loss: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        where = f"epoch {len(self.history) + 1} step {self.global_step}"
        if self.nonfinite is NonFinite.stop:
            raise NonFiniteLossError(f"non-finite loss ({float(loss.detach())}) at {where} (trainer.nonfinite=stop)")
        log.warning("non-finite loss (%s) at %s: step skipped", float(loss.detach()), where)
        self._nonfinite_in_epoch += 1
        self._event("nonfinite.last_step", self.global_step)
        self._advance()  # keep the LR schedule aligned with the batches
        return torch.zeros((), device=self.device)

    def _advance(self) -> None:
        if self.scheduler is not None:
            self.scheduler.step()
        self.global_step += 1

    # -- internals ----------------------------------------------------------------------
    def _event(self, key: str, value: Any) -> None:
        for cb in self.callbacks:
            cb.on_event(self, key, value)

    def _checkpoint(self, epoch: int, improved: bool) -> None:
        if self.checkpoint_dir is None:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        save_atomic(self.state_dict(epoch), self.checkpoint_dir / LAST_CHECKPOINT)  # full: resumable
        if improved:  # weights only: what evaluate/predict need, a third of the size
            save_atomic({"model": self.model.state_dict(), "epoch": epoch, "best": self.best},
                        self.checkpoint_dir / BEST_CHECKPOINT)

    @staticmethod
    def _n_batches(loader: DataLoader, limit: int | None) -> int:
        return min(len(loader), limit) if limit else len(loader)

    def _epoch_line(self, epoch: int, m: dict[str, float]) -> str:
        return (
            f"epoch {epoch + 1}/{self.epochs} train_loss={m['train/loss']:.4f} "
            f"val_loss={m['val/loss']:.4f} val_mIoU={m['val/miou']:.4f} "
            f"{m['perf/train_imgs_per_s']:.1f} img/s {m['perf/epoch_time_s']:.1f}s "
            f"peak={m['perf/peak_mem_mb']:.0f}MB"
        )
