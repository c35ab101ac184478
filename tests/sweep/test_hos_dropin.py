"""seg58's sweeper as a drop-in for Hydra's Optuna sweeper (hydra-optuna-sweeper, HOS): what HOS's
own suite and examples exercise behaves the same, with our own tests. The sampler nodes accept
every key HOS's do, `range()` includes its stop in a search, a search of fixed values runs,
`optimization_results.yaml` is written, failed trials are told on stdout, a search returns None,
`motpe` says it was removed, and plugin discovery may run any number of times."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from app_runs import APPS, statuses
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from seg58.sweep.samplers import with_grid
from seg58.sweep.space import create_optuna_distribution_from_override, create_params_from_overrides, parse_space

# Every key of HOS's sampler schemas (hydra_optuna_sweeper/config.py: 1.3.0 and its Optuna-4
# version), with the default HOS gives it there.
TARGETS = {"tpe": "TPESampler", "random": "RandomSampler", "cmaes": "CmaEsSampler", "nsgaii": "NSGAIISampler",
           "gp": "GPSampler", "qmc": "QMCSampler", "grid": "GridSampler"}
HOS_SAMPLER_KEYS = {
    "tpe": {"seed": None, "n_startup_trials": 10, "n_ei_candidates": 24, "multivariate": False, "consider_prior": None,
            "prior_weight": None, "consider_magic_clip": None, "consider_endpoints": None,
            "warn_independent_sampling": None},
    "random": {"seed": None},
    "cmaes": {"seed": None, "x0": None, "sigma0": None, "independent_sampler": None, "warn_independent_sampling": True,
              "consider_pruned_trials": False, "restart_strategy": None, "inc_popsize": 2,
              "use_separable_cma": False, "source_trials": None},
    "nsgaii": {"seed": None, "population_size": 50, "mutation_prob": None, "crossover_prob": 0.9,
               "swapping_prob": 0.5, "constraints_func": None},
    "gp": {"seed": None, "independent_sampler": None, "n_startup_trials": 10, "deterministic_objective": False,
           "constraints_func": None, "warn_independent_sampling": True},
    "qmc": {"seed": None, "qmc_type": "sobol", "scramble": False, "independent_sampler": None,
            "warn_asynchronous_seeding": True, "warn_independent_sampling": True},
    "grid": {"_partial_": True},
}


def sphere_config(*overrides: str):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(APPS / "sphere" / "conf"), version_base=None):
            return compose("config", overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.parametrize("name", sorted(HOS_SAMPLER_KEYS))
def test_every_sampler_node_takes_hos_keys_with_hos_defaults(name):
    node = sphere_config(f"hydra/sweeper/sampler={name}").hydra.sweeper.sampler
    expected = {k: v for k, v in HOS_SAMPLER_KEYS[name].items() if k != "seed"}  # the app sets seed: 123
    assert {k: node[k] for k in expected} == expected
    assert node._target_ == f"optuna.samplers.{TARGETS[name]}"


def test_a_hos_setting_reaches_the_sampler():
    """`hydra.sweeper.sampler.n_startup_trials=1`, as a HOS app writes it (refused before: not a key)."""
    node = sphere_config("hydra.sweeper.sampler.n_startup_trials=1", "+hydra.sweeper.sampler.constant_liar=false"
                         ).hydra.sweeper.sampler
    sampler = instantiate(node)
    assert type(sampler).__name__ == "TPESampler" and sampler._n_startup_trials == 1 and not sampler._constant_liar


def test_motpe_says_it_was_removed(app):
    out, _ = app("sphere", "sphere.py", "hydra/sweeper/sampler=motpe", "hydra.sweeper.n_trials=2")
    assert out.returncode != 0
    assert "motpe" in out.stderr and "sampler was removed in Optuna 4.0" in out.stderr


@pytest.mark.parametrize(("line", "expected"), [
    ("x=range(1, 3)", IntDistribution(1, 3)),  # 3 is a value, as Optuna's bounds are
    ("x=range(1, 10, 3)", IntDistribution(1, 10, step=3)),
    ("x=range(-5.5, 5.5, step=0.5)", FloatDistribution(-5.5, 5.5, step=0.5)),  # the sphere example's x: 5.5 too
    ("x=interval(1, 5)", FloatDistribution(1, 5)),
    ("x=int(interval(1, 5))", IntDistribution(1, 5)),
    ("x=tag(log, int(interval(1, 8)))", IntDistribution(1, 8, log=True)),
    ("x=shuffle(range(1, 4))", CategoricalDistribution((1, 2, 3))),  # Hydra's range values, stop excluded
])
def test_the_search_grammar_means_what_it_means_in_hos(line, expected):
    (override,) = OverridesParser.create().parse_overrides([line])
    assert create_optuna_distribution_from_override(override) == expected
    assert parse_space({}, [line])[0]["x"] == expected


def test_fixed_values_win_over_a_space_on_either_side_and_deletions_pass_through():
    assert create_params_from_overrides(["a=choice(1,2)", "b=5", "~c", "~d=1"]) == (
        {"a": CategoricalDistribution((1, 2))}, {"b": "5"}, ["~c", "~d=1"])
    space, fixed = parse_space({"x": "7", "y": "choice(1,2)"}, ["x=choice(100,200)", "y=3", "~z"])
    assert space == {} and fixed == ["x=7", "y=3", "~z"]


def test_the_grid_sampler_and_a_grid_keep_hydras_range():
    """A grid sampler's values of range(a, b) stop before b, as HOS's and as a Hydra grid's do."""
    space, _ = parse_space({"x": "choice(-1, 1)", "y": "range(-1.0, 1.0, step=1)", "n": "range(1, 4)"}, [])
    spec = with_grid({"_target_": "optuna.samplers.GridSampler", "_partial_": True}, space)
    assert spec["search_space"] == {"x": [-1, 1], "y": [-1.0, 0.0], "n": [1, 2, 3]}


