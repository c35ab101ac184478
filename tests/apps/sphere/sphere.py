"""Hydra's Optuna sweeper example app (plugins/hydra_optuna_sweeper/example/sphere.py in
facebookresearch/hydra), rewritten here with the same behaviour: x^2 + y^2, or an error."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config", version_base=None)
def sphere(cfg: DictConfig) -> float:
    if cfg.get("error", False):
        raise RuntimeError("cfg.error is True")
    return cfg.x**2 + cfg.y**2


if __name__ == "__main__":
    sphere()
