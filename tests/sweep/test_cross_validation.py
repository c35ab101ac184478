"""Cross-validation end to end, real CLI, real MLflow, real Optuna: a grid of configurations with
one cell per fold, and searches whose trials run their folds in turn (reported, pruned)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from mlflow.tracking import MlflowClient

SMOKE = ["experiment=smoke"]
LOMO = ["data.split=leave_one_material_out", "data.split_holdout=all"]
MATERIALS = ["Canvas", "Film emulsion", "Paper", "Parchment", "Wood"]  # the synthetic data's


def _summary(tmp_path: Path) -> dict:
    (path,) = tmp_path.glob("multirun/*/*/sweep_summary.json")
    return json.loads(path.read_text())


def test_leave_one_material_out_of_two_configurations_is_one_sweep_with_a_fold_table(cli, tmp_path, tracking_uri):
    r = cli("-m", *SMOKE, *LOMO, "optim.lr=0.001,0.003")
    assert r.returncode == 0, r.stderr[-3000:]
    summary = _summary(tmp_path)
    cells = summary["cells"]
    assert len(cells) == 10 and all(c["status"] == "COMPLETED" for c in cells)
    table = summary["cross_validation"]
    assert [g["config"].split()[-1] for g in table] == ["optim.lr=0.001", "optim.lr=0.003"]
    for group in table:
        lr = group["config"].split()[-1]
        mine = {c["overrides"][-1].split("=", 1)[1].strip("'"): c["objective"] for c in cells if lr in c["overrides"]}
        assert sorted(group["folds"]) == MATERIALS and group["folds"] == mine
        assert abs(group["mean"] - statistics.fmean(mine.values())) < 1e-9
        assert abs(group["std"] - statistics.stdev(mine.values())) < 1e-9
    out = r.stdout + r.stderr
    assert "cross-validation of val/miou: mean ± std over folds" in out
    assert f"[0] {table[0]['mean']:.4f} ± {table[0]['std']:.4f}  (5 folds)  optim.lr=0.001" in out
    assert "Film emulsion" in out.split("cross-validation of val/miou")[1]
    # the same on the sweep's MLflow run, and in `seg58 report`
    client = MlflowClient(tracking_uri)
    parent = client.get_run(summary["mlflow_parent_run_id"])
    assert abs(parent.data.metrics["cv/1/mean"] - table[1]["mean"]) < 1e-9
    assert abs(parent.data.metrics["cv/0/fold/film_emulsion"] - table[0]["folds"]["Film emulsion"]) < 1e-9
    assert parent.data.tags["cv.1.config"].endswith("optim.lr=0.003")
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"cross_validation.json",
                                                                           "cross_validation.txt"}
    report = cli("report", str(Path(summary["sweep_dir"])), "--no-log")
    assert report.returncode == 0, report.stderr[-2000:]
    assert f"[1] {table[1]['mean']:.4f} ± {table[1]['std']:.4f}" in report.stdout


def test_a_searchs_trials_run_their_folds_in_turn_and_report_each_to_the_study(cli, tmp_path, tracking_uri):
    r = cli("-m", *SMOKE, "search=cv_wilcoxon", "data.split=kfold", "data.folds=3", "hydra.sweeper.n_trials=2")
    assert r.returncode == 0, r.stderr[-3000:]
    from optuna.trial import TrialState

    from seg58.sweep.study import StudySpec

    (folder,) = tmp_path.glob("multirun/*/*/search.json")
    study = StudySpec(**json.loads(folder.read_text())["study"]).load()
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:  # every fold reported at its own step; the objective is their mean
        assert sorted(t.intermediate_values) == [0, 1, 2]
        assert abs(t.value - statistics.fmean(t.intermediate_values.values())) < 1e-9
    client = MlflowClient(tracking_uri)
    parent = _summary(tmp_path)["mlflow_parent_run_id"]
    exp = client.get_run(parent).info.experiment_id
    cv_runs = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(cv_runs) == 2 and all(run.data.tags["seg58.cross_validation"] == "true" for run in cv_runs)
    for run in cv_runs:
        folds = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
        assert sorted(f.data.tags["cv.fold"] for f in folds) == ["0", "1", "2"]
        trial = next(t for t in trials if str(t.number) == run.data.tags["search.trial"])
        assert abs(run.data.metrics["cv/mean"] - trial.value) < 1e-9
        assert abs(run.data.metrics["best/val_miou"] - trial.value) < 1e-9


def test_a_trial_is_pruned_between_folds_and_a_bad_fold_is_refused_up_front(cli, tmp_path):
    # ThresholdPruner(lower=1.1) prunes as soon as it may: after each trial's first fold
    pruner = ["hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner", "+hydra.sweeper.pruner.lower=1.1",
              "~hydra.sweeper.pruner.p_threshold", "~hydra.sweeper.pruner.n_startup_steps",
              "+hydra.sweeper.pruner.n_warmup_steps=0"]
    r = cli("-m", *SMOKE, "search=cv_wilcoxon", "data.split=kfold", "data.folds=3", "hydra.sweeper.n_trials=2",
            "tracking=none", *pruner)
    assert r.returncode == 0, r.stderr[-3000:]
    cells = _summary(tmp_path)["cells"]
    assert [c["status"] for c in cells] == ["PRUNED", "PRUNED"]
    assert all(c["cv_folds"] == 1 and "after 1 of 3 folds" in c["stop"]["detail"] for c in cells)
    bad = cli(*SMOKE, "data.split=kfold", "data.folds=3", "data.split_holdout=7")
    assert bad.returncode == 2 and "data.split_holdout='7': a fold number 0..2 (data.folds=3), or all" in bad.stderr
    bad = cli(*SMOKE, "data.split_holdout=all")
    assert bad.returncode == 2 and "data.split_holdout=all is a cross-validation" in bad.stderr
