"""Cells through any Hydra launcher, at most `slots` at a time, each handed back as it ends
(hydra#2284: Hydra's launchers return a whole batch at once, in submission order)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from hydra.core.utils import JobReturn

from seg58.base.status import CellStatus
from seg58.sweep.interrupt import Interruption
from seg58.sweep.private_apis import expect_no_result

POLL_S = 1.0


class JobPool:
    def __init__(self, launcher: Any, slots: int | None = None, interruption: Interruption | None = None):
        self.launcher, self.interruption = launcher, interruption or Interruption()
        self.asynchronous = hasattr(launcher, "submit")  # seg58's submitit launchers; Hydra's basic one is not
        limits = [n for n in (slots, launcher.capacity() if self.asynchronous else 1) if n]
        self.slots = min(limits) if limits else 1 << 30
        self.running: dict[int, tuple[Any, list[str]]] = {}
        self._ended: list[tuple[int, JobReturn, dict]] = []  # results of a synchronous launcher

    def busy(self) -> bool:
        return bool(self.running or self._ended)

    def free(self) -> int:
        return 0 if self._ended else self.slots - len(self.running)

    def submit(self, cells: Sequence[tuple[int, list[str]]],
               running: Callable[[int, list[str]], None] | None = None) -> list[tuple[int, Any]]:
        """Start these (num, overrides) cells; (num, job) of each, job None when it already ran
        (Hydra's basic launcher: `running` is told just before each starts, in this process)."""
        if not self.asynchronous:  # Hydra's basic launcher runs a cell to its end right here
            for num, overrides in cells:
                if running is not None:
                    running(num, overrides)
                t0 = time.time()
                with self.interruption.in_process():
                    (ret,) = self.launcher.launch([overrides], initial_job_idx=num)
                self._ended.append((num, ret, {"elapsed_s": round(time.time() - t0, 1)}))
            return [(num, None) for num, _ in cells]
        started = []
        for run in _consecutive(cells):  # one submission (a SLURM job array) per run of numbers
            jobs = self.launcher.submit([o for _, o in run], run[0][0])
            for (num, overrides), job in zip(run, jobs, strict=True):
                self.running[num] = (job, overrides)
                started.append((num, job))
        return started

    def wait(self, idle: Callable[[], Any] | None = None) -> list[tuple[int, JobReturn, dict]]:
        """Block until at least one cell has ended; its (num, JobReturn, info). `idle` is called
        between polls; when it returns something true (a budget ran out), [] at once."""
        if self._ended:
            ended, self._ended = self._ended, []
            return ended
        while self.running and not self.interruption.requested:
            done = [n for n, (job, _) in self.running.items() if job.done()]
            if done:
                return [self._collect(n) for n in done]
            if idle is not None and idle():
                return []
            time.sleep(POLL_S)
        return []

    def cancel_all(self, state: str = CellStatus.CANCELLED) -> list[tuple[int, JobReturn, dict]]:
        """Cancel every running cell and wait for each to end; each recorded as `state`."""
        jobs = [job for job, _ in self.running.values()]
        if jobs:  # Hydra's basic launcher has none (a cell in this process is interrupted, not cancelled)
            self.launcher.cancel(jobs)
        for job in jobs:
            if hasattr(job, "paths"):  # a submitit job
                expect_no_result(job)
        ended = [self._collect(n) for n in list(self.running)]
        for _, _, info in ended:
            info["state"] = state
        return ended

    def _collect(self, num: int) -> tuple[int, JobReturn, dict]:
        job, overrides = self.running.pop(num)
        ret, info = self.launcher.collect(job, overrides)
        return num, ret, info


def _consecutive(cells: Sequence[tuple[int, list[str]]]) -> list[list[tuple[int, list[str]]]]:
    runs: list[list[tuple[int, list[str]]]] = []
    for cell in cells:
        if runs and runs[-1][-1][0] + 1 == cell[0]:
            runs[-1].append(cell)
        else:
            runs.append([cell])
    return runs
