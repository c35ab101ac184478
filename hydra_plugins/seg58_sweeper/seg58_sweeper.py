"""Hydra sweeper = BasicSweeper + checks before launch + a summary after (in hydra_plugins, as
Hydra requires of plugins).

Before any job starts: every cell's config is composed and checked (all bad cells reported at
once), the MLflow store is created once so concurrent jobs never race its schema migration, and
jobs launched side by side locally learn how many of them share the CPUs.
After the jobs: one failed job never hides the others. Every cell's outcome (status, SLURM job
id, log) is printed and written to <sweep dir>/sweep_summary.json, and
`hydra.sweeper.rerun=<sweep dir>` launches only the cells that did not complete.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus

from seg58.env import CONCURRENT_JOBS_ENV, PARENT_EXPERIMENT_ENV, PARENT_RUN_ENV

log = logging.getLogger(__name__)

SUMMARY_FILE = "sweep_summary.json"


class Seg58Sweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict | None = None,
                 rerun: str | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.rerun = rerun

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from seg58.checks import config_problems
        from seg58.errors import ConfigError
        from seg58.user_errors import UserFacingError

        loader = self.hydra_context.config_loader
        problems, first = [], None
        for overrides in batch:
            cfg = loader.load_sweep_config(master_config=self.config, sweep_overrides=list(overrides))
            first = first or cfg
            problems += [f"[{' '.join(overrides)}] {p}" for p in config_problems(cfg)]
        if problems:
            raise UserFacingError(str(ConfigError(problems)))
        if first is not None and first.tracking.enabled:
            from seg58.mlflow_store import ensure_store, resolve_uri

            ensure_store(resolve_uri(first.tracking.uri))
        from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher

        if isinstance(self.launcher, LocalLauncher):  # subprocesses on this machine, all at once
            os.environ[CONCURRENT_JOBS_ENV] = str(len(batch))

    def sweep(self, arguments: list[str]) -> Any:
        from seg58.user_errors import UserFacingError

        if self.rerun:
            self.overrides = [_unfinished_cells(Path(self.rerun))]
            if not self.overrides[0]:
                log.info("every cell of %s completed: nothing to rerun", self.rerun)
                return []
        else:
            parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
            overrides = parser.parse_overrides([*self._parse_config(), *arguments])
            self.overrides = self.split_arguments(overrides, self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        from omegaconf import OmegaConf

        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        returns, cells, idx, parent = [], [], 0, None
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            if parent is None and self.config.tracking.enabled:
                parent = self._start_parent_run(sweep_dir, arguments)
            results = self.launcher.launch(batch, initial_job_idx=idx)
            infos = getattr(self.launcher, "job_infos", None) or [{} for _ in results]
            cells += [_cell(idx + i, r, info, sweep_dir)
                      for i, (r, info) in enumerate(zip(results, infos, strict=True))]
            idx += len(batch)
            returns.append(results)

        self._close_lost_runs(cells)
        failed = [c for c in cells if c["status"] != "COMPLETED"]
        (sweep_dir / SUMMARY_FILE).write_text(json.dumps(
            {"sweep_dir": str(sweep_dir), "mlflow_parent_run_id": parent, "cells": cells}, indent=2))
        log.info("sweep summary (%s):\n%s", sweep_dir / SUMMARY_FILE, format_summary(cells))
        if parent is not None:
            from seg58.mlflow_store import finish_sweep_run

            finish_sweep_run(self.config.tracking.uri, parent, bool(failed), str(sweep_dir))
        if failed:
            raise UserFacingError(
                f"{len(failed)} of {len(cells)} sweep jobs did not complete:\n"
                + format_summary(failed)
                + f"\nrerun only those: python -m seg58 -m launcher={self._launcher_choice()} "
                f"hydra.sweeper.rerun={sweep_dir}"
            )
        return returns

    def _start_parent_run(self, sweep_dir: Path, arguments: list[str]) -> str:
        from seg58.mlflow_store import start_sweep_run

        t = self.config.tracking
        spec = " ".join(arguments) or f"rerun of {self.rerun}"
        parent = start_sweep_run(t.uri, t.experiment_name, sweep_dir, arguments, spec)
        os.environ[PARENT_RUN_ENV] = parent
        os.environ[PARENT_EXPERIMENT_ENV] = t.experiment_name
        return parent

    def _close_lost_runs(self, cells: list[dict]) -> None:
        """Jobs that ended without a result (cancelled, killed) never closed their MLflow run."""
        if not self.config.tracking.enabled:
            return
        from seg58.mlflow_store import mark_lost_run

        for c in cells:
            if c["status"] not in ("COMPLETED", "FAILED"):
                run_id_file = Path(c["output_dir"]) / "mlflow_run_id"
                c["mlflow_run_id"] = mark_lost_run(self.config.tracking.uri, run_id_file, c["status"])

    def _launcher_choice(self) -> str:
        return str(self.config.hydra.runtime.choices.get("launcher") or "local")


def _cell(num: int, ret: JobReturn, info: dict, sweep_dir: Path) -> dict:
    ok = ret.status == JobStatus.COMPLETED
    error = None if ok else ret._return_value
    state = info.get("state") or ("COMPLETED" if ok else "FAILED")
    return {
        "num": num,
        "overrides": list(ret.overrides or []),
        "status": state,
        "error": None if error is None else f"{type(error).__name__}: {error}".strip()[:2000],
        "best_val_miou": ret._return_value if ok and isinstance(ret._return_value, float) else None,
        "output_dir": str(ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg
                          else sweep_dir / str(num)),
        **{k: v for k, v in info.items() if k != "state"},
    }


def format_summary(cells: list[dict]) -> str:
    lines = []
    for c in cells:
        where = f" slurm={c['job_id']}" if c.get("job_id") else ""
        score = f" best_val_miou={c['best_val_miou']:.4f}" if c.get("best_val_miou") is not None else ""
        line = f"  #{c['num']} {c['status']:<10}{where}{score}  {' '.join(c['overrides'])}"
        if c["status"] != "COMPLETED":
            log_path = c.get("stderr") or c.get("output_dir")
            line += f"\n      error: {(c['error'] or '').splitlines()[0] if c['error'] else '?'}"
            line += f"\n      log: {log_path}" if log_path else ""
        lines.append(line)
    return "\n".join(lines)


def _unfinished_cells(sweep_dir: Path) -> list[list[str]]:
    from seg58.user_errors import UserFacingError

    summary = sweep_dir / SUMMARY_FILE
    if not summary.is_file():
        raise UserFacingError(f"hydra.sweeper.rerun={sweep_dir}: no {SUMMARY_FILE} there (not a seg58 sweep?)")
    cells = json.loads(summary.read_text())["cells"]
    return [c["overrides"] for c in cells if c["status"] != "COMPLETED"]
