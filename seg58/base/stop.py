"""Why a run ended before its last epoch, as one typed value: the trainer sets it, the run's
summary and MLflow tags carry it, the sweep's bookkeeping and the leaderboard read it, so none
of them parses a sentence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


class StopKind(str, Enum):
    pruned = "pruned"  # a search's pruner gave the trial up (an ending by design, not a failure)
    early_stop = "early_stop"  # the monitored metric stopped improving (trainer.patience)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StopReason:
    kind: StopKind
    epoch: int  # the last epoch trained, 1-based
    detail: str = ""

    def __str__(self) -> str:
        head = "pruned" if self.kind is StopKind.pruned else "early stop"
        return f"{head} at epoch {self.epoch}" + (f": {self.detail}" if self.detail else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StopReason | None:
        """None for a run that ran its course (or a summary that says nothing)."""
        if not isinstance(data, dict) or data.get("kind") not in StopKind._value2member_map_:
            return None
        return cls(StopKind(data["kind"]), int(data.get("epoch", 0)), str(data.get("detail", "")))


def is_pruned(data: dict[str, Any] | None) -> bool:
    reason = StopReason.from_dict(data)
    return reason is not None and reason.kind is StopKind.pruned
