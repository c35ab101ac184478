"""A grid: every cell through the launcher, at most as many at a time as it runs (or
hydra.sweeper.max_batch_size), each recorded as it ends, fail-fast applied."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from seg58.base.names import MULTIRUN_CONFIG
from seg58.sweep.book import SweepBook
from seg58.sweep.pool import JobPool


def run_grid(book: SweepBook, launcher: Any, cells: list[list[str]], max_batch_size: int | None,
             arguments: list[str], spec: str, command: str) -> list:
    pool = JobPool(launcher, max_batch_size or len(cells))
    book.start(arguments, concurrent_jobs=min(pool.slots, len(cells)), spec=spec)
    OmegaConf.save(book.config, book.sweep_dir / MULTIRUN_CONFIG)
    book.plan(cells)
    pending, returns = list(enumerate(cells)), []
    while pending or pool.busy():
        n = pool.free()
        take, pending = pending[:n], pending[n:]
        for num, job in pool.submit(take, running=book.running):
            if job is not None:
                book.submitted(num, dict(take)[num], job)
        for num, ret, info in pool.wait(book.idle):
            book.record(num, ret, info)
            returns.append(ret)
            reason = book.fail_fast()
            if reason:
                returns += book.cancel_rest(pool, pending, reason)
                pending = []
    book.finish(f"rerun only those: {command} hydra.sweeper.rerun={book.sweep_dir}")
    return [returns]
