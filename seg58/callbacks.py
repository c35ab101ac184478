"""Trainer hooks. Every hook does nothing by default (like detectron2's HookBase), so a callback
overrides only what it needs and the trainer never probes with hasattr."""

from __future__ import annotations

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
