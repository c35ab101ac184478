"""Pretrained encoder weights seen from the config: a sweep with an uncached encoder is refused
before any job starts (weights_problems), and every message names the exact command that caches
what is missing (fetch_command)."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from seg58.config.schema import config_dir
from seg58.modeling.hub_weights import (
    default_weights,
    is_local_file,
    missing_weights_message,
    smp_weights,
    weight_source,
)


def encoder_choice(cfg: DictConfig) -> str | None:
    """The conf/encoder option that gives cfg.encoder.name: the one chosen when it does, else
    the first option with that name; None for an encoder.name no option has."""
    options = {p.stem: p for p in sorted((Path(config_dir()) / "encoder").glob("*.yaml"))}
    chosen = [OmegaConf.select(cfg, "hydra.runtime.choices.encoder", default=None)]
    if HydraConfig.initialized():  # inside a Hydra app (a job): its own choice
        chosen.append(HydraConfig.get().runtime.choices.get("encoder"))
    for option in [*chosen, *options]:
        if option in options and OmegaConf.load(options[option]).get("name") == cfg.encoder.name:
            return option
    return None


def fetch_command(cfg: DictConfig) -> str:
    """The exact command that caches what this config's encoder needs."""
    name, weights = cfg.encoder.name, cfg.encoder.weights
    choice = encoder_choice(cfg)
    parts = ["seg58 fetch-weights", f"encoder={choice}" if choice else f"encoder.name={name}"]
    if weights is not None and smp_weights(name, weights) != smp_weights(name, default_weights(name)):
        parts.append(f"encoder.weights={weights}")
    return " ".join(parts)


def weights_problems(cfg: DictConfig) -> list[str]:
    """Pretrained weights a job will ask the hub for: the weights name must exist and, offline
    (paths.hub_offline=true), be in the cache already. A few stat calls, no model built: a sweep
    with an uncached encoder is refused before any job starts, not as each job builds its model."""
    weights = cfg.encoder.weights
    pretrained = None if is_local_file(weights) else smp_weights(cfg.encoder.name, weights)
    if pretrained is None or cfg.infer.checkpoint or cfg.infer.run_id:  # evaluate/predict: a checkpoint's
        return []
    try:
        source = weight_source(cfg.encoder.name, pretrained, OmegaConf.to_container(cfg.encoder.kwargs, resolve=True))
    except ValueError as e:
        return [f"encoder.weights={weights}: {e}"]
    if cfg.paths.hub_offline and source.cached(cfg.paths.cache_dir) is None:
        message = missing_weights_message(source, cfg.paths.cache_dir, True, fetch_command(cfg))
        return [f"encoder.weights={weights}: {message}"]
    return []
