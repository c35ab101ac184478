"""Hydra entry point: `python -m seg58 [overrides]`, `seg58 -m encoder=a,b` for sweeps."""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from seg58.config import register  # noqa: E402

log = logging.getLogger("seg58")


def config_dir() -> str:
    """conf/ of a source checkout, else the copy packaged inside seg58/."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"seg58 config folder not found next to {here}")


register()


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from seg58.checks import ConfigError
    from seg58.data.folder import DataError
    from seg58.errors import UserFacingError
    from seg58.run import train  # heavy imports after Hydra has parsed the command line
    from seg58.tracking import git_commit

    hc = HydraConfig.get()
    choices = hc.runtime.choices
    commit, dirty = git_commit(Path(__file__).resolve().parent)
    tags = {
        "model": choices.get("model", ""),
        "encoder": choices.get("encoder", ""),
        "data": choices.get("data", ""),
        "experiment": str(choices.get("experiment") or "none"),
        "overrides": " ".join(hc.overrides.task) or "(defaults)",
        "hydra.output_dir": hc.runtime.output_dir,
        "hydra.job.num": str(hc.job.get("num", 0)),
    }
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git.dirty"] = str(dirty).lower()
    try:
        summary = train(cfg, Path(hc.runtime.output_dir), tags)
    except (ConfigError, DataError) as e:
        raise UserFacingError(str(e)) from None
    log.info("best val mIoU %.4f at epoch %d", summary["best_val_miou"], summary["best_epoch"] + 1)
    return summary["best_val_miou"]
