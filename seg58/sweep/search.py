"""Adaptive search with Optuna (ask/tell), pruning through every launcher, and resume.

The study lives in the sweep folder (a journal file that works on a shared filesystem across
SLURM nodes, or hydra.sweeper.storage=<RDB URL>). Trials start as soon as a slot frees (up to
hydra.sweeper.n_jobs in flight); each trial reports its per-epoch metric to the study and stops
when the pruner says so (seg58/sweep/trial.py). hydra.sweeper.resume=<sweep dir> continues a crashed
or interrupted study: finished trials are kept, trials that were running are marked FAIL and
retried with the same parameters, numbering continues and n_trials counts the total.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from seg58.base.errors import ConfigError, UsageError
from seg58.base.names import JOURNAL_FILE, MULTIRUN_CONFIG, STUDY_ENV, SUMMARY_FILE
from seg58.base.names import SEARCH_STATE_FILE as STATE_FILE
from seg58.base.status import CellStatus
from seg58.sweep.book import OK_STATES, SweepBook, use_sweep_dir
from seg58.sweep.budget import Budget
from seg58.sweep.interrupt import Interruption
from seg58.sweep.policy import FailurePolicy
from seg58.sweep.pool import JobPool
from seg58.sweep.samplers import ask_untried, resumed_sampler, with_grid
from seg58.sweep.search_state import SearchState
from seg58.sweep.space import parse_space, plain, trial_overrides
from seg58.sweep.study import StudySpec, instantiate_spec, study_exists
from seg58.sweep.trial_results import no_objective, publish_results, retry_interrupted

log = logging.getLogger(__name__)

DEFAULT_TRIALS = 20  # hydra-optuna-sweeper's n_trials default


class Search:
    """One search sweep; the sweeper runs it when hydra.sweeper.n_trials is set (or strategy=search)."""

    def __init__(self, config: Any, hydra_context: Any, launcher: Any, *, n_trials: int | None = None,
                 n_jobs: int = 1, direction: Any = "minimize", metric: Any = None,
                 study_name: str | None = None, storage: str | None = None, sampler: Any = None, pruner: Any = None,
                 params: Any = None, resume: str | None = None, custom_search_space: str | None = None,
                 warm_start: Any = None, warm_start_enqueue_top: int = 0,
                 book: SweepBook, policy: FailurePolicy | None = None, budget: Budget | None = None) -> None:
        self.config, self.hydra_context, self.launcher, self.book = config, hydra_context, launcher, book
        self.policy, self.budget = policy or FailurePolicy(), budget or Budget()
        self.n_trials, self.n_jobs = DEFAULT_TRIALS if n_trials is None else n_trials, n_jobs
        self.direction, self.metric = plain(direction), plain(metric)  # lists: a multi-objective search
        self.study_name, self.storage, self.resume = study_name, storage, resume
        self.sampler, self.pruner, self.params = plain(sampler), plain(pruner), plain(params)
        if isinstance(self.direction, list) and self.pruner:
            log.warning("Optuna cannot prune a multi-objective study: running without hydra.sweeper.pruner (%s)",
                        self.pruner.get("_target_"))
            self.pruner = None
        self.custom_search_space = custom_search_space  # "module.fn": fn(config, trial) adds parameters
        self.warm_start, self.enqueue_top = list(plain(warm_start) or []), warm_start_enqueue_top
        self._state: SearchState | None = None  # written to search.json for `resume`
        self._exhausted = False  # the sampler has no new configuration to try
        self._trials: dict[int, Any] = {}  # trials in flight, by number
        self._returns: list[JobReturn] = []

    # -- the study --------------------------------------------------------------------
    def _open(self, arguments: list[str]) -> tuple[Any, StudySpec, dict, list[str]]:
        """(study, spec, space, fixed overrides) of a new search; its state kept for search.json."""
        if self.resume:
            return self._reopen()
        import optuna

        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        space, fixed = parse_space(self.params, arguments)
        spec = StudySpec(storage=self.storage or str(sweep_dir / JOURNAL_FILE),
                         study_name=self.study_name or f"seg58-{sweep_dir.parent.name}-{sweep_dir.name}",
                         metric=self.metric, direction=self.direction, pruner=self.pruner)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self.sampler = with_grid(self.sampler, space)
        storage = spec.storage_object()
        if self.storage and self.study_name and study_exists(storage, self.study_name):
            log.info("study %s exists in %s: continuing it (its trials count towards n_trials=%d)",
                     self.study_name, self.storage, self.n_trials)
        directions = {"directions": self.direction} if isinstance(self.direction, list) else \
            {"direction": self.direction}
        study = optuna.create_study(storage=storage, study_name=spec.study_name, **directions,
                                    pruner=spec.make_pruner(), load_if_exists=True,
                                    sampler=instantiate_spec(self.sampler) if self.sampler else None)
        if isinstance(self.metric, list) and not study.metric_names:
            import warnings

            with warnings.catch_warnings():  # experimental in Optuna 5: names the objectives in plots, tables
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(self.metric)
        if self.warm_start and not [t for t in study.get_trials(deepcopy=False)]:  # a new study only
            from seg58.sweep.warm_start import add_prior_trials

            log.info("%s", add_prior_trials(study, space, fixed, self.warm_start, self.enqueue_top))
        raw = {k: str(v) for k, v in (self.params or {}).items()}
        raw.update({a.split("=", 1)[0]: a.split("=", 1)[1] for a in arguments if a not in fixed})
        raw = {k: v for k, v in raw.items() if k in space}  # not the keys the command line fixed
        self._state = SearchState(study=spec.__dict__, n_trials=self.n_trials, params=raw, fixed=fixed,
                                  sampler=self.sampler, custom_search_space=self.custom_search_space)
        return study, spec, space, fixed

    def _reopen(self) -> tuple[Any, StudySpec, dict, list[str]]:
        """hydra.sweeper.resume=<folder>: the search as its search.json left it."""
        folder = Path(self.resume)
        if not (folder / STATE_FILE).is_file():
            raise UsageError(f"hydra.sweeper.resume={self.resume}: no {STATE_FILE} there (not a seg58 search)")
        state = self._state = SearchState.load(folder, self.book.hooks.summary_keys)
        use_sweep_dir(self.config, folder)
        spec = StudySpec(**state.study)
        if "n_trials" in _explicit(self.config):  # a larger (or smaller) total from now on
            state.n_trials = self.n_trials
            state.save(folder)
        self.n_trials = state.n_trials
        space, _ = parse_space(state.params, [])
        self.custom_search_space = state.custom_search_space
        self.metric = self.book.metric = spec.metric
        study = spec.load()
        sampler = resumed_sampler(with_grid(state.sampler, space), len(study.get_trials(deepcopy=False)))
        if sampler is not None:  # none saved: the study keeps Optuna's default
            study.sampler = sampler
        return study, spec, space, state.fixed

    # -- the loop ---------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        study, spec, space, fixed = self._open(arguments)
        stop = Interruption()
        pool = JobPool(self.launcher, self.n_jobs, stop)
        self._begin(arguments, study, spec, fixed, pool)
        extend = self._custom_space()
        with stop:
            try:
                while (pool.busy() or self._more(study, pool, stop)) and not stop.requested:
                    self._spend(study, pool)
                    self._launch(study, space, fixed, pool, stop, extend)
                    self._collect(study, pool)
            except KeyboardInterrupt:  # in a trial trained in this process (Interruption raised it)
                if not stop.requested:
                    raise
            if stop.requested:
                self._interrupted(study, self.book, pool, self._trials)
        self._end(study)
        return self._returns

    def _begin(self, arguments: list[str], study: Any, spec: StudySpec, fixed: list[str], pool: JobPool) -> None:
        """Check the base config, open the sweep's tracking, save search.json (a new search) or retry
        what a crash left running (a resumed one), and record the study in the summary."""
        book, state = self.book, self._state
        book.sweep_dir = Path(str(self.config.hydra.sweep.dir))  # a resumed search: the original folder
        book.check([fixed])  # the base config; each sampled trial is checked before it starts
        if self.n_jobs > pool.slots:
            log.warning("hydra.sweeper.n_jobs=%d but this launcher runs %d trial(s) at a time%s", self.n_jobs,
                        pool.slots, "" if pool.asynchronous else ": use launcher=local_parallel or slurm")
        self.policy.watch(pool.slots)
        book.start(arguments, concurrent_jobs=pool.slots, resumed=state.hooked if self.resume else None,
                   spec=f"search {spec.study_name}: " + " ".join(f"{k}={v}" for k, v in state.params.items()))
        if self.resume:
            book.resume(facts=False)
            retry_interrupted(study, book)
        else:
            state.hooked = dict(book.hooked)
            state.save(book.sweep_dir)
        book.note(study=spec.study_name, storage=spec.storage, direction=spec.direction, metric=spec.metric)
        book.total = self.n_trials
        os.environ[STUDY_ENV] = spec.to_env()
        OmegaConf.save(self.config, book.sweep_dir / MULTIRUN_CONFIG)
        log.info("search %s: %d trial(s) to go of %d, %d at a time, %s %s", spec.study_name,
                 self.n_trials - counted(study), self.n_trials, pool.slots, spec.direction, spec.metric)

    def _more(self, study: Any, pool: JobPool, stop: Interruption) -> bool:
        """Whether to start another trial (in flight and ended trials short of n_trials, no reason to stop)."""
        return not self._exhausted and not self.book.stopped and not stop.requested and \
            counted(study) + len(pool.running) < self.n_trials

    def _launch(self, study: Any, space: dict, fixed: list[str], pool: JobPool, stop: Interruption,
                extend: Any) -> None:
        """New trials into the pool's free slots; one whose config is refused is recorded, never launched."""
        book = self.book
        while pool.free() > 0 and self._more(study, pool, stop):
            trial = ask_untried(study, space, extend)
            if trial is None:  # the sampler proposes only what was tried already
                self._exhausted = True
                return
            overrides = trial_overrides(trial.params, fixed)
            problems = book.problems(overrides)
            if problems:
                self._refuse(study, trial, overrides, problems)
                continue
            self._trials[trial.number] = trial
            started = pool.submit([(trial.number, overrides)],
                                  running=lambda n, o, p=trial.params: book.running(n, o, params=p))
            for num, job in started:
                if job is not None:
                    book.submitted(num, overrides, job, params=trial.params)

    def _refuse(self, study: Any, trial: Any, overrides: list[str], problems: list[str]) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("error", "; ".join(problems)[:2000])
        self._tell_study(study, trial, state=TrialState.FAIL)
        self.book.record(trial.number, _refused(overrides, problems), {}, params=trial.params)
        self.policy.check(self.book)

    def _spend(self, study: Any, pool: JobPool) -> None:
        """A spent budget: no new trial (_more); with on_exhausted=cancel the running ones are cancelled."""
        reason = self.budget.check(self.book)
        if reason and self.budget.cancels:
            for n, r, i in pool.cancel_all():
                self._returns.append(r)
                self._tell(study, self._trials.pop(n), r, i, self.book, cancelled=reason)

    def _collect(self, study: Any, pool: JobPool) -> None:
        """The trials that ended, told to the study; fail-fast cancels the rest (told as cancelled)."""
        for num, ret, info in pool.wait(lambda: self.book.idle() or self.budget.due(self.book)):
            self._returns.append(ret)
            self._tell(study, self._trials.pop(num), ret, info, self.book)
            reason = self.policy.check(self.book)
            if reason:
                for n, r, i in pool.cancel_all():
                    self._returns.append(r)
                    self._tell(study, self._trials.pop(n), r, i, self.book, cancelled=reason)

    def _end(self, study: Any) -> None:
        """The best trial or Pareto front published, the summary closed; raises if no trial completed."""
        book = self.book
        publish_results(study, book, self.metric, self.direction)
        completed = [c for c in book.cells if c["status"] in OK_STATES]
        others = Counter(str(c["status"]) for c in book.cells if c["status"] not in OK_STATES)
        if others:  # by the names the summary gives them (INTERRUPTED is not FAILED)
            log.warning("%d trial(s) did not complete (%s); they are in %s%s", sum(others.values()),
                        ", ".join(f"{n} {s}" for s, n in sorted(others.items())), book.sweep_dir / SUMMARY_FILE,
                        "" if book.stopped else " and did not stop the search")
        book.finish(f"more trials: {book.hooks.rerun_command(self.config)} hydra.sweeper.resume={book.sweep_dir} "
                    f"hydra.sweeper.n_trials=<total>", fail=not completed, brief=True)

    def _tell(self, study: Any, trial: Any, ret: JobReturn, info: dict, book: SweepBook,
              cancelled: str | None = None) -> None:
        from optuna.trial import TrialState

        extra = {"error": f"cancelled: {cancelled}", "cancelled_by_sweep": True} if cancelled else {}
        if cancelled and book.stop_kind == "budget":
            extra["stopped_by"] = "budget"
        cell = book.record(trial.number, ret, info, params=trial.params, **extra)
        if cell["status"] == CellStatus.PRUNED:
            self._tell_study(study, trial, state=TrialState.PRUNED)
        elif cell["status"] == CellStatus.COMPLETED and cell["objective"] is not None:
            self._tell_study(study, trial, cell["objective"])
        else:  # failed, cancelled, or a NaN objective: FAIL, with why
            if cell["status"] == CellStatus.COMPLETED:
                cell = {**cell, "status": CellStatus.FAILED, "error": no_objective(ret, self.metric)}
                book.put(cell)
            trial.set_user_attr("error", (cell["error"] or cell["status"])[:2000])
            self._tell_study(study, trial, state=TrialState.FAIL)

    def _interrupted(self, study: Any, book: SweepBook, pool: JobPool, trials: dict[int, Any]) -> None:
        """Ctrl-C: every running trial FAIL in the study (not counted, and retried with the same
        parameters when the search is resumed) and INTERRUPTED in the book; raises SweepInterrupted."""
        from optuna.trial import TrialState

        study.set_user_attr("interrupted", [*study.user_attrs.get("interrupted", []), *trials])
        for trial in trials.values():
            study.enqueue_trial(trial.params, skip_if_exists=False)
        for num in [n for n in trials if n not in pool.running]:  # the trial trained in this process
            self._tell_study(study, trials.pop(num), state=TrialState.FAIL)
        book.interrupt(pool, f"{book.hooks.rerun_command(self.config)} hydra.sweeper.resume={book.sweep_dir.resolve()}",
                       on_ended=lambda n, r, i: self._tell(study, trials.pop(n), r, i, book, cancelled="Ctrl-C"))

    def _tell_study(self, study: Any, trial: Any, value: float | list[float] | None = None, state: Any = None) -> None:
        """study.tell; a sampler that has exhausted its space (grid, brute force) calls
        study.stop(), which Optuna allows only inside optimize(): here it ends the search.
        Optuna stores the trial's result before the sampler runs, so nothing is lost."""
        try:
            study.tell(trial, value, state=state)
        except RuntimeError as e:
            if "Study.stop" not in str(e):
                raise
            log.info("the sampler has tried its whole search space: no new trials")
            self._exhausted = True

    def _custom_space(self) -> Any:
        """hydra-optuna-sweeper's custom_search_space: fn(config, trial) suggests more parameters;
        given with the sweep's config, so a trial is all it needs."""
        if not self.custom_search_space:
            return None
        from hydra.utils import get_method

        try:
            configure = get_method(self.custom_search_space)
        except Exception as e:
            raise ConfigError([f"hydra.sweeper.custom_search_space={self.custom_search_space}: {e}"]) from None
        return lambda trial: configure(self.config, trial)


def counted(study: Any) -> int:
    """Trials that ended on their own (not interrupted by a crash or Ctrl-C, not a repeat, not a warm start's)."""
    from optuna.trial import TrialState

    interrupted = set(study.user_attrs.get("interrupted", [])) | set(study.user_attrs.get("repeats", [])) \
        | set(study.user_attrs.get("prior", []))  # warm-start trials: not run here
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state not in (TrialState.RUNNING, TrialState.WAITING) and t.number not in interrupted)


def _refused(overrides: list[str], problems: list[str]) -> JobReturn:
    return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=ConfigError(problems))


def _explicit(config: Any) -> set[str]:
    """hydra.sweeper.* keys given on this command line."""
    return {o.split("=", 1)[0].removeprefix("hydra.sweeper.") for o in config.hydra.overrides.hydra
            if o.startswith("hydra.sweeper.")}

