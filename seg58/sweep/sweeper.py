"""The sweeper: a grid or an Optuna search with one bookkeeping (seg58/sweep/book.py). Every
cell's config is checked before any job starts (all bad cells reported at once), the app's
tracking parent run is opened once, each cell is reported as it ends and kept in
<sweep dir>/sweep_summary.json, `hydra.sweeper.max_failures=K` cancels the rest after K failures
and `hydra.sweeper.rerun=<sweep dir>` launches only the cells that did not complete;
`hydra.sweeper.dry_run=true` checks and lists the cells and launches nothing (dry_run.py).

strategy=auto is a search when hydra.sweeper.n_trials is set or a param is an interval(), else a
grid; `hydra.sweeper.sample=N` runs a seeded random sample of N cells of a grid. With
launcher=slurm hydra.launcher.detach=true the sweep itself runs as a SLURM job (detach.py).
It implements Hydra's public Sweeper interface; its keys are schema.py's. Hydra's plugin class
(hydra_plugins/seg58_sweeper/sweeper.py) is this class, renamed, turning SweepInterrupted into the
exit status; keep the module-level imports light: Hydra imports it on every start.
"""

from __future__ import annotations

import difflib
import logging
import random
from functools import cached_property
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper

from seg58.base.environment import environ_kept
from seg58.base.errors import ConfigError
from seg58.base.job_credentials import load_job_credentials
from seg58.config.user_errors import reported_as_user_errors
from seg58.sweep.book import OK_STATES, SweepBook, sweep_kind, unfinished_cells, use_sweep_dir
from seg58.sweep.budget import Budget
from seg58.sweep.checks import CellComposer
from seg58.sweep.folds import ALL, expand_folds
from seg58.sweep.hooks import SweepHooks
from seg58.sweep.interrupt import SweepInterrupted
from seg58.sweep.lock import DriverLock, refuse_if_driven
from seg58.sweep.policy import FailurePolicy
from seg58.sweep.private_apis import sweep_cells
from seg58.sweep.retention import Retention
from seg58.sweep.schema import SEARCH_KEYS, SWEEPER_KEYS
from seg58.sweep.space import parse_space, plain

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "grid", "search")


