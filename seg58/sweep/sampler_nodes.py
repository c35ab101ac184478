"""The `hydra/sweeper/sampler` nodes: a strict superset of hydra-optuna-sweeper's (HOS). Both
plugins fill this group, and whichever Hydra imports last wins, so every key HOS accepts is
accepted here with HOS's default, and means what it means there: an app written for HOS runs
unchanged with seg58 installed beside it, and seg58's apps run with HOS's nodes.

The defaults are those of HOS's Optuna-4 schemas: None where Optuna deprecated an argument
(Optuna then uses its own default, without a deprecation warning), the rest as HOS sets them.
The nodes are plain dicts, so an argument HOS does not name can still be added
(`+hydra.sweeper.sampler.constant_liar=true`)."""

from __future__ import annotations

from typing import Any, NoReturn

MOTPE_REMOVED = ("The 'motpe' sampler was removed in Optuna 4.0. Use 'hydra/sweeper/sampler=tpe' instead. "
                 "TPESampler now handles multi-objective optimization.")

_TPE = {"seed": None, "consider_prior": None, "prior_weight": None, "consider_magic_clip": None,
        "consider_endpoints": None, "n_startup_trials": 10, "n_ei_candidates": 24, "multivariate": False,
        "warn_independent_sampling": None}
_CMAES = {"seed": None, "x0": None, "sigma0": None, "independent_sampler": None, "warn_independent_sampling": True,
          "consider_pruned_trials": False, "restart_strategy": None, "inc_popsize": 2, "use_separable_cma": False,
          "source_trials": None}
_NSGAII = {"seed": None, "population_size": 50, "mutation_prob": None, "crossover_prob": 0.9, "swapping_prob": 0.5,
           "constraints_func": None}
_GP = {"seed": None, "independent_sampler": None, "n_startup_trials": 10, "deterministic_objective": False,
       "constraints_func": None, "warn_independent_sampling": True}
_QMC = {"seed": None, "qmc_type": "sobol", "scramble": False, "independent_sampler": None,
        "warn_asynchronous_seeding": True, "warn_independent_sampling": True}

SAMPLER_NODES: dict[str, dict[str, Any]] = {
    "tpe": {"_target_": "optuna.samplers.TPESampler", **_TPE},
    "random": {"_target_": "optuna.samplers.RandomSampler", "seed": None},
    "cmaes": {"_target_": "optuna.samplers.CmaEsSampler", **_CMAES},
    "nsgaii": {"_target_": "optuna.samplers.NSGAIISampler", **_NSGAII},
    "gp": {"_target_": "optuna.samplers.GPSampler", **_GP},
    "qmc": {"_target_": "optuna.samplers.QMCSampler", **_QMC},
    # search_space is filled in from hydra.sweeper.params when the search starts (seg58/sweep/samplers.py)
    "grid": {"_target_": "optuna.samplers.GridSampler", "_partial_": True},
    "motpe": {"_target_": "seg58.sweep.sampler_nodes.motpe_removed"},
    # seg58's own: every configuration of a finite space once (HOS has no such node)
    "brute_force": {"_target_": "optuna.samplers.BruteForceSampler", "seed": None},
}


def motpe_removed(*args: Any, **kwargs: Any) -> NoReturn:
    """`hydra/sweeper/sampler=motpe`, as HOS says it for Optuna 4 and later."""
    raise ValueError(MOTPE_REMOVED)
