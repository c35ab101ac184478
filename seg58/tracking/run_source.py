"""A model named by its MLflow run (infer.run_id) or MLflow Model (infer.model_uri) -> the
config it was trained with and its best checkpoint, so evaluate, predict and export rebuild it
exactly; and a warning when the data on disk is no longer what that run trained on."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from seg58.base.errors import CheckpointError
from seg58.base.names import BEST_CHECKPOINT, CHECKPOINT_DIR
from seg58.config import factory

log = logging.getLogger(__name__)


def with_run(cfg: DictConfig, explicit: list[str]) -> tuple[DictConfig, Path]:
    """With infer.run_id: that run's logged config and best checkpoint; with infer.model_uri
    (models:/NAME@champion, runs:/<id>/model): the MLflow Model's own config and best.pt, metrics
    logged into the run that logged it. data/paths given on the command line still win, so a run
    can be evaluated on other data."""
    model_uri = cfg.infer.model_uri
    if model_uri and (cfg.infer.run_id or cfg.infer.checkpoint):
        raise CheckpointError("give one of infer.model_uri, infer.run_id and infer.checkpoint, not several")
    if not cfg.infer.run_id and not model_uri:
        if not cfg.infer.checkpoint:
            raise CheckpointError("give infer.checkpoint=<best.pt>, infer.run_id=<MLflow run id> or "
                                  "infer.model_uri=models:/<name>@champion")
        return cfg, Path(cfg.infer.checkpoint)
    from seg58.tracking.store import existing_store, get_run

    client = existing_store(cfg.tracking.uri)
    tmp = Path(tempfile.mkdtemp(prefix="seg58-eval-"))
    source = cfg.infer.run_id
    if model_uri:
        from seg58.tracking.model import fetch_model

        config_path, ckpt, source = fetch_model(client.tracking_uri, model_uri, tmp)
        logged = OmegaConf.load(config_path)
    else:
        get_run(client, cfg.infer.run_id)
        try:
            logged = OmegaConf.load(client.download_artifacts(cfg.infer.run_id, ".hydra/config.yaml", str(tmp)))
            ckpt = Path(client.download_artifacts(cfg.infer.run_id, f"{CHECKPOINT_DIR}/{BEST_CHECKPOINT}", str(tmp)))
        except Exception as e:
            raise CheckpointError(f"run {cfg.infer.run_id}: cannot fetch .hydra/config.yaml and "
                                  f"{CHECKPOINT_DIR}/{BEST_CHECKPOINT} ({type(e).__name__}: {str(e)[:200]})") from None
    from omegaconf.errors import OmegaConfBaseException

    from seg58.base.errors import ConfigError
    from seg58.config.schema import Seg58Conf

    try:  # typed like a composed config; keys added since the run get today's defaults
        merged = OmegaConf.merge(OmegaConf.structured(Seg58Conf), logged,
                                 {"infer": cfg.infer, "tracking": cfg.tracking})
    except OmegaConfBaseException as e:
        raise ConfigError([f"the config logged by {f'model {model_uri}' if model_uri else f'run {source}'} does "
                           f"not fit this version of seg58 ({type(e).__name__}: {str(e).splitlines()[0]})"]) from None
    merged.infer.run_id = source  # a model's eval metrics go into its source run, as a run's do
    if any(o.lstrip("+~").startswith(("data", "paths")) for o in explicit):
        background = merged.data.background  # the checkpoint's output count: the run's, unless given
        merged.data, merged.paths = cfg.data, cfg.paths
        if not any(o.lstrip("+~").startswith("data.background") for o in explicit):
            merged.data.background = background
    return merged, ckpt


def warn_if_data_changed(cfg: DictConfig) -> str | None:
    """Metrics of a run on data that is no longer what it trained on (files changed, added or
    removed, or another folder) are not comparable with its training metrics: say so, naming
    both digests. A warning, not an error: evaluating on new data is legitimate."""
    if not cfg.infer.run_id:
        return None  # a bare checkpoint records no data to compare with
    from seg58.tracking.lineage import data_change_warning
    from seg58.tracking.store import existing_store

    root, digest = factory.current_digest(cfg)
    message = data_change_warning(existing_store(cfg.tracking.uri), cfg.infer.run_id, root, digest)
    if message:
        log.warning("%s", message)
    return message
