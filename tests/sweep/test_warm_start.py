"""Warm starts (hydra.sweeper.warm_start): earlier searches' finished trials added to a new study,
on real Optuna studies in journal files; the toy app's search shows it end to end."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from seg58.base.errors import ConfigError
from seg58.sweep.samplers import ask_untried
from seg58.sweep.search import counted
from seg58.sweep.search_state import SearchState
from seg58.sweep.study import StudySpec
from seg58.sweep.warm_start import add_prior_trials

SPACE = {"x": FloatDistribution(0.0, 1.0), "y": CategoricalDistribution(["a", "b"])}


def earlier(tmp_path, name="old", fixed=("w=1",)) -> tuple[str, str]:
    """A finished search on disk: its sweep folder (search.json) and its storage+study. x in [0, 2],
    y a choice, z a key the new search does not have; one failed trial."""
    storage = str(tmp_path / f"{name}.journal")
    spec = StudySpec(storage=storage, study_name=name, direction="minimize")
    study = optuna.create_study(storage=spec.storage_object(), study_name=name)
    dists = {"x": FloatDistribution(0.0, 2.0), "y": CategoricalDistribution(["a", "b"]),
             "z": FloatDistribution(0.0, 1.0)}
    for x, y, value in [(0.1, "a", 3.0), (0.5, "b", 1.0), (0.9, "a", 2.0), (1.5, "b", 0.5)]:
        study.add_trial(optuna.trial.create_trial(params={"x": x, "y": y, "z": 0.3}, distributions=dists, value=value))
    study.add_trial(optuna.trial.create_trial(params={"x": 0.2, "y": "a", "z": 0.3}, distributions=dists,
                                              state=TrialState.FAIL))
    folder = tmp_path / name
    folder.mkdir()
    SearchState(study=spec.__dict__, n_trials=5, params={}, fixed=list(fixed)).save(folder)
    return str(folder), f"{storage}+{name}"


def test_finished_trials_are_added_with_what_was_left_out_said_and_not_counted(tmp_path):
    folder, _ = earlier(tmp_path)
    study = optuna.create_study(direction="minimize")
    line = add_prior_trials(study, SPACE, ["w=1"], [folder])
    assert line == ("warm start: added 3 trial(s) from 1 earlier search(es); dropped 4 parameter value(s) outside "
                    "the new space; left out 1 trial(s) outside the new ranges or choices")
    added = study.get_trials(deepcopy=False)
    assert [(t.params, t.value) for t in added] == [({"x": 0.1, "y": "a"}, 3.0), ({"x": 0.5, "y": "b"}, 1.0),
                                                    ({"x": 0.9, "y": "a"}, 2.0)]
    assert added[1].user_attrs["warm_start"] == f"{folder}#1" and counted(study) == 0  # not run here
    trial = ask_untried(study, SPACE)  # the sampler knows them: no prior configuration is proposed again
    assert (trial.params["x"], trial.params["y"]) not in {(0.1, "a"), (0.5, "b"), (0.9, "a")}


def test_a_sweep_fixed_differently_answers_another_question_and_is_left_out(tmp_path):
    folder, _ = earlier(tmp_path, fixed=("w=2",))
    study = optuna.create_study()
    line = add_prior_trials(study, SPACE, ["w=1"], [folder])
    assert "added 0 trial(s)" in line and "left out 4 trial(s) whose fixed values differ from this sweep's" in line
    assert study.get_trials() == []


def test_the_k_best_run_again_first_and_an_incompatible_space_names_its_key(tmp_path):
    _, storage_and_study = earlier(tmp_path)
    study = optuna.create_study(direction="minimize")
    line = add_prior_trials(study, SPACE, [], [storage_and_study], enqueue_top=2)
    assert line.endswith("running the 2 best again first")
    firsts = [ask_untried(study, SPACE).params for _ in range(2)]
    assert firsts == [{"x": 0.5, "y": "b"}, {"x": 0.9, "y": "a"}]  # values 1.0, then 2.0
    with pytest.raises(ConfigError, match="x was searched as FloatDistribution and is now CategoricalDistribution"):
        add_prior_trials(optuna.create_study(), {"x": CategoricalDistribution([0.1, 0.5])}, [], [storage_and_study])
    with pytest.raises(ConfigError, match=r"x's range \[0.0, 2.0\] does not meet the new \[3.0, 4.0\]"):
        add_prior_trials(optuna.create_study(), {"x": FloatDistribution(3.0, 4.0)}, [], [storage_and_study])


def test_a_toy_search_warm_started_from_another_runs_its_best_first(app, tmp_path):
    out, first = app("toy", "app.py", "hydra.sweeper.n_trials=6", "x=interval(-2, 2)", "y=interval(-1, 1)")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    folder = tmp_path / "toy" / first["sweep_dir"]
    out, second = app("toy", "app.py", "hydra.sweeper.n_trials=2", "x=interval(-2, 2)", "y=interval(-1, 1)",
                      f"hydra.sweeper.warm_start=[{folder}]", "hydra.sweeper.warm_start_enqueue_top=1")
    log = out.stdout + out.stderr
    assert out.returncode == 0 and "warm start: added 6 trial(s) from 1 earlier search(es); running the 1 best " \
        "again first" in log, log[-3000:]
    assert len(second["cells"]) == 2  # the prior trials are not cells: n_trials counts this search's own
    rerun = min(second["cells"], key=lambda c: c["num"])
    assert rerun["num"] == 6 and rerun["params"] == first["best_params"]
