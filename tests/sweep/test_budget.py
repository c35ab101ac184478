"""Budgets (hydra.sweeper.budget.*): a sweep stops submitting once its cells' GPU-hours or its own
wall time reach the budget, on every launcher; the running cells finish or are cancelled; the stop
is the sweep's own (`stop` in the summary, on the parent run); a resume counts what was spent
before. The toy app reports `cost/gpu_hours` as seg58's runs do, so the point is exact."""

from __future__ import annotations

import json

import pytest
from app_runs import statuses

from seg58.sweep.budget import Budget, seconds_of

GRID = ["as_dict=true", "hydra.sweeper.metric=loss", "gpu_hours=0.4", "x=0,1,2,3,4,5"]


def test_budget_settings_take_units_and_refuse_what_cannot_be_a_budget():
    assert [seconds_of(v, "k") for v in (90, "90s", "45m", "2h", "1.5d", " 3 h ")] == \
        [90, 90, 2700, 7200, 129600, 10800]
    budget, problems = Budget.from_settings({"gpu_hours": 2, "wall_time": "45m", "on_exhausted": "cancel"})
    assert budget == Budget(2.0, 2700.0, "cancel") and problems == [] and budget.cancels
    assert not Budget.from_settings({"gpu_hours": None, "wall_time": None})[0]  # no budget
    _, problems = Budget.from_settings({"gpu_hours": -1, "wall_time": "soon", "on_exhausted": "stop"})
    assert problems == ["hydra.sweeper.budget.gpu_hours=-1: a positive number (null: no budget)",
                        "hydra.sweeper.budget.wall_time=soon: seconds, or a duration such as 90s, 45m, 2h",
                        "hydra.sweeper.budget.on_exhausted=stop; valid: finish, cancel"]
    assert Budget(1.0).reason(0.99, 10**6) is None
    assert "1 of hydra.sweeper.budget.gpu_hours=1 GPU-hours" in Budget(1.0).reason(1.0, 0)
    assert "of the sweep's wall time" in Budget(None, 60.0).reason(0, 60.0)


def test_a_grid_stops_at_its_gpu_hours_and_a_resume_with_a_new_total_goes_on(app, tmp_path):
    """One cell at a time (Hydra's basic launcher), 0.4 GPU-h each: a budget of 1 GPU-h lets three
    cells run (0.8 < 1 before the third); the others are CANCELLED, not failures (exit 0). Resumed
    with 2 GPU-h, the spent 1.2 counts: two more cells run."""
    out, summary = app("toy", "app.py", *GRID, "hydra.sweeper.budget.gpu_hours=1")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert statuses(summary) == ["COMPLETED"] * 3 + ["CANCELLED"] * 3
    assert all(c.get("stopped_by") == "budget" for c in summary["cells"][3:])
    assert summary["stop"]["kind"] == "budget" and summary["stop"]["spent"]["gpu_hours"] == pytest.approx(1.2)
    assert summary["cost"] == {"gpu_hours": pytest.approx(1.2), "cells_measured": 3}
    log = out.stdout + out.stderr
    assert "budget spent: 1.2 of hydra.sweeper.budget.gpu_hours=1 GPU-hours" in log
    assert "3 cell(s) not run or cut short" in log and "Traceback" not in log

    sweep_dir = tmp_path / "toy" / summary["sweep_dir"]
    out, resumed = app("toy", "app.py", f"hydra.sweeper.resume={sweep_dir}", "hydra.sweeper.budget.gpu_hours=2")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert statuses(resumed) == ["COMPLETED"] * 5 + ["CANCELLED"]
    assert resumed["stop"]["kind"] == "budget" and resumed["cost"]["gpu_hours"] == pytest.approx(2.0)
    assert resumed["wall_time_s"] > summary["wall_time_s"]  # the first driver's time counts

    # a dry run of the rest estimates from the measured cells, and what a budget covers
    out, _ = app("toy", "app.py", f"hydra.sweeper.rerun={sweep_dir}", "hydra.sweeper.dry_run=true",
                 "hydra.sweeper.budget.gpu_hours=2")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert f"estimated 0.4 GPU-h for 1 cell(s), at the rate of the 5 measured in {sweep_dir}" in out.stdout
    assert "the budget of 2 GPU-hours covers about 5 cell(s) at that rate" in out.stdout


def test_a_search_on_local_jobs_cancels_its_running_trials_when_its_wall_time_is_spent(app, tmp_path):
    """Trials that would run forever (hold_while) in two local jobs: at 4 s of wall time the search
    submits nothing more and, with on_exhausted=cancel, cancels both; nothing is left RUNNING."""
    hold = tmp_path / "hold"
    hold.touch()
    out, summary = app("toy", "app.py", "hydra/launcher=seg58_local", "hydra.launcher.gpus=[]",
                       "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=2", "x=interval(0,2)", f"hold_while={hold}",
                       "hydra.sweeper.budget.wall_time=4s", "hydra.sweeper.budget.on_exhausted=cancel")
    log = out.stdout + out.stderr
    assert out.returncode == 1 and "of the sweep's wall time: no new cell is submitted; the running cells are " \
        "cancelled\nno trial completed\n2 of 2 trials did not complete" in log, log[-3000:]
    assert statuses(summary) == ["CANCELLED", "CANCELLED"]  # two in flight, none submitted after
    assert all(c["stopped_by"] == "budget" for c in summary["cells"])
    assert summary["stop"]["kind"] == "budget" and "hydra.sweeper.budget.wall_time=4 s" in summary["stop"]["reason"]
    assert summary["wall_time_s"] >= 4


def test_the_sweeps_stop_and_cost_go_onto_its_parent_run(tracking_uri):
    from mlflow.tracking import MlflowClient

    from seg58.tracking.sweep_run import log_sweep_totals

    uri = tracking_uri
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("sweeps")).info.run_id
    log_sweep_totals(uri, run, {"gpu_hours": 1.5, "cpu_hours": 12.0, "cells_measured": 3},
                     {"kind": "budget", "reason": "budget spent: 1.5 of ..."})
    data = client.get_run(run).data
    assert {k: v for k, v in data.metrics.items()} == {"cost/gpu_hours": 1.5, "cost/cpu_hours": 12.0,
                                                       "cost/cells_measured": 3}
    assert data.tags["stop.kind"] == "budget" and data.tags["stop_reason"] == "budget spent: 1.5 of ..."


def test_the_wall_time_of_a_sweep_counts_its_earlier_drivers(tmp_path):
    from seg58.sweep.book import SweepBook

    book = SweepBook(tmp_path, "grid")
    book.start([], concurrent_jobs=1)
    book.write(force=True)
    first = json.loads((tmp_path / "sweep_summary.json").read_text())["wall_time_s"]
    again = SweepBook(tmp_path, "grid")
    again.resume()
    assert again.wall_time() == first  # before it starts: the earlier drivers' time only
    again.start([], concurrent_jobs=1)
    assert again.wall_time() > first
