"""`hydra.sweeper.dry_run=true`: what a sweep would do, without doing it. Every cell of
a grid is composed and checked (a search: a seeded sample of its space); the count, the first
cells, every refused cell and what the launcher would ask for are printed. Nothing is launched,
no folder is made, nothing goes to MLflow or Optuna's storage. Exit 2 when a cell is refused."""

from __future__ import annotations

from typing import Any

from seg58.base.errors import ConfigError
from seg58.config.user_errors import UserFacingError
from seg58.sweep.checks import with_progress

SHOWN = 10  # cells listed in full
SEARCH_SAMPLE = 10  # configurations of a search's space drawn and checked


def dry_run(sweeper: Any, arguments: list[str], searching: bool) -> list:
    book = sweeper.book("search" if searching else "grid")
    if searching:
        cells, what = _search_sample(sweeper, arguments), "search"
    else:
        cells, what = sweeper.cells(arguments), "grid"
    refused = {}
    for num, overrides in enumerate(with_progress(cells, "checking cells")):
        problems = book.problems(overrides)
        if problems:
            refused[num] = problems
    lines = [_count_line(sweeper, what, len(cells))]
    lines += [f"  #{n} {' '.join(c)}" for n, c in enumerate(cells[:SHOWN])]
    if len(cells) > SHOWN:
        lines.append(f"  ... and {len(cells) - SHOWN} more")
    in_flight = sweeper.search.get("n_jobs", 1) if searching else len(cells)
    lines.append(f"resources: {resources(sweeper.launcher, in_flight)}")
    lines += _estimate(sweeper, sweeper.search.get("n_trials") or 20 if searching else len(cells))
    print("\n".join(lines))
    if refused:
        problems = [p for n in sorted(refused) for p in refused[n]]
        raise UserFacingError(f"dry run: {len(refused)} of {len(cells)} cell(s) would be refused\n"
                              + str(ConfigError(problems)))
    print(f"dry run: all {len(cells)} cell(s) pass their checks; nothing was launched or written")
    return []


def _count_line(sweeper: Any, what: str, n: int) -> str:
    if what == "search":
        trials = sweeper.search.get("n_trials") or 20
        return (f"dry run: a search of {trials} trial(s), {sweeper.search.get('n_jobs', 1)} at a time; "
                f"{n} configuration(s) drawn from its space and checked:")
    return f"dry run: a grid of {n} cell(s):"


def _search_sample(sweeper: Any, arguments: list[str]) -> list[list[str]]:
    """Configurations a random sampler draws from the search space (an in-memory study)."""
    import optuna

    from seg58.sweep.samplers import ask_untried
    from seg58.sweep.space import parse_space, plain, trial_overrides

    if sweeper.search.get("resume"):
        return []  # a resumed search's space was checked when it began
    space, fixed = parse_space(plain(sweeper.params), arguments)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    cells = []
    for _ in range(min(SEARCH_SAMPLE, sweeper.search.get("n_trials") or SEARCH_SAMPLE)):
        trial = ask_untried(study, space)
        if trial is None:
            break
        cells.append(trial_overrides(trial.params, fixed))
        study.tell(trial, 0.0)
    return cells


def resources(launcher: Any, cells: int) -> str:
    """What the launcher would ask for, in one line."""
    params = getattr(launcher, "params", None)
    if params is None:  # Hydra's basic launcher
        return "one cell at a time, in this process"
    if not hasattr(launcher, "array_size"):  # local subprocesses
        slots = launcher.capacity()
        return f"{cells} local job(s), {slots or 'all'} at a time on this machine"
    size = launcher.array_size()
    arrays = -(-cells // size)
    gpus = int(params.get("gpus_per_node") or 0) * int(params.get("nodes") or 1)
    hours = cells * int(params.get("timeout_min") or 0) / 60
    each = (f"{gpus} GPU(s), {params.get('cpus_per_task')} CPU(s), {params.get('mem_gb')} GB, "
            f"{params.get('timeout_min')} min limit, partition {params.get('partition') or '(default)'}")
    return (f"{cells} SLURM array task(s) in {arrays} array(s) of at most {size}, each array at most "
            f"{params.get('array_parallelism')} running at once, at most {launcher.capacity()} queued at once; "
            f"each task: {each}; at most {hours:,.0f} h of wall time"
            + (f" ({hours * gpus:,.0f} GPU-hours)" if gpus else ""))


def _estimate(sweeper: Any, n: int) -> list[str]:
    """The compute of n cells at the rate of the cells already measured (a rerun's or resume's
    folder), and what the budget allows at that rate; [] when nothing was measured or budgeted."""
    from pathlib import Path

    from seg58.sweep.book import SweepBook
    from seg58.sweep.cells import format_spent, spent

    folder = sweeper.rerun or sweeper.search.get("resume")
    measured = spent(SweepBook.load(Path(folder)).cells) if folder else {}
    lines = []
    if measured:
        rate = {k: v / measured["cells_measured"] for k, v in measured.items() if k.endswith("_hours")}
        lines.append(f"estimated {format_spent({k: v * n for k, v in rate.items()}).removeprefix('compute: ')} "
                     f"for {n} cell(s), at the rate of the {measured['cells_measured']} measured in {folder}")
        if sweeper.budget.gpu_hours and rate.get("gpu_hours"):
            lines.append(f"the budget of {sweeper.budget.gpu_hours:g} GPU-hours covers about "
                         f"{int(sweeper.budget.gpu_hours / rate['gpu_hours'])} cell(s) at that rate")
    if sweeper.budget:
        lines.append(f"budget: {_budget_line(sweeper.budget)}; then no new cell, the running ones "
                     + ("cancelled" if sweeper.budget.cancels else "finish"))
    return lines


def _budget_line(budget: Any) -> str:
    from seg58.sweep.budget import format_hours

    parts = ([f"{budget.gpu_hours:g} GPU-hours"] if budget.gpu_hours is not None else []) + \
        ([f"{format_hours(budget.wall_time_s)} of wall time"] if budget.wall_time_s is not None else [])
    return " or ".join(parts)