class GridOrSearchSweeper(Sweeper):
    """Hydra's Sweeper interface (setup, sweep); its keys are seg58/sweep/schema.py's."""

    def __init__(self, **keys: Any) -> None:
        settings = {**SWEEPER_KEYS, **keys}
        self.unknown = sorted(set(keys) - set(SWEEPER_KEYS))  # added with +hydra.sweeper.<key>=...
        self.strategy, self.rerun, self.sample = settings["strategy"], settings["rerun"], settings["sample"]
        self.sample_seed, self.max_batch_size = settings["sample_seed"], settings["max_batch_size"]
        self.params = settings["params"] or {}
        self.max_failures, self.max_failure_rate = settings["max_failures"], settings["max_failure_rate"]
        self.hooks = SweepHooks() if settings["hooks"] is None else settings["hooks"]
        self.budget, self._budget_problems = Budget.from_settings(settings["budget"])
        self.keep_checkpoints = settings["keep_checkpoints"]
        self.metric, self.dry_run = plain(settings["metric"]), settings["dry_run"]
        self.search = {k: settings[k] for k in SEARCH_KEYS}  # n_trials, n_jobs, direction, sampler, ...
        self.hydra_context: Any = None
        self.config: Any = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        """Hydra's interface: the launcher the config chooses, for this task."""
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def _parse_config(self) -> list[str]:
        """hydra.sweeper.params as override lines (before the command line's, as Hydra's basic sweeper)."""
        return [f"{k}={v}" for k, v in self.params.items()]

    def problems(self) -> list[str]:
        """Settings that cannot run, each naming its key (refused in one message, no traceback)."""
        problems = []
        valid = sorted(SWEEPER_KEYS)
        for key in self.unknown:
            near = difflib.get_close_matches(key, valid, n=1)
            problems.append(f"hydra.sweeper.{key}: not a key of the seg58 sweeper"
                            + (f" (did you mean {near[0]}?)" if near else "") + f"; valid: {', '.join(valid)}")
        if self.strategy not in STRATEGIES:
            problems.append(f"hydra.sweeper.strategy={self.strategy!r}; valid: {', '.join(STRATEGIES)}")
        if self.max_failures is not None and self.max_failures < 1:
            problems.append(f"hydra.sweeper.max_failures={self.max_failures}: at least 1 (null: never stop early)")
        if self.keep_checkpoints is not None and self.keep_checkpoints < 0:
            problems.append(f"hydra.sweeper.keep_checkpoints={self.keep_checkpoints}: 0 or more (null: keep all)")
        if self.max_failure_rate is not None and not 0.0 <= self.max_failure_rate <= 1.0:
            problems.append(f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: between 0 and 1")
        problems += self._budget_problems
        if not isinstance(self.hooks, SweepHooks):
            problems.append(f"hydra.sweeper.hooks: {type(self.hooks).__name__} is not a seg58.sweep.hooks.SweepHooks")
        direction, metric = plain(self.search.get("direction", "minimize")), self.metric
        directions = direction if isinstance(direction, list) else [direction]
        if not directions or any(str(d) not in ("minimize", "maximize") for d in directions):
            problems.append(f"hydra.sweeper.direction={direction}: minimize, maximize, or a list of them "
                            "(a multi-objective search)")
        elif (isinstance(direction, list) != isinstance(metric, list) and metric is not None) or \
                (isinstance(metric, list) and len(metric) != len(directions)):
            problems.append(f"hydra.sweeper.metric={metric}: one metric per direction ({direction}), or null "
                            "when the task returns the objective(s) itself")
        return problems

    # -- what to run ------------------------------------------------------------------------
    @cached_property
    def resumed_grid(self) -> Path | None:
        """hydra.sweeper.resume=<a grid's folder>: that folder (a search's: None). The summary is
        read once (asked by searching(), cells() and the grid's run)."""
        resume = self.search.get("resume")
        return Path(resume) if resume and sweep_kind(Path(resume)) == "grid" else None

    def searching(self, arguments: list[str]) -> bool:
        if self.resumed_grid:
            return False
        if self.strategy != "auto":
            return self.strategy == "search"
        if self.search.get("resume") or self.search.get("n_trials") is not None:
            return True
        parser = OverridesParser.create()
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        return any(o.is_interval_sweep() for o in overrides)

    def cells(self, arguments: list[str]) -> list[list[str]]:
        if self.rerun or self.resumed_grid:
            return unfinished_cells(Path(self.rerun or self.resumed_grid))
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        cells = [list(c) for c in sweep_cells(overrides)]
        if self.hooks.fold_key:
            cells = expand_folds(cells, self.hooks.fold_key, self._folds_of)
        if self.sample is not None and self.sample < len(cells):
            keep = sorted(random.Random(self.sample_seed).sample(range(len(cells)), self.sample))
            log.info("sampling %d of the grid's %d cells (hydra.sweeper.sample_seed=%d)",
                     self.sample, len(cells), self.sample_seed)
            cells = [cells[i] for i in keep]
        return cells

    def _folds_of(self, cell: list[str]) -> list[str] | None:
        key = self.hooks.fold_key
        given = [o.split("=", 1)[1] for o in cell if o.split("=", 1)[0] == key]
        if given and given[-1] != ALL:
            return None  # one fold named: no need to compose the cell to know
        if not given and not self._may_be_all(cell, key):
            return None  # the cell's group choices do not ask for every fold, nor do its overrides
        return self.composer.check(cell, self.hooks.fold_values)

    def _may_be_all(self, cell: list[str], key: str) -> bool:
        try:
            written = self.composer.base_value(cell, key)
        except Exception:  # the full check below names the problem
            return True
        return written == ALL or (isinstance(written, str) and "${" in written)

    @property
    def composer(self) -> CellComposer:
        """Cells' configs, composed once per distinct group choices (sweep/checks.py)."""
        if getattr(self, "_composer", None) is None:
            self._composer = CellComposer(self.hydra_context.config_loader, self.config)
        return self._composer

    def search_base(self, arguments: list[str]) -> list[list[str]]:
        """A search's base config (its fixed overrides); a resumed one was checked when it began."""
        if self.search.get("resume"):
            return []
        return [parse_space(plain(self.params), arguments)[1]]

    def book(self, kind: str) -> SweepBook:
        book = SweepBook(Path(str(self.config.hydra.sweep.dir)), kind, self.hydra_context.config_loader,
                         self.config, self.launcher, self.hooks, self.metric, composer=self.composer)
        book.retention = Retention(self.keep_checkpoints, plain(self.search.get("direction")), self.hooks.checkpoints)
        return book

    def policy(self) -> FailurePolicy:
        return FailurePolicy(self.max_failures, self.max_failure_rate)

    # -- Hydra's entry point ------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> Any:
        with reported_as_user_errors(), environ_kept():  # bad input: one message, no traceback
            load_job_credentials(own=True)  # a detached sweep's driver: the passwords the login node kept from SLURM
            if self.problems():
                raise ConfigError(self.problems())
            try:
                return self._sweep(arguments)
            except KeyboardInterrupt:  # before any cell started (afterwards interrupt.py tidies up)
                log.warning("interrupted before any cell started: nothing was launched")
                raise SweepInterrupted("before any cell started") from None

    def _sweep(self, arguments: list[str]) -> Any:
        searching = self.searching(arguments)
        if self.dry_run:
            from seg58.sweep.dry_run import dry_run

            return dry_run(self, arguments, searching)
        folder = Path(self.search.get("resume") or str(self.config.hydra.sweep.dir))
        if self.rerun:
            refuse_if_driven(Path(self.rerun), "hydra.sweeper.rerun")
        if getattr(self.launcher, "detach", False):
            from seg58.sweep.detach import detach

            refuse_if_driven(folder, "hydra.sweeper.resume")
            book = self.book("search" if searching else "grid")
            book.check(self.search_base(arguments) if searching else self.cells(arguments))  # before queueing
            return detach(self.config, self.launcher, book)
        with DriverLock(folder, "hydra.sweeper.resume" if self.search.get("resume") else "this sweep"):
            return self._run(arguments, searching)

    def _run(self, arguments: list[str], searching: bool) -> Any:
        if searching:
            from seg58.sweep.search import Search

            # Hydra instantiated sampler/pruner already; the trials need their specs to rebuild them
            raw = {k: self.config.hydra.sweeper.get(k) for k in ("sampler", "pruner")}
            Search(self.config, self.hydra_context, self.launcher, params=self.params,
                   book=self.book("search"), policy=self.policy(), budget=self.budget, metric=self.metric,
                   **{**self.search, **raw}).sweep(arguments)
            return None  # as hydra-optuna-sweeper's: the results are in the sweep folder's files
        from seg58.sweep.grid import run_grid

        resumed = self.resumed_grid
        cells = self.cells(arguments)
        if not cells:
            log.info("every cell of %s completed: nothing to run again", self.rerun or resumed)
            return []
        if resumed:
            use_sweep_dir(self.config, resumed)
        book = self.book("grid")
        book.check(cells)  # every cell, before the first job
        numbered = list(enumerate(cells))
        if resumed:
            book.resume()
            numbered = [(c["num"], c["overrides"]) for c in book.cells if c["status"] not in OK_STATES]
            log.info("resuming grid %s: %d of its %d cell(s) did not complete", resumed, len(numbered),
                     len(book.cells))
        spec = " ".join(arguments) or f"rerun of {self.rerun}" if not resumed else f"resume of {resumed}"
        return run_grid(book, self.policy(), self.launcher, numbered, self.max_batch_size, arguments, spec,
                        self.hooks.rerun_command(self.config), resumed=bool(resumed), budget=self.budget)
