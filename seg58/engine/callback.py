"""What a trainer hook sees: the Callback base (every method a no-op, like detectron2's HookBase),
the events it may be told of, and the FitSummary that fit() returns.

A run ends in two phases so that no hook depends on another's writes: every hook first
`finish`es (draws, measures; the figures it returns go into the summary), then every hook reads
the finished, frozen summary in `on_fit_end`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from seg58.base.stop import StopReason

if TYPE_CHECKING:
    from seg58.engine.trainer import Trainer


class TrainerEvent(str, Enum):
    """Something notable that happened mid-epoch; its value is a step count."""

    oom_accumulation_steps = "oom.accumulation_steps"  # out of memory: the batch now runs in this many chunks
    nonfinite_last_step = "nonfinite.last_step"  # a non-finite loss skipped the step with this number

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class FitSummary:
    """How a fit() ended. Read-only: hooks add figures only through `Callback.finish`."""

    best_val_miou: float
    best_epoch: int  # 0-based; -1 when no epoch was validated
    epochs: int  # planned
    history: tuple[Mapping[str, float], ...]  # one entry per epoch trained, a resumed run's earlier ones too
    stop: StopReason | None = None  # why it ended before `epochs` (None: it ran its course)
    final: Mapping[str, float] = field(default_factory=dict)  # what the hooks' finish() returned (costs)

    def __post_init__(self) -> None:
        object.__setattr__(self, "final", MappingProxyType(dict(self.final)))

    @property
    def epochs_trained(self) -> int:
        return len(self.history)

    @property
    def last(self) -> Mapping[str, float]:
        return self.history[-1] if self.history else {}


class Callback:
    """A trainer hook: override only what you need; the trainer never probes with hasattr.

    Hooks run in ascending `priority` (stable for equals): the trainer's own LR schedule and
    checkpointing come before any reporter, so what is logged is already on disk."""

    priority: ClassVar[int] = 50
    state_key: ClassVar[str | None] = None  # set: state_dict() is saved in checkpoints under this key

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (also after a resume: trainer.history holds the earlier epochs;
        a hook's own saved state is restored right after this)."""

    def after_step(self, trainer: Trainer) -> None:
        """After every optimisation step, taken or skipped (a non-finite loss)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        """After validation; the hooks before this one have run (the checkpoint is on disk)."""

    def finish(self, trainer: Trainer) -> Mapping[str, float]:
        """Training is over (its course run, or stopped): last work; figures for FitSummary.final."""
        return {}

    def on_fit_end(self, trainer: Trainer, summary: FitSummary) -> None:
        """After every hook has finished."""

    def on_failure(self, trainer: Trainer, error: BaseException) -> None:
        """fit() is ending by an exception, including SystemExit/KeyboardInterrupt (preemption)."""

    def on_event(self, trainer: Trainer, event: TrainerEvent, value: float) -> None:
        """Something notable happened mid-epoch (an OOM back-off, a skipped non-finite step)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Any) -> None:
        """Called after on_fit_start when resuming from a checkpoint that holds `state_key`."""
