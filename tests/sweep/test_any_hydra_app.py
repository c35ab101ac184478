"""seg58's sweeper from a Hydra app that is not seg58 (tests/apps/): chosen with
`override hydra/sweeper: seg58`, found through Hydra's ConfigStore as any installed plugin is. A
grid, an Optuna search with hydra-optuna-sweeper's keys, a failing trial, a dict result, resume,
pruning from the app's own loop, and Hydra's Optuna sweeper example with only the sweeper's name
changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_runs import statuses

pytestmark = pytest.mark.slow  # each test runs sweeps of a real app process end to end


def test_a_grid_of_a_plain_app(app):
    out, summary = app("toy", "app.py", "x=0,1,2", "y=0,2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert summary["kind"] == "grid" and statuses(summary) == ["COMPLETED"] * 6
    objectives = {tuple(c["overrides"]): c["objective"] for c in summary["cells"]}
    assert objectives[("x=0", "y=2")] == 5.0 and objectives[("x=1", "y=0")] == 0.0  # the returned float
    # no MLflow field in a plain app's summary: the parent run id is seg58's hooks', not the sweeper's
    assert summary["tracking"] == {"enabled": False} and "mlflow_parent_run_id" not in summary


def test_a_search_with_a_failing_trial_then_resumed(app, tmp_path):
    """n_trials makes it a search; trials that raise are recorded and do not stop it; resume
    continues the same study in the same folder, numbering on."""
    args = ["hydra.sweeper.n_trials=6", "x=interval(-3, 3)", "fail_above=1.5", "hydra.sweeper.sampler.seed=3"]
    out, summary = app("toy", "app.py", *args)
    assert out.returncode == 0, out.stderr[-3000:]
    assert summary["kind"] == "search" and len(summary["cells"]) == 6
    failed = [c for c in summary["cells"] if c["status"] == "FAILED"]
    assert failed and all("above fail_above" in c["error"] for c in failed)
    done = [c for c in summary["cells"] if c["status"] == "COMPLETED"]
    assert all(c["params"]["x"] <= 1.5 and c["objective"] == pytest.approx((c["params"]["x"] - 1) ** 2) for c in done)
    assert summary["best_value"] == min(c["objective"] for c in done)

    sweep_dir = tmp_path / "toy" / summary["sweep_dir"]
    out, resumed = app("toy", "app.py", f"hydra.sweeper.resume={sweep_dir}", "hydra.sweeper.n_trials=9")
    assert out.returncode == 0, out.stderr[-3000:]
    assert Path(resumed["sweep_dir"]) == sweep_dir
    assert sorted(c["num"] for c in resumed["cells"]) == list(range(9))


def test_a_dict_result_names_its_objective(app):
    out, summary = app("toy", "app.py", "x=0,3", "as_dict=true", "hydra.sweeper.metric=loss")
    assert out.returncode == 0, out.stderr[-3000:]
    cells = {c["overrides"][0]: c for c in summary["cells"]}
    assert cells["x=3"]["objective"] == 4.0 and cells["x=3"]["root"] == 2.0  # the other values are kept

    out, summary = app("toy", "app.py", "hydra.sweeper.n_trials=2", "x=choice(0,3)", "as_dict=true",
                       "hydra.sweeper.metric=nope")
    assert out.returncode != 0  # no trial has an objective: the search failed, and says why
    assert all("has no 'nope'" in c["error"] and "keys: loss, root" in c["error"] for c in summary["cells"])


def test_an_app_prunes_its_own_trials(app):
    """The app reports every step through seg58.sweep.trial; the pruner stops trials, recorded PRUNED."""
    out, summary = app("toy", "app.py", "steps=5", "hydra.sweeper.n_trials=3", "x=choice(0,1,2)",
                       "hydra.sweeper.metric=loss", "hydra/sweeper/sampler=brute_force",
                       "+hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, upper: 6.0}")
    assert out.returncode == 0, out.stderr[-3000:]
    cells = {c["params"]["x"]: c for c in summary["cells"]}
    # loss + 10/(step+1) > 6 at step 0..1 for every x: all pruned after their first reported step
    assert {c["status"] for c in cells.values()} == {"PRUNED"}
    assert all(c["stop"] == {"kind": "pruned", "epoch": 1} and c["steps"] == 1 for c in cells.values())


def test_hydras_optuna_sweeper_example_runs_with_only_the_sweeper_renamed(app):
    """plugins/hydra_optuna_sweeper/example (sphere.py, conf/config.yaml), `optuna` -> `seg58`:
    TPE seeded 123, float range(-5.5, 5.5, step=0.5), choice(-5, 0, 5), 20 trials."""
    out, summary = app("sphere", "sphere.py")
    assert out.returncode == 0, out.stderr[-3000:]
    assert summary["kind"] == "search" and statuses(summary) == ["COMPLETED"] * 20
    xs = {c["params"]["x"] for c in summary["cells"]}
    assert all(-5.5 <= x <= 5.5 and (x * 2) == int(x * 2) for x in xs)  # the range's 0.5 steps, stop included
    assert {c["params"]["y"] for c in summary["cells"]} <= {-5, 0, 5}  # typed, as the example's choice() says
    best = min(summary["cells"], key=lambda c: c["objective"])
    assert summary["best_value"] == best["objective"] == best["params"]["x"] ** 2 + best["params"]["y"] ** 2

    out, summary = app("sphere", "sphere.py", "error=true")  # max_failure_rate: 0.0 stops at the first failure
    assert out.returncode != 0
    assert "max_failure_rate=0.0 exceeded" in summary["stopped"] and len(summary["cells"]) == 1


def test_a_resumed_search_continues_the_samplers_stream_and_never_repeats_a_trial(app, tmp_path):
    """Resumed with the same seed, TPE's start-up draws would come again (the sampler restarts):
    a resumed study reseeds from the trials so far, and a configuration already COMPLETE is
    never run twice."""
    space = "x=choice(0,1,2,3,4,5,6,7,8,9)"
    out, summary = app("toy", "app.py", "hydra.sweeper.n_trials=4", space)
    assert out.returncode == 0, out.stderr[-3000:]
    sweep_dir = tmp_path / "toy" / summary["sweep_dir"]
    out, resumed = app("toy", "app.py", f"hydra.sweeper.resume={sweep_dir}", "hydra.sweeper.n_trials=9")
    assert out.returncode == 0, out.stderr[-3000:]
    xs = [c["params"]["x"] for c in resumed["cells"] if c["status"] == "COMPLETED"]
    assert len(xs) == 9 and len(set(xs)) == 9, xs
    assert all(isinstance(x, int) for x in xs)  # typed choices: ints, not '3'


def test_the_grid_sampler_runs_the_params_to_exhaustion(app):
    """hydra/sweeper/sampler=grid with no search_space: built from the params; the search ends
    when every combination ran, whatever n_trials says."""
    out, summary = app("toy", "app.py", "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=20",
                       "x=choice(0,1,2)", "y=range(0,2)")
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted((c["params"]["x"], c["params"]["y"]) for c in summary["cells"]) == [
        (x, y) for x in (0, 1, 2) for y in (0, 1)]
    out, summary = app("toy", "app.py", "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=2", "x=interval(0,1)")
    assert out.returncode != 0 and "needs a finite set of values" in out.stderr


def test_an_existing_study_in_a_given_storage_is_continued(app, tmp_path):
    """As hydra-optuna-sweeper's users expect (load_if_exists): the same study_name in the same
    storage continues the study; its earlier trials count towards n_trials."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    common = [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=mine", "x=interval(-2, 2)"]
    out, first = app("toy", "app.py", "hydra.sweeper.n_trials=3", *common)
    assert out.returncode == 0, out.stderr[-3000:]
    out, second = app("toy", "app.py", "hydra.sweeper.n_trials=5", *common)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "study mine exists" in out.stderr + out.stdout
    assert len(first["cells"]) == 3 and sorted(c["num"] for c in second["cells"]) == [3, 4]
    import optuna

    assert len(optuna.load_study(study_name="mine", storage=storage).trials) == 5