def test_a_search_of_fixed_values_runs_its_trials_and_writes_hos_results(app, tmp_path):
    out, summary = app("sphere", "sphere.py", "hydra.sweeper.params=null", "x=1", "y=2", "hydra.sweeper.n_trials=3",
                       "hydra.sweeper.sampler.n_startup_trials=1")
    assert out.returncode == 0, out.stderr[-3000:]
    assert statuses(summary) == ["COMPLETED"] * 3 and all(c["overrides"] == ["x=1", "y=2"] for c in summary["cells"])
    assert (out.stdout + out.stderr).count("nothing to search") == 1
    results = OmegaConf.load(tmp_path / "sphere" / summary["sweep_dir"] / "optimization_results.yaml")
    assert OmegaConf.to_container(results) == {"name": "optuna", "best_params": {}, "best_value": 5.0}


def test_results_of_a_search_and_of_a_pareto_search(app, tmp_path):
    out, summary = app("sphere", "sphere.py", "hydra.sweeper.n_trials=4", "hydra/sweeper/sampler=random",
                       "y=0", "x=choice(1, 2)")
    assert out.returncode == 0, out.stderr[-3000:]
    results = OmegaConf.load(tmp_path / "sphere" / summary["sweep_dir"] / "optimization_results.yaml")
    assert results.name == "optuna" and results.best_params == {"x": 1} and results.best_value == 1.0  # y is fixed
    out, summary = app("toy", "app.py", "hydra.sweeper.n_trials=4", "x=choice(0, 1, 2)", "as_dict=true",
                       "hydra.sweeper.metric=[loss,root]", "hydra.sweeper.direction=[minimize,maximize]")
    assert out.returncode == 0, out.stderr[-3000:]
    solutions = OmegaConf.to_container(OmegaConf.load(tmp_path / "toy" / summary["sweep_dir"] /
                                                      "optimization_results.yaml"))
    assert set(solutions) == {"name", "solutions"} and solutions["name"] == "optuna"
    assert all(set(s) == {"params", "values"} and len(s["values"]) == 2 for s in solutions["solutions"])


@pytest.mark.parametrize("rate", [0.5, 1.0])
def test_failed_trials_are_told_on_stdout_and_the_first_error_when_the_rate_stops_it(app, rate):
    out, _ = app("sphere", "sphere.py", "error=true", "hydra.sweeper.n_trials=4", "hydra/sweeper/sampler=random",
                 f"hydra.sweeper.max_failure_rate={rate}")
    assert out.returncode != 0
    assert "RuntimeError: cfg.error is True" in out.stdout  # each failed trial, with its error
    # stopped by the rate: the error names the first failure, as HOS re-raises it; all failed
    # within the rate: the search fails as HOS's does, without repeating the trials' errors
    assert ("RuntimeError: cfg.error is True" in out.stderr) == (rate < 1.0)


