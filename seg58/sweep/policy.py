"""Fail fast: whether a sweep stops early (hydra.sweeper.max_failures, max_failure_rate). The policy
decides from the book's counts; the book only records the decision."""

from __future__ import annotations

from typing import Any


class FailurePolicy:
    def __init__(self, max_failures: int | None = None, max_failure_rate: float | None = None):
        self.max_failures, self.max_failure_rate = max_failures, max_failure_rate
        self.rate_window = 1  # max_failure_rate applies once this many cells ended (the jobs in flight)

    def watch(self, concurrent_jobs: int) -> None:
        """Jobs run this many at a time: the rate waits for as many to end (like hydra-optuna-sweeper's
        rate over a batch)."""
        self.rate_window = max(1, concurrent_jobs)

    def reason(self, failed: int, ended: int) -> str | None:
        """Why a sweep with `failed` of its `ended` cells failed (on their own) stops, else None."""
        if self.max_failures is not None and failed >= self.max_failures:
            return f"hydra.sweeper.max_failures={self.max_failures} reached"
        if self.max_failure_rate is not None and ended >= self.rate_window and failed / ended > self.max_failure_rate:
            return f"hydra.sweeper.max_failure_rate={self.max_failure_rate} exceeded ({failed} of {ended})"
        return None

    def check(self, book: Any) -> str | None:
        """After a cell ended: stop the sweep when due (recorded in the book, once); the reason, else None."""
        if book.stopped:
            return None
        failed = book.ledger.failed
        why = self.reason(failed, book.ledger.ended_own)
        if why is None:
            return None
        return book.stop_early(f"{why}: {failed} cell(s) failed; the queued and running cells were cancelled")
