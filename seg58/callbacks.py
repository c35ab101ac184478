"""Trainer hooks. Every hook does nothing by default (like detectron2's HookBase), so a callback
overrides only what it needs and the trainer never probes with hasattr."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seg58.trainer import Trainer


class Callback:
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

    def _update(self, metrics: dict[str, float]) -> None:
        value = self.sign * metrics[self.monitor]
        if value > self.best + self.min_delta:
            self.best, self.waited = value, 0
        else:
            self.waited += 1

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        self._update(metrics)
        if self.waited >= self.patience:
            trainer.request_stop(f"early stop: {self.monitor} gained no more than {self.min_delta} "
                                 f"in {self.patience} epoch(s)")
