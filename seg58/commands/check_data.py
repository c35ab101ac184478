"""`seg58 check-data [DIR | overrides]`: validate a dataset folder (every file, mask sizes, label
values, the split) without training."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from seg58.config.schema import config_dir
from seg58.config.user_errors import reported_as_user_errors

# Hydra settings of this command: no output folder, log to stdout
HYDRA_ARGS = ["hydra.output_subdir=null", "hydra.run.dir=.", "hydra/job_logging=stdout", "hydra/hydra_logging=none"]


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> None:
    from seg58.config import factory
    from seg58.data.dataset_check import check_dataset

    d = cfg.data
    with reported_as_user_errors():
        report = check_dataset(d.root, factory.split_spec(cfg), factory.synthetic_settings(cfg),
                               d.preload_max_side or 1024)
    print(report)


def bare_dataset_path(args: list[str]) -> list[str]:
    """`seg58 check-data /data/artefact`: a bare folder means data.root of an ARTeFACT folder."""
    paths = [a for a in args if "=" not in a and not a.startswith("-")]
    if not paths:
        return args
    rest = [a for a in args if a not in paths]
    root = str(Path(paths[0]).expanduser().resolve()).replace("'", "\\'")
    data = [] if any(a.startswith("data=") for a in rest) else ["data=artefact"]
    return [*data, f"data.root='{root}'", *rest]
