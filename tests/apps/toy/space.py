"""A custom search space for the toy app (hydra.sweeper.custom_search_space=space.configure), as
hydra-optuna-sweeper's example has one: y depends on the sampled x, and a new key is added."""


def configure(cfg, trial) -> None:
    x = trial.params["x"]
    trial.suggest_float("y", x - cfg.max_gap, x + cfg.max_gap)
    trial.suggest_int("+extra", 0, 3)  # a key the config does not have: added with +
