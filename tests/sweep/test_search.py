"""Adaptive search with real Optuna, real MLflow and the real CLI: pruning, failures, resume;
grid sampling and early stopping."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PRUNING_SEARCH, mlflow_runs
from mlflow.tracking import MlflowClient

from seg58.base.errors import ConfigError
from seg58.sweep.space import parse_space, trial_overrides

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]
# Completed and pruned trials (conftest.PRUNING_SEARCH), and a NaN Dice weight with
# trainer.nonfinite=stop that fails its trial.
OUTCOMES = [*PRUNING_SEARCH, "hydra.sweeper.n_trials=4", "loss=dice_ce", "trainer.nonfinite=stop",
            "loss.weights.dice=choice(0.5,nan)"]


def sweep_dir(tmp_path: Path) -> Path:
    (folder,) = tmp_path.glob("multirun/*/*/sweep_summary.json")
    return folder.parent


def study_of(folder: Path):
    from seg58.sweep.study import StudySpec

    state = json.loads((folder / "search.json").read_text())
    return StudySpec(**state["study"]).load()


def test_search_space_grammar():
    space, fixed = parse_space({"optim.lr": "tag(log, interval(1e-5, 1e-1))", "loss": "choice(dice, dice_ce)"},
                               ["trainer.epochs=3", "trainer.batch_size=range(2, 10, 2)", "x=tag(int, interval(1, 5))"])
    assert fixed == ["trainer.epochs=3"]
    assert space["optim.lr"].log and (space["optim.lr"].low, space["optim.lr"].high) == (1e-5, 1e-1)
    assert space["loss"].choices == ("dice", "dice_ce")
    assert (space["trainer.batch_size"].low, space["trainer.batch_size"].high, space["trainer.batch_size"].step) == (
        2, 10, 2)  # stop included, as in hydra-optuna-sweeper
    assert (space["x"].low, space["x"].high) == (1, 5)
    assert trial_overrides({"optim.lr": 0.001, "loss": "dice"}, fixed) == [
        "trainer.epochs=3", "optim.lr=0.001", "loss=dice"]
    with pytest.raises(ConfigError, match=r"optim.lr=tag\(log, interval\(0, 1\)\)"):
        parse_space({"optim.lr": "tag(log, interval(0, 1))"}, [])
    assert parse_space(None, ["trainer.epochs=3"]) == ({}, ["trainer.epochs=3"])  # runs n_trials of it


def test_search_records_completed_pruned_and_failed_trials(cli, tmp_path):
    res = cli("-m", *SMOKE, *OUTCOMES, "tracking.experiment_name=search", timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]  # failed trials never stop a search
    folder = sweep_dir(tmp_path)
    cells = {c["num"]: c for c in json.loads((folder / "sweep_summary.json").read_text())["cells"]}
    assert sorted(cells) == [0, 1, 2, 3]
    # choice values stay typed (ints, floats, NaN), in the summary as in the study
    by_params = {(c["params"]["trainer.epochs"], str(c["params"]["loss.weights.dice"])): c for c in cells.values()}
    assert set(by_params) == {(1, "0.5"), (3, "0.5"), (1, "nan"), (3, "nan")}
    assert by_params[(1, "0.5")]["status"] == "COMPLETED" and by_params[(1, "0.5")]["epochs_trained"] == 1
    pruned = by_params[(3, "0.5")]
    assert pruned["status"] == "PRUNED" and pruned["epochs_trained"] == 2
    assert pruned["stop"] == {"kind": "pruned", "epoch": 2, "detail": ""}
    for key in ((1, "nan"), (3, "nan")):
        assert by_params[key]["status"] == "FAILED" and "non-finite loss" in by_params[key]["error"]
    # the study agrees
    states = {t.number: t.state.name for t in study_of(folder).trials}
    assert states == {n: {"COMPLETED": "COMPLETE", "PRUNED": "PRUNED", "FAILED": "FAIL"}[c["status"]]
                      for n, c in cells.items()}
    # and so does MLflow: the pruned run kept its metrics, marked as pruned
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = {r.data.tags["search.trial"]: r for r in mlflow_runs(uri, "search")}
    p = runs[str(pruned["num"])]
    assert p.info.status == "KILLED" and p.data.tags["stop.kind"] == "pruned" and p.data.tags["stop.epoch"] == "2"
    assert p.data.tags["stop_reason"] == "pruned at epoch 2"
    assert len(MlflowClient(uri).get_metric_history(p.info.run_id, "val/miou")) == 2
    # on disk (hydra.sweeper.keep_checkpoints=3): the completed trial its best.pt only, the others nothing
    on_disk = {c["num"]: sorted(p.name for p in Path(c["output_dir"]).glob("checkpoints/*.pt")) for c in cells.values()}
    assert on_disk == {c["num"]: ["best.pt"] if c["status"] == "COMPLETED" else [] for c in cells.values()}
    assert runs[str(by_params[(1, "0.5")]["num"])].info.status == "FINISHED"
    (parent,) = [r for r in mlflow_runs(uri, "search", include_sweeps=True) if r.data.tags.get("seg58.sweep")]
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(parent.info.run_id, "search")}
    assert "search/optimization_history.png" in artifacts
    # `seg58 gc --delete-failed-runs`: the failed trials' runs go to MLflow's trash, the others stay
    done = cli("gc", str(folder), "--delete-failed-runs")
    assert done.returncode == 0 and "MLflow: 2 failed run(s) deleted" in done.stdout, done.stdout + done.stderr
    stages = {n: MlflowClient(uri).get_run(r.info.run_id).info.lifecycle_stage for n, r in runs.items()}
    assert stages == {str(n): "deleted" if c["status"] == "FAILED" else "active" for n, c in cells.items()}


def test_killed_search_resumes_with_numbering_and_total_intact(cli, tmp_path, cache_dir):
    args = [*SMOKE, "search=smoke", "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=null",
            "trainer.epochs=6", "tracking.experiment_name=resume"]
    env = {**os.environ, "SEG58_CACHE_DIR": str(cache_dir), "PYTHONUNBUFFERED": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    proc = subprocess.Popen([sys.executable, "-m", "seg58", "-m", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(tmp_path.glob("multirun/*/*/1/checkpoints/last.pt")) and time.time() < deadline:
        time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)  # trial 0 done, trial 1 mid-training
    proc.wait()
    (folder,) = [p.parent for p in tmp_path.glob("multirun/*/*/search.json")]
    assert [t.state.name for t in study_of(folder).trials] == ["COMPLETE", "RUNNING"]

    res = cli("-m", f"hydra.sweeper.resume={folder}", timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    trials = study_of(folder).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]  # numbering continued
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].params == trials[1].params  # the interrupted trial was tried again
    cells = json.loads((folder / "sweep_summary.json").read_text())["cells"]
    assert [c["status"] for c in cells] == ["COMPLETED", "INTERRUPTED", "COMPLETED", "COMPLETED"]
    assert sorted(p.name for p in folder.iterdir() if p.name.isdigit()) == ["0", "1", "2", "3"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = mlflow_runs(uri, "resume")
    assert sorted(r.data.tags["search.trial"] for r in runs) == ["0", "1", "2", "3"]  # one run per trial
    assert {r.data.tags["search.trial"]: r.info.status for r in runs}["1"] == "KILLED"
    sweeps = [r for r in mlflow_runs(uri, "resume", include_sweeps=True) if r.data.tags.get("seg58.sweep")]
    assert len(sweeps) == 1  # the resumed search reports into the same parent run


def test_grid_sample_runs_a_seeded_subset(cli, tmp_path):
    res = cli("-m", *SMOKE, "seed=1,2,3,4,5", "hydra.sweeper.sample=2", "hydra.sweeper.sample_seed=7")
    assert res.returncode == 0, res.stderr[-3000:]
    expected = sorted(random.Random(7).sample(range(5), 2))
    cells = json.loads((sweep_dir(tmp_path) / "sweep_summary.json").read_text())["cells"]
    assert [c["overrides"][-1] for c in cells] == [f"seed={i + 1}" for i in expected]
    assert sorted(r.data.params["seed"] for r in mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "smoke")) == [
        str(i + 1) for i in expected]


def test_search_prunes_through_local_parallel_with_two_trials_in_flight(cli, tmp_path):
    res = cli("-m", *SMOKE, *PRUNING_SEARCH, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
              "launcher=local_parallel", timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    cells = {c["params"]["trainer.epochs"]: c for c in
             json.loads((sweep_dir(tmp_path) / "sweep_summary.json").read_text())["cells"]}
    assert (cells[1]["status"], cells[3]["status"], cells[3]["epochs_trained"]) == ("COMPLETED", "PRUNED", 2)
    assert all(c["job_id"] for c in cells.values())  # submitit jobs, not in-process
    logs = [p.read_text() for p in sweep_dir(tmp_path).glob("[01]/seg58.log")]
    assert len(logs) == 2 and all("threads=1 " in log for log in logs)  # the 2 cores shared by 2 trials


def test_a_value_fixed_on_the_command_line_wins_over_the_presets_space(cli, tmp_path):
    """`python -m seg58 -m search=lr_wd loss=dice` (issue #19): the preset searches loss, the
    command line fixes it, so every trial trains Dice and the study does not search loss."""
    res = cli("-m", "search=lr_wd", "loss=dice", *SMOKE, "hydra.sweeper.n_trials=2", "trainer.epochs=1",
              timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert "loss=dice is fixed: not searched" in res.stdout + res.stderr
    folder = sweep_dir(tmp_path)
    cells = json.loads((folder / "sweep_summary.json").read_text())["cells"]
    assert len(cells) == 2 and all(set(c["params"]) == {"optim.lr", "optim.weight_decay"} for c in cells)
    assert all([o for o in c["overrides"] if o.startswith("loss=")] == ["loss=dice"] for c in cells)
    assert all(set(t.params) == {"optim.lr", "optim.weight_decay"} for t in study_of(folder).trials)
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "smoke")
    assert len(runs) == 2
    assert {r.data.params["loss._target_"] for r in runs} == {"segmentation_models_pytorch.losses.DiceLoss"}


def test_a_pareto_search_ends_with_its_front_in_the_summary_the_parent_run_and_the_report(cli, tmp_path):
    """search=pareto: accuracy against a cost every run measures; Optuna cannot prune such a study,
    so a pruner given is dropped with a warning."""
    res = cli("-m", "search=pareto", *SMOKE, "~hydra.sweeper.params.encoder", "~hydra.sweeper.params.model",
              "model=choice(unet,fpn)", "hydra.sweeper.metric=[val/miou,cost/params_m]", "hydra.sweeper.n_trials=4",
              "hydra.sweeper.sampler.population_size=2",
              "hydra.sweeper.pruner={_target_: optuna.pruners.MedianPruner}", timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "Optuna cannot prune a multi-objective study" in out
    folder = sweep_dir(tmp_path)
    summary = json.loads((folder / "sweep_summary.json").read_text())
    cells = {c["num"]: c for c in summary["cells"]}
    assert all(c["status"] == "COMPLETED" and len(c["objective"]) == 2 for c in cells.values())
    front = summary["pareto_front"]
    assert front and all(cells[p["trial"]]["objective"] == p["values"] for p in front)
    # nothing outside the front dominates a member of it (higher mIoU and fewer parameters)
    for p in front:
        assert not any(c["objective"][0] > p["values"][0] and c["objective"][1] < p["values"][1]
                       for c in cells.values())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (parent,) = [r for r in mlflow_runs(uri, "smoke", include_sweeps=True) if r.data.tags.get("seg58.sweep")]
    assert parent.data.tags["pareto.trials"] == ",".join(str(p["trial"]) for p in front)
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(parent.info.run_id, "search")}
    assert {"search/pareto_front.md", "search/pareto_front.png"} <= artifacts
    runs = mlflow_runs(uri, "smoke")
    assert all("cost/params_m" in r.data.metrics and "cost/infer_ms" in r.data.metrics for r in runs)
    report = cli("report", str(folder))
    assert report.returncode == 0 and "Pareto front" in report.stdout and "cost/params_m (minimize)" in report.stdout
