"""A grid: every cell through the launcher, at most as many at a time as it runs (or
hydra.sweeper.max_batch_size), each recorded as it ends, fail-fast applied (policy.py), a budget
kept (budget.py), Ctrl-C tidy (interrupt.py). A resumed grid (hydra.sweeper.resume=<its folder>)
runs the cells that did not complete under their own numbers, in the same folder, under the same
tracking run."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from seg58.base.names import MULTIRUN_CONFIG
from seg58.sweep.book import SweepBook
from seg58.sweep.budget import Budget
from seg58.sweep.interrupt import Interruption
from seg58.sweep.policy import FailurePolicy
from seg58.sweep.pool import JobPool


def run_grid(book: SweepBook, policy: FailurePolicy, launcher: Any, cells: list[tuple[int, list[str]]],
             max_batch_size: int | None, arguments: list[str], spec: str, command: str, resumed: bool = False,
             budget: Budget | None = None) -> list:
    budget = budget or Budget()
    returns: list = []
    with Interruption() as stop:
        pool = JobPool(launcher, max_batch_size or len(cells), stop)
        policy.watch(min(pool.slots, len(cells)))
        book.start(arguments, concurrent_jobs=min(pool.slots, len(cells)), spec=spec,
                   resumed=book.hooked if resumed else None)
        OmegaConf.save(book.config, book.sweep_dir / MULTIRUN_CONFIG)
        if not resumed:
            book.plan([overrides for _, overrides in cells])
        pending = list(cells)
        try:
            while (pending or pool.busy()) and not stop.requested:
                spent = budget.check(book)
                if spent:  # nothing new submitted; the running ones finish or are cancelled
                    returns += book.cancel_rest(pool, pending, spent, running=budget.cancels)
                    pending = []
                n = pool.free()
                take, pending = pending[:n], pending[n:]
                for num, job in pool.submit(take, running=book.running):
                    if job is not None:
                        book.submitted(num, dict(take)[num], job)
                for num, ret, info in pool.wait(lambda: book.idle() or budget.due(book)):
                    book.record(num, ret, info)
                    returns.append(ret)
                    reason = policy.check(book)
                    if reason:
                        returns += book.cancel_rest(pool, pending, reason)
                        pending = []
        except KeyboardInterrupt:  # in a cell trained in this process (Interruption raised it)
            if not stop.requested:
                raise
        if stop.requested:
            book.interrupt(pool, f"{command} hydra.sweeper.resume={book.sweep_dir.resolve()}")
    book.finish(f"rerun only those: {command} hydra.sweeper.resume={book.sweep_dir} (in this folder), or "
                f"hydra.sweeper.rerun={book.sweep_dir} (into a new one)")
    return [returns]
