"""A sweep's budget (hydra.sweeper.budget.*): when the GPU-hours its cells reported or its own wall
time reach the budget, no new cell or trial is submitted; `on_exhausted` says whether the running
ones finish or are cancelled. Like policy.py it decides from the book's figures; the book records
the stop. GPU-hours count as cells end (a running cell's hours are not known before); wall time is
the sweep's own, resumes included (book.wall_time)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ON_EXHAUSTED = ("finish", "cancel")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def seconds_of(value: Any, key: str) -> float:
    """A number is seconds; a string may carry a unit: `90s`, `45m`, `2h`, `1.5d`."""
    if isinstance(value, bool):
        raise ValueError(f"{key}={value}: seconds, or a duration such as 90s, 45m, 2h")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{key}={value}: seconds, or a duration such as 90s, 45m, 2h")
    return float(match[1]) * _UNITS[match[2] or "s"]


def format_hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min" if seconds >= 60 \
        else f"{seconds:.0f} s"


@dataclass(frozen=True)
class Budget:
    gpu_hours: float | None = None
    wall_time_s: float | None = None
    on_exhausted: str = "finish"

    @classmethod
    def from_settings(cls, settings: Any) -> tuple[Budget, list[str]]:
        """(budget, problems) from hydra.sweeper.budget (a mapping or its schema object); each
        problem names its key."""
        given = dict(settings) if isinstance(settings, Mapping) else dict(vars(settings or {}))
        problems: list[str] = []
        gpu_hours, wall, on = given.get("gpu_hours"), given.get("wall_time"), given.get("on_exhausted") or "finish"
        if gpu_hours is not None and not (isinstance(gpu_hours, (int, float)) and gpu_hours > 0):
            problems.append(f"hydra.sweeper.budget.gpu_hours={gpu_hours}: a positive number (null: no budget)")
            gpu_hours = None
        wall_s = None
        if wall is not None:
            try:
                wall_s = seconds_of(wall, "hydra.sweeper.budget.wall_time")
                if wall_s <= 0:
                    raise ValueError(f"hydra.sweeper.budget.wall_time={wall}: more than 0 (null: no budget)")
            except ValueError as e:
                problems.append(str(e))
                wall_s = None
        if on not in ON_EXHAUSTED:
            problems.append(f"hydra.sweeper.budget.on_exhausted={on}; valid: {', '.join(ON_EXHAUSTED)}")
        budget = cls(float(gpu_hours) if gpu_hours is not None else None, wall_s,
                     on if on in ON_EXHAUSTED else "finish")
        return budget, problems

    def __bool__(self) -> bool:
        return self.gpu_hours is not None or self.wall_time_s is not None

    @property
    def cancels(self) -> bool:
        return self.on_exhausted == "cancel"

    def reason(self, gpu_hours: float, wall_s: float) -> str | None:
        """Why a sweep that spent this much must not start another cell, else None."""
        if self.gpu_hours is not None and gpu_hours >= self.gpu_hours:
            return f"budget spent: {gpu_hours:.3g} of hydra.sweeper.budget.gpu_hours={self.gpu_hours:g} GPU-hours"
        if self.wall_time_s is not None and wall_s >= self.wall_time_s:
            return (f"budget spent: {format_hours(wall_s)} of hydra.sweeper.budget.wall_time="
                    f"{format_hours(self.wall_time_s)} of the sweep's wall time")
        return None

    def due(self, book: Any) -> str | None:
        """Why the sweep should stop now (nothing recorded), else None; None once it has stopped."""
        if not self or book.stopped:
            return None
        return self.reason(float(book.ledger.hours.result().get("gpu_hours", 0.0)), book.wall_time())

    def check(self, book: Any) -> str | None:
        """Before submitting: stop the sweep when due (recorded in the book, once); the reason, else None."""
        why = self.due(book)
        if why is None:
            return None
        running = "the running cells are cancelled" if self.cancels else "the running cells finish"
        return book.stop_early(f"{why}: no new cell is submitted; {running}", kind="budget",
                               budget=self.to_dict(), spent={**book.ledger.hours.result(), "wall_time_s":
                                                             round(book.wall_time(), 1)})

    def to_dict(self) -> dict[str, Any]:
        return {"gpu_hours": self.gpu_hours, "wall_time_s": self.wall_time_s, "on_exhausted": self.on_exhausted}
