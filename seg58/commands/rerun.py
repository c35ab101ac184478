"""`seg58 rerun RUN_ID [overrides]`: the same command as a past run, as a new run tagged with its
source, with today's changed defaults and changed data reported before it starts."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    """`seg58 rerun RUN_ID [overrides]`: the same command as a past run, as a new run tagged
    with its source. The config is recomposed from the run's logged .hydra/overrides.yaml and
    compared with its logged config.yaml, so a changed default is reported, not hidden."""
    parser = argparse.ArgumentParser(prog="seg58 rerun", description=main.__doc__.splitlines()[0])
    parser.add_argument("run_id")
    parser.add_argument("overrides", nargs="*", help="extra overrides, applied last")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    import subprocess

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from seg58.base.errors import UsageError
    from seg58.config.schema import config_dir
    from seg58.tracking.store import existing_store, get_run

    client = existing_store(args.tracking_uri)
    uri = client.tracking_uri
    run = get_run(client, args.run_id)
    if ".hydra" not in {a.path for a in client.list_artifacts(args.run_id)}:
        raise UsageError(f"run {args.run_id} ({run.info.run_name}) has no .hydra/ artifacts: not a seg58 "
                         f"training run, nothing to rerun")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(client.download_artifacts(args.run_id, ".hydra", tmp))
        overrides = [str(o) for o in OmegaConf.load(folder / "overrides.yaml")]
        logged = OmegaConf.load(folder / "config.yaml")
    with initialize_config_dir(config_dir(), version_base="1.3"):
        now = compose("config", overrides=overrides)
        try:  # the data the rerun will read, extra overrides included (a bad one: the rerun says so)
            target = compose("config", overrides=[*overrides, *args.overrides]) if args.overrides else now
        except Exception:
            target = None
    before, after = _flat(logged), _flat(now)
    changed = sorted(k for k in set(before) | set(after)
                     if before.get(k) != after.get(k) and not k.startswith("paths."))
    if changed:
        print(f"note: today's defaults differ from run {args.run_id} for: {', '.join(changed)}")
    if target is not None:
        _warn_if_data_changed(client, args.run_id, target)
    command = [sys.executable, "-m", "seg58", *overrides, f"++tracking.tags.source_run={args.run_id}",
               *args.overrides]
    print("rerun:", " ".join(command[2:]))
    return subprocess.call(command, env={**os.environ, "MLFLOW_TRACKING_URI": uri})


def _warn_if_data_changed(client: Any, run_id: str, cfg: Any) -> str | None:
    """Before a rerun starts: does today's data still match the run's digest? A warning, not an
    error (a rerun on fixed or grown data is legitimate); missing data is the rerun's to report."""
    from seg58.base.errors import Seg58Error
    from seg58.config import factory
    from seg58.tracking.lineage import data_change_warning

    try:
        root, digest = factory.current_digest(cfg)
    except Seg58Error:
        return None
    message = data_change_warning(client, run_id, root, digest)
    if message:
        print(f"warning: {message}", file=sys.stderr)
    return message


def _flat(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from seg58.tracking.run_logger import flatten

    return flatten(OmegaConf.to_container(cfg, resolve=False))
