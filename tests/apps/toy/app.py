"""A Hydra app that is not seg58: a function of x and y. It uses seg58's sweeper only through
`override hydra/sweeper: seg58` in its config, as any app with seg58 installed can."""

import math
import os
import time

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | dict:
    while cfg.hold_while and os.path.exists(cfg.hold_while):
        time.sleep(0.1)
    if cfg.fail_above is not None and cfg.x > cfg.fail_above:
        raise RuntimeError(f"x={cfg.x} is above fail_above={cfg.fail_above}")
    loss = (cfg.x - 1) ** 2 + cfg.y**2
    if cfg.steps:  # an iterative app: reports each step and may be pruned
        from seg58.sweep.trial import current_trial

        trial = current_trial()
        for step in range(cfg.steps):
            value = loss + 10.0 / (step + 1)
            if trial is not None:
                trial.report(value, step)
                if trial.should_prune():
                    return {"loss": value, "steps": step + 1, "stop": {"kind": "pruned", "epoch": step + 1}}
        return {"loss": loss, "steps": cfg.steps, "root": math.sqrt(loss)}
    cost = {"cost/gpu_hours": cfg.gpu_hours} if cfg.gpu_hours else {}  # what a cell reports it spent
    return {"loss": loss, "root": math.sqrt(loss), **cost} if cfg.as_dict else loss


if __name__ == "__main__":
    main()