def test_a_multi_objective_search_of_a_plain_app(app):
    """A dict with two named objectives (or a tuple, as hydra-optuna-sweeper's example returns)."""
    out, summary = app("toy", "app.py", "hydra.sweeper.n_trials=6", "x=interval(-3, 3)", "as_dict=true",
                       "hydra.sweeper.direction=[minimize,maximize]", "hydra.sweeper.metric=[loss,root]")
    assert out.returncode == 0, out.stderr[-3000:]
    assert all(len(c["objective"]) == 2 for c in summary["cells"])
    # loss = root**2 here: minimising one while maximising the other leaves every trial non-dominated
    assert sorted(p["trial"] for p in summary["pareto_front"]) == list(range(6))
    out, _ = app("toy", "app.py", "hydra.sweeper.n_trials=2", "x=interval(-3, 3)",
                 "hydra.sweeper.direction=[minimize,maximize]", "hydra.sweeper.metric=loss")
    assert out.returncode != 0 and "one metric per direction" in out.stderr


def test_an_unknown_sweeper_key_is_refused_naming_the_valid_ones(app):
    out, _ = app("toy", "app.py", "+hydra.sweeper.n_trial=3", "x=interval(0, 1)")
    assert out.returncode != 0
    assert "hydra.sweeper.n_trial: not a key of the seg58 sweeper (did you mean n_trials?)" in out.stderr
    assert "valid: budget, custom_search_space, direction," in out.stderr  # (the fixture sets HYDRA_FULL_ERROR)


def test_a_custom_search_space_adds_dependent_parameters(app):
    out, summary = app("toy", "app.py", "hydra.sweeper.n_trials=4", "x=interval(-2, 2)", "+max_gap=0.5",
                       "hydra.sweeper.custom_search_space=space.configure")
    assert out.returncode == 0, out.stderr[-3000:]
    for c in summary["cells"]:
        assert set(c["params"]) == {"x", "y", "+extra"} and abs(c["params"]["y"] - c["params"]["x"]) <= 0.5
        assert c["objective"] == pytest.approx((c["params"]["x"] - 1) ** 2 + c["params"]["y"] ** 2)
        assert any(o.startswith("+extra=") for o in c["overrides"])
