"""Hydra grid sweeper = BasicSweeper + seg58's sweep bookkeeping (in hydra_plugins, as Hydra
requires of plugins).

Before any job starts every cell's config is checked (all bad cells reported at once), the
MLflow store is created once and one parent run opened; each cell is reported as it ends and is
in <sweep dir>/sweep_summary.json, `hydra.sweeper.max_failures=K` cancels the rest after K
failures, and `hydra.sweeper.rerun=<sweep dir>` launches only the cells that did not complete.
`hydra.sweeper.sample=N` runs a seeded random sample of N cells of the grid. With
hydra.sweeper.strategy=search (the search=<preset> presets) it runs an Optuna search instead
(search_sweeper.py), with the same bookkeeping. With launcher=slurm hydra.launcher.detach=true
the sweep itself runs as a SLURM job (detach.py) and the command returns.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from hydra_plugins.seg58_sweeper.bookkeeping import SweepBook, unfinished_cells
from hydra_plugins.seg58_sweeper.pool import JobPool

log = logging.getLogger(__name__)


class Seg58Sweeper(BasicSweeper):
    def __init__(self, strategy: str = "grid", params: dict | None = None, max_batch_size: int | None = None,
                 rerun: str | None = None, sample: int | None = None, sample_seed: int = 0,
                 max_failures: int | None = None, **search: Any) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        from seg58.errors import ConfigError

        if strategy not in ("grid", "search"):
            raise ConfigError([f"hydra.sweeper.strategy={strategy!r}; valid: grid, search"])
        if max_failures is not None and max_failures < 1:
            raise ConfigError([f"hydra.sweeper.max_failures={max_failures}: at least 1 (null: never stop early)"])
        self.strategy, self.rerun, self.sample, self.sample_seed = strategy, rerun, sample, sample_seed
        self.max_failures = max_failures
        self.search = search  # n_trials, n_jobs, direction, metric, sampler, pruner, storage, resume, ...

    def _cells(self, arguments: list[str]) -> list[list[str]]:
        if self.rerun:
            return unfinished_cells(Path(self.rerun))
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        cells = [list(c) for batch in self.split_arguments(overrides, None) for c in batch]
        if self.sample is not None and self.sample < len(cells):
            keep = sorted(random.Random(self.sample_seed).sample(range(len(cells)), self.sample))
            log.info("sampling %d of the grid's %d cells (hydra.sweeper.sample_seed=%d)",
                     self.sample, len(cells), self.sample_seed)
            cells = [cells[i] for i in keep]
        return cells

    def _fixed_cells(self, arguments: list[str]) -> list[list[str]]:
        """A search's base config (its fixed overrides); a resumed one was checked when it began."""
        if self.search.get("resume"):
            return []
        from hydra_plugins.seg58_sweeper.search_space import parse_space

        params = OmegaConf.to_container(self.params) if OmegaConf.is_config(self.params) else self.params
        return [parse_space(params, arguments)[1]]

    def book(self, kind: str) -> SweepBook:
        return SweepBook(Path(str(self.config.hydra.sweep.dir)), kind, self.hydra_context.config_loader,
                         self.config, self.launcher, self.max_failures)

    def sweep(self, arguments: list[str]) -> Any:
        searching = self.strategy == "search" or self.search.get("resume")
        if getattr(self.launcher, "detach", False):
            from hydra_plugins.seg58_sweeper.detach import detach

            book = self.book("search" if searching else "grid")
            book.check(self._fixed_cells(arguments) if searching else self._cells(arguments))  # before queueing
            return detach(self.config, self.launcher, book)
        if searching:
            from hydra_plugins.seg58_sweeper.search_sweeper import Search

            # Hydra instantiated sampler/pruner already; the trials need their specs to rebuild them
            raw = {k: self.config.hydra.sweeper.get(k) for k in ("sampler", "pruner")}
            return Search(self.config, self.hydra_context, self.launcher, params=self.params,
                          book=self.book("search"), **{**self.search, **raw}).sweep(arguments)
        cells = self._cells(arguments)
        if not cells:
            log.info("every cell of %s completed: nothing to rerun", self.rerun)
            return []
        book = self.book("grid")
        book.check(cells)  # every cell, before the first job
        pool = JobPool(self.launcher, self.max_batch_size or len(cells))
        book.start(arguments, concurrent_jobs=min(pool.slots, len(cells)),
                   spec=" ".join(arguments) or f"rerun of {self.rerun}")
        OmegaConf.save(self.config, book.sweep_dir / "multirun.yaml")
        book.plan(cells)
        pending, returns = list(enumerate(cells)), []
        while pending or pool.busy():
            n = pool.free()
            take, pending = pending[:n], pending[n:]
            for num, job in pool.submit(take):
                book.submitted(num, dict(take)[num], job)
            for num, ret, info in pool.wait():
                book.record(num, ret, info)
                returns.append(ret)
                reason = book.fail_fast()
                if reason:
                    returns += book.cancel_rest(pool, pending, reason)
                    pending = []
        choice = self.config.hydra.runtime.choices.get("launcher") or "local"
        book.finish(f"rerun only those: python -m seg58 -m launcher={choice} hydra.sweeper.rerun={book.sweep_dir}")
        return [returns]
