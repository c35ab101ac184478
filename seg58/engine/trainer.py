"""The training loop: plain PyTorch, no Hydra or MLflow (those hook in through callbacks).

Like detectron2's train_loop.py: the loop itself only steps, validates and asks its hooks; the
LR schedule and checkpointing are hooks too (seg58/engine/hooks.py), run before any reporter."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from seg58.base.choices import NonFinite
from seg58.base.errors import NonFiniteLossError
from seg58.base.stop import StopReason
from seg58.engine.callback import Callback, FitSummary, TrainerEvent
from seg58.engine.checkpoints import load_checkpoint, load_weights, restore_rng, rng_state
from seg58.engine.evaluator import SegmentationEvaluator
from seg58.engine.options import TrainerOptions
from seg58.engine.runtime import autocast_dtype, peak_memory_mb, reset_peak_memory
from seg58.engine.validation import as_float, validation_pass

log = logging.getLogger(__name__)

H = TypeVar("H", bound=Callback)


class Trainer:
    """AMP training with AdamW-style optimizers and per-step hooks (the OneCycle schedule).

    fp16 + GradScaler on CUDA, bf16 autocast on CPU. Loss and metrics accumulate on the
    device so the hot loop never waits for the GPU; they are read once per epoch.
    `evaluator` makes a fresh evaluator for each validation (default: ARTeFACT's 16 classes).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
        *,
        device: torch.device,
        options: TrainerOptions | None = None,
        evaluator: Callable[[], SegmentationEvaluator] | None = None,
        hooks: Sequence[Callback] = (),
    ):
        self.device, self.options = device, options or TrainerOptions()
        options = self.options
        self.epochs = options.epochs
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=self.memory_format)
        self._forward = torch.compile(self.model) if options.compile else self.model
        self.loss_fn = loss_fn.to(device)
        self.optimizer = optimizer(self.model.parameters())
        self.make_evaluator = evaluator or partial(SegmentationEvaluator, device=device, per_image=True)
        dtype = autocast_dtype(device, options.amp, options.cpu_amp)
        self.amp, self.amp_dtype = dtype is not None, dtype or torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and device.type == "cuda")
        self.hooks: list[Callback] = []
        self.register(*hooks)
        self.progress = sys.stderr.isatty() if options.progress is None else options.progress
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] = {"val/miou": -math.inf, "epoch": -1}
        self.start_epoch = 0  # > 0 after resuming from a checkpoint
        self.total_steps = 0  # optimisation steps planned (set by start(); the LR schedule's length)
        self.stop_reason: StopReason | None = None  # set by request_stop()
        self.accum_steps = 1  # doubled on out-of-memory; the effective batch stays the same
        self.global_step = 0
        self._nonfinite_in_epoch = 0
        self.last_confusion: torch.Tensor | None = None  # of the latest validation, on the CPU
        self.last_per_image: tuple[list[str], Any] | None = None  # (image ids, (N, C, C) matrices), idem
        self.meta: dict[str, Any] = {}  # saved in checkpoints; callbacks may note ids here
        self._data_order: torch.Generator | None = None  # the train loader's, saved with the other RNG states

    # -- public -------------------------------------------------------------------------
    def register(self, *hooks: Callback) -> None:
        """Add hooks; all of them run in ascending priority, equal ones in the order given."""
        self.hooks = sorted([*self.hooks, *hooks], key=lambda h: h.priority)

    def hook(self, kind: type[H]) -> H | None:
        """The first registered hook of this type."""
        return next((h for h in self.hooks if isinstance(h, kind)), None)

    def fit(self, train_loader: DataLoader, val_loader: DataLoader,
            resume_from: str | Path | None = None) -> FitSummary:
        """Train `epochs` epochs; with `resume_from` (a last.pt), continue after its epoch with
        the same optimizer, scheduler, scaler, RNG states and shuffle order, as if never
        interrupted (bit for bit in fp32 on one device with loader workers=0)."""
        self._data_order = getattr(train_loader, "generator", None)
        try:
            self.start(self.epochs * self.batches_per_epoch(train_loader), resume_from)
            self._epochs(train_loader, val_loader)
            return self._end()
        except BaseException as e:
            for hook in self.hooks:
                hook.on_failure(self, e)
            raise

    def start(self, total_steps: int, resume_from: str | Path | None = None) -> None:
        """Ready to step: the checkpoint (if any) loaded, every hook started and its state restored."""
        self.total_steps = total_steps
        state = load_checkpoint(resume_from, self.device) if resume_from is not None else None
        if state is not None:
            self.load_state_dict(state)
            log.info("resumed from %s at epoch %d/%d", resume_from, self.start_epoch + 1, self.epochs)
        for hook in self.hooks:
            hook.on_fit_start(self)
        for hook in self.hooks:
            if state is not None and hook.state_key and state.get(hook.state_key) is not None:
                hook.load_state_dict(state[hook.state_key])

    def request_stop(self, reason: StopReason) -> None:
        """End fit() after the current epoch (early stopping, pruning); that epoch is
        checkpointed and reported to every callback first."""
        self.stop_reason = reason

    def batches_per_epoch(self, loader: DataLoader) -> int:
        return self._n_batches(loader, self.options.limit_train_batches)

    def _epochs(self, train_loader: DataLoader, val_loader: DataLoader) -> None:
        for epoch in range(self.start_epoch, self.epochs):
            metrics = {**self.train_epoch(train_loader, epoch), **self.validate(val_loader)}
            self.history.append(metrics)
            if metrics["val/miou"] > self.best["val/miou"]:
                self.best = {"val/miou": metrics["val/miou"], "epoch": epoch}
            log.info(self._epoch_line(epoch, metrics))
            for hook in self.hooks:
                hook.on_epoch_end(self, epoch, metrics)
            if self.stop_reason is not None:
                log.info("stopping after epoch %d/%d: %s", epoch + 1, self.epochs, self.stop_reason)
                break

    def _end(self) -> FitSummary:
        final: dict[str, float] = {}
        for hook in self.hooks:  # every hook's last work first: none reads a summary another is still writing
            final.update(hook.finish(self))
        summary = FitSummary(best_val_miou=self.best["val/miou"], best_epoch=int(self.best["epoch"]),
                             epochs=self.epochs, history=tuple(self.history), stop=self.stop_reason, final=final)
        for hook in self.hooks:
            hook.on_fit_end(self, summary)
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
        evaluator = self.make_evaluator()
        start = time.perf_counter()
        loss = validation_pass(self._forward, self.loss_fn, loader, evaluator, self._n_batches(
            loader, self.options.limit_val_batches), amp_dtype=self.amp_dtype if self.amp else None,
            memory_format=self.memory_format)
        self.last_confusion = evaluator.confusion
        self.last_per_image = evaluator.per_image_confusion()
        return {"val/loss": loss, **evaluator.metrics("val"), "perf/val_time_s": time.perf_counter() - start}

    def state_dict(self, epoch: int) -> dict[str, Any]:
        """Everything a resume needs, the hooks' own state under their state_key."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "global_step": self.global_step,
            "accum_steps": self.accum_steps,
            "best": self.best,
            "history": self.history,
            "meta": self.meta,
            "rng": rng_state(self._data_order),
            **{h.state_key: h.state_dict() for h in self.hooks if h.state_key},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_weights(self.model, state, "being resumed", type(self.model).__name__)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.best = dict(state["best"])
        self.meta = dict(state.get("meta", {}))
        self.history = list(state["history"])
        self.start_epoch = int(state["epoch"]) + 1
        self.global_step = int(state.get("global_step", 0))
        self.accum_steps = int(state.get("accum_steps", 1))
        restore_rng(state["rng"], self._data_order)

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
                self._event(TrainerEvent.oom_accumulation_steps, self.accum_steps)

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
        if self.options.nonfinite is NonFinite.stop:
            raise NonFiniteLossError(f"non-finite loss ({float(loss.detach())}) at {where} (trainer.nonfinite=stop)")
        log.warning("non-finite loss (%s) at %s: step skipped", float(loss.detach()), where)
        self._nonfinite_in_epoch += 1
        self._event(TrainerEvent.nonfinite_last_step, self.global_step)
        self._advance()  # keep the LR schedule aligned with the batches
        return torch.zeros((), device=self.device)

    def _advance(self) -> None:
        self.global_step += 1
        for hook in self.hooks:
            hook.after_step(self)

    # -- internals ----------------------------------------------------------------------
    def _event(self, event: TrainerEvent, value: float) -> None:
        for hook in self.hooks:
            hook.on_event(self, event, value)

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
