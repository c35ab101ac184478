"""The sweep layer's small records, in-process: the fail-fast policy decides and the book records;
a search's state round-trips through search.json, and a file written before the record reads."""

from __future__ import annotations

import json

from seg58.sweep.book import SweepBook
from seg58.sweep.hooks import SweepHooks
from seg58.sweep.policy import FailurePolicy
from seg58.sweep.search_state import SearchState


def test_the_policy_decides_from_counts_and_the_book_records_once(tmp_path):
    policy = FailurePolicy(max_failures=2)
    assert policy.reason(1, 5) is None and policy.reason(2, 5) == "hydra.sweeper.max_failures=2 reached"
    rate = FailurePolicy(max_failure_rate=0.5)
    rate.watch(4)  # four in flight: the rate waits for four to end
    assert rate.reason(3, 3) is None
    assert rate.reason(3, 4) == "hydra.sweeper.max_failure_rate=0.5 exceeded (3 of 4)"

    book = SweepBook(tmp_path, "grid")
    for num in range(2):
        book.put({"num": num, "overrides": [], "status": "FAILED", "output_dir": str(tmp_path)})
    why = policy.check(book)
    assert why.startswith("hydra.sweeper.max_failures=2 reached: 2 cell(s) failed") and book.stopped == why
    assert policy.check(book) is None  # decided once
    assert json.loads((tmp_path / "sweep_summary.json").read_text())["stopped"] == why


class TrackedHooks(SweepHooks):
    summary_keys = ("mlflow_parent_run_id",)


def test_the_hooks_facts_are_written_verbatim_and_read_back(tmp_path):
    book = SweepBook(tmp_path, "grid", hooks=TrackedHooks())
    book.hooked = {"mlflow_parent_run_id": "abc"}
    book.note(study="s")
    book.write(force=True)
    summary = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert summary["mlflow_parent_run_id"] == "abc" and summary["study"] == "s"
    again = SweepBook.load(tmp_path, TrackedHooks())
    assert again.hooked == {"mlflow_parent_run_id": "abc"} and again.fact("study") == "s"
    assert "mlflow_parent_run_id" not in SweepBook.load(tmp_path).hooked  # a plain app's hooks own nothing


def test_search_state_round_trips_and_reads_a_file_written_before_the_record(tmp_path):
    old = {"study": {"storage": "s", "study_name": "n", "metric": "m", "direction": "maximize", "pruner": None},
           "n_trials": 8, "params": {"optim.lr": "interval(0.1, 1)"}, "fixed": ["trainer.epochs=1"],
           "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": 0}, "custom_search_space": None,
           "mlflow_parent_run_id": "abc"}
    (tmp_path / "search.json").write_text(json.dumps(old, indent=2))
    state = SearchState.load(tmp_path, ("mlflow_parent_run_id",))
    assert state.n_trials == 8 and state.fixed == ["trainer.epochs=1"]
    assert state.hooked == {"mlflow_parent_run_id": "abc"}
    state.n_trials = 12
    state.save(tmp_path)
    assert json.loads((tmp_path / "search.json").read_text()) == {**old, "n_trials": 12}


def test_a_sweeps_compute_is_the_sum_of_its_cells_and_estimates_the_rest():
    from seg58.sweep.cells import format_spent, spent

    cells = [{"num": 0, "cost/gpu_hours": 0.5, "cost/cpu_hours": 4.0, "cost/params_m": 25.0},
             {"num": 1, "cost/gpu_hours": 0.25, "cost/cpu_hours": 2.0},
             {"num": 2, "status": "FAILED"}]  # reported nothing: not measured
    cost = spent(cells)
    assert cost == {"gpu_hours": 0.75, "cpu_hours": 6.0, "cells_measured": 2}  # model costs are not summed
    assert format_spent(cost, total=8) == "compute: 0.75 GPU-h, 6 CPU-h in 2 cell(s) (est. 3 GPU-h for all 8)"
    assert spent([{"num": 0}]) == {} and format_spent({}) == ""


def test_a_runs_compute_hours_continue_over_a_resume():
    from seg58.engine.hooks import ComputeHours

    hook = ComputeHours(gpus=2, cpus=8)
    hook.load_state_dict({"seconds": 1800.0})  # the attempt before the requeue: half an hour
    hook.on_fit_start(None)
    final = hook.finish(None)
    assert 1.0 <= final["cost/gpu_hours"] < 1.01 and 4.0 <= final["cost/cpu_hours"] < 4.04
    assert hook.state_dict()["seconds"] >= 1800.0  # what the next checkpoint carries