def test_a_search_returns_none_as_hos_does_and_leaves_the_environment_as_it_was(hydra_sweep_runner):
    """The runner of Hydra's own plugin tests, in this process, on an app that searches nothing:
    8 trials, None; what the search set for its trials (the study) does not outlive it."""
    before = dict(os.environ)
    sweep = hydra_sweep_runner(calling_file=None, calling_module="hydra.test_utils.a_module", config_path="configs",
                               config_name="compose.yaml", task_function=None,
                               overrides=["hydra/sweeper=seg58", "hydra/launcher=basic", "hydra.sweeper.n_trials=8",
                                          "hydra.sweeper.n_jobs=3"])
    with sweep:
        assert sweep.returns is None
        assert len(list(Path(sweep.temp_dir).glob("[0-9]*"))) == 8
    assert dict(os.environ) == before


def test_plugin_discovery_any_number_of_times_in_any_order(tmp_path):
    """Hydra re-executes every plugin module on each scan (test suites, notebooks): the sweeper,
    imported first and scanned twice, still runs a search."""
    script = textwrap.dedent(f"""
        import sys
        from hydra_plugins.seg58_sweeper.sweeper import Seg58Sweeper  # imported before any scan
        from hydra.core.plugins import Plugins
        Plugins.instance()._initialize(); Plugins.instance()._initialize()
        sys.argv = ["sphere.py", "-m", "hydra.sweep.dir={tmp_path}/out", "hydra.sweeper.n_trials=2"]
        sys.path.insert(0, "{APPS / 'sphere'}")
        import runpy
        runpy.run_path("{APPS / 'sphere' / 'sphere.py'}", run_name="__main__")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "out" / "optimization_results.yaml").is_file()


HOS_RELEASE = "hydra-optuna-sweeper==1.3.0"


@pytest.fixture(scope="module")
def hos(tmp_path_factory):
    """HOS in a folder of its own, never in the project's venv: its release pins optuna<3, which
    cannot be met beside seg58's Optuna, so it comes without its dependencies."""
    target = tmp_path_factory.mktemp("hos")
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--disable-pip-version-check",
                          "--target", str(target), HOS_RELEASE], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        why = f"pip could not install {HOS_RELEASE} (no package index?): {out.stderr[-500:]}"
        if os.environ.get("SEG58_REQUIRE_HOS") == "1":
            pytest.fail(f"{why}, but SEG58_REQUIRE_HOS=1")
        pytest.skip(why)
    return target


def sphere_with_hos(folder: Path, hos: Path, hos_last: bool, *args: str) -> subprocess.CompletedProcess:
    """The sphere app in `folder` with HOS's plugin discoverable: scanned before seg58's (first on
    the path: seg58's sampler nodes win) or after it (HOS's win)."""
    if not folder.exists():
        shutil.copytree(APPS / "sphere", folder)
    script = (f"import runpy, sys; sys.path.{'append' if hos_last else 'insert'}({'' if hos_last else '0, '}"
              f"{str(hos)!r}); sys.argv = ['sphere.py', '-m', *{list(args)!r}]; "
              "runpy.run_path('sphere.py', run_name='__main__')")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SEG58_STUDY", None)
    return subprocess.run([sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("hos_last", [False, True], ids=["seg58-nodes", "hos-nodes"])
def test_both_plugins_installed_each_app_gets_its_own_sweeper(hos, tmp_path, hos_last):
    """A HOS app (`hydra/sweeper=optuna`) runs unchanged, `n_startup_trials` accepted, and writes
    HOS's results; the same app on `seg58` runs seg58's search, whichever plugin Hydra scans last."""
    hos_run = sphere_with_hos(tmp_path / "app", hos, hos_last, "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3",
                              "hydra.sweeper.sampler.n_startup_trials=1", "hydra.sweep.dir=hos-run")
    assert hos_run.returncode == 0, hos_run.stderr[-3000:]
    results = OmegaConf.load(tmp_path / "app" / "hos-run" / "optimization_results.yaml")
    assert results.name == "optuna" and not (tmp_path / "app" / "hos-run" / "sweep_summary.json").exists()
    ours = sphere_with_hos(tmp_path / "app", hos, hos_last, "hydra.sweeper.n_trials=3", "hydra.sweep.dir=seg58-run")
    assert ours.returncode == 0, ours.stderr[-3000:]
    summary = json.loads((tmp_path / "app" / "seg58-run" / "sweep_summary.json").read_text())
    assert summary["kind"] == "search" and statuses(summary) == ["COMPLETED"] * 3
