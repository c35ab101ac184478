"""Hydra sweeper = BasicSweeper + checks before launch (lives in hydra_plugins, as Hydra requires).

Before any job starts: every cell's config is composed and checked (all bad cells reported at
once), the MLflow store is created once so concurrent jobs never race its schema migration, and
jobs launched side by side locally learn how many of them share the CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

CONCURRENT_JOBS_ENV = "SEG58_CONCURRENT_JOBS"


class Seg58Sweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from seg58.checks import ConfigError, config_problems
        from seg58.errors import UserFacingError

        loader = self.hydra_context.config_loader
        problems, first = [], None
        for overrides in batch:
            cfg = loader.load_sweep_config(master_config=self.config, sweep_overrides=list(overrides))
            first = first or cfg
            problems += [f"[{' '.join(overrides)}] {p}" for p in config_problems(cfg)]
        if problems:
            raise UserFacingError(str(ConfigError(problems)))
        if first is not None and first.tracking.enabled:
            from seg58.tracking import ensure_store, resolve_uri

            ensure_store(resolve_uri(first.tracking.uri))
        if "submitit" in self.config.hydra.launcher._target_ and "Local" in self.config.hydra.launcher._target_:
            os.environ[CONCURRENT_JOBS_ENV] = str(len(batch))
