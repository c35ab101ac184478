"""`seg58 fetch-weights encoder=resnet50,convnext_tiny,swin`: fill the weights cache on a machine
with internet (a login node) so that jobs on compute nodes, offline by default
(paths.hub_offline=true), find every encoder's pretrained weights there.

Each encoder is built exactly as a job builds it (seg58.config.factory.model), with the hub online and
pointed at <paths.cache_dir>/huggingface/hub: SMP and timm download into the hub's own layout and
find the files there later, unchanged. Overrides are a job's (comma lists expand as in a sweep)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from seg58.base.errors import ConfigError, Seg58Error, WeightsError
from seg58.config.weights import fetch_command
from seg58.modeling.hub_weights import (
    default_weights,
    hub_dir,
    hub_unreachable,
    is_local_file,
    missing_weights_message,
    smp_weights,
    weight_source,
)

USAGE = """usage: seg58 fetch-weights [OVERRIDES]
  e.g. seg58 fetch-weights encoder=resnet50,convnext_tiny,swin
       seg58 fetch-weights experiment=poc58 paths.cache_dir=/shared/cache
Downloads the pretrained weights of each encoder (encoder.weights, else "imagenet" for SMP
encoders and timm's default tag for tu-* encoders) into <paths.cache_dir>/huggingface/hub,
where jobs read them offline. Run it where there is internet, with the jobs' paths.cache_dir."""


def expand(argv: list[str]) -> list[list[str]]:
    """Hydra overrides with sweep lists (encoder=a,b) -> one override list per combination."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from seg58.sweep.private_apis import sweep_cells

    return sweep_cells(OverridesParser.create().parse_overrides(argv))


def fetch_one(cfg: DictConfig, seen: dict, unreachable: BaseException | None) -> str:
    """Cache one config's encoder weights; the line that says what was fetched, and where.
    `unreachable`: why the hub cannot be reached (None: it can)."""
    from seg58.config import factory

    name = cfg.encoder.name
    weights = cfg.encoder.weights if cfg.encoder.weights is not None else default_weights(name)
    label = f"{fetch_command(cfg).removeprefix('seg58 fetch-weights ')} ({name})"
    if is_local_file(weights) or smp_weights(name, weights) is None:
        return f"{label}: encoder.weights={weights} needs nothing from the hub"
    kwargs = OmegaConf.to_container(cfg.encoder.kwargs, resolve=True)
    try:
        source = weight_source(name, smp_weights(name, weights), kwargs)
    except ValueError as e:
        raise ConfigError([f"encoder.weights={weights}: {e}"]) from None
    cache = cfg.paths.cache_dir
    key = (source, str(hub_dir(cache)))
    if key not in seen:
        before = source.cached(cache)
        if before is None and unreachable is not None:  # fail now, not after a minute of retries
            raise WeightsError(missing_weights_message(source, cache, False, fetch_command(cfg), unreachable))
        OmegaConf.update(cfg, "encoder.weights", str(weights))
        OmegaConf.update(cfg, "paths.hub_offline", unreachable is not None)  # cached: just load it
        factory.model(cfg)  # exactly a job's build: SMP/timm download into the cache (or find it there)
        after = source.cached(cache)
        if after is None:
            raise WeightsError(f"{label}: built, but {source.describe()} is not in {hub_dir(cache)} "
                               f"(this version of SMP/timm keeps it elsewhere)")
        status = "fetched" if before is None else "already cached" if after == before else "updated"
        if before and unreachable is not None:
            status += " (hub unreachable: not checked for a newer version)"
        seen[key] = f"{status} {source.describe()} -> {after}"
    return f"{label}: {seen[key]}"


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(USAGE)
        return 0
    from hydra import compose, initialize_config_dir

    from seg58.config.schema import config_dir

    unreachable = hub_unreachable()
    seen: dict = {}
    failed: list[str] = []
    caches: set[str] = set()
    with initialize_config_dir(config_dir(), version_base="1.3"):
        for overrides in expand(argv):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
            caches.add(str(hub_dir(cfg.paths.cache_dir)))
            try:
                print(fetch_one(cfg, seen, unreachable), flush=True)
            except Seg58Error as e:  # the other encoders are still worth fetching; one error at the end
                failed.append(str(e))
    if failed:
        raise WeightsError(failed[0] if len(failed) == 1 else
                           f"{len(failed)} encoder(s) not fetched:\n  - " + "\n  - ".join(failed))
    print(f"weights cache: {', '.join(sorted(caches))} (jobs read it offline: paths.hub_offline=true)")
    return 0
