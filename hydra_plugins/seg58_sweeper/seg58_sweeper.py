"""Hydra grid sweeper = BasicSweeper + seg58's sweep bookkeeping (in hydra_plugins, as Hydra
requires of plugins).

Before any job starts every cell's config is checked (all bad cells reported at once), the
MLflow store is created once and one parent run opened; after the jobs every cell's outcome is
in <sweep dir>/sweep_summary.json, and `hydra.sweeper.rerun=<sweep dir>` launches only the
cells that did not complete. `hydra.sweeper.sample=N` runs a seeded random sample of N cells of
the grid. With hydra.sweeper.strategy=search (the search=<preset> presets) it runs an Optuna
search instead (search_sweeper.py), with the same bookkeeping.
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

log = logging.getLogger(__name__)


class Seg58Sweeper(BasicSweeper):
    def __init__(self, strategy: str = "grid", params: dict | None = None, max_batch_size: int | None = None,
                 rerun: str | None = None, sample: int | None = None, sample_seed: int = 0,
                 **search: Any) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        if strategy not in ("grid", "search"):
            from seg58.errors import ConfigError

            raise ConfigError([f"hydra.sweeper.strategy={strategy!r}; valid: grid, search"])
        self.strategy, self.rerun, self.sample, self.sample_seed = strategy, rerun, sample, sample_seed
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

    def sweep(self, arguments: list[str]) -> Any:
        if self.strategy == "search" or self.search.get("resume"):
            from hydra_plugins.seg58_sweeper.search_sweeper import Search

            # Hydra instantiated sampler/pruner already; the trials need their specs to rebuild them
            raw = {k: self.config.hydra.sweeper.get(k) for k in ("sampler", "pruner")}
            return Search(self.config, self.hydra_context, self.launcher, params=self.params,
                          **{**self.search, **raw}).sweep(arguments)
        cells = self._cells(arguments)
        if not cells:
            log.info("every cell of %s completed: nothing to rerun", self.rerun)
            return []
        book = SweepBook(self.config, self.hydra_context.config_loader, self.launcher, kind="grid")
        size = self.max_batch_size or len(cells)
        batches = [cells[i:i + size] for i in range(0, len(cells), size)]
        book.check(cells)  # every cell, before the first job
        book.start(arguments, concurrent_jobs=size, spec=" ".join(arguments) or f"rerun of {self.rerun}")
        OmegaConf.save(self.config, book.sweep_dir / "multirun.yaml")
        returns, idx = [], 0
        for batch in batches:
            results = self.launcher.launch(batch, initial_job_idx=idx)
            infos = getattr(self.launcher, "job_infos", None) or [{} for _ in results]
            for i, (ret, info) in enumerate(zip(results, infos, strict=True)):
                book.record(idx + i, ret, info)
            idx += len(batch)
            returns.append(results)
        choice = self.config.hydra.runtime.choices.get("launcher") or "local"
        book.finish(f"rerun only those: python -m seg58 -m launcher={choice} hydra.sweeper.rerun={book.sweep_dir}")
        return returns
