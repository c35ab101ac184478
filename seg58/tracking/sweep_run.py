"""A sweep's own MLflow run: opened before the first job (the jobs' runs nest under it), closed at
the end with the leaderboard, the curves, the UI links and, with tracking.register, the best
run's model registered."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from seg58.base.errors import Seg58Error
from seg58.tracking.store import MAX_PARAM_CHARS, MAX_PARAMS_PER_BATCH, experiment_id, resolve_uri

log = logging.getLogger(__name__)


def start_sweep_run(uri: str | None, experiment_name: str, sweep_dir: Path, arguments: list[str],
                    spec: str) -> str:
    """One MLflow run for the whole sweep; the jobs' runs nest under it in the UI."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(uri)
    client = MlflowClient(uri)
    run = client.create_run(experiment_id(client, experiment_name, uri),
                            run_name=f"sweep {sweep_dir.parent.name}/{sweep_dir.name}",
                            tags={"seg58.sweep": "true", "sweep.overrides": spec, "sweep.dir": str(sweep_dir)})
    params = [Param(a.split("=", 1)[0].lstrip("+~"), a.split("=", 1)[1][:MAX_PARAM_CHARS])
              for a in arguments if "=" in a]
    if params:
        client.log_batch(run.info.run_id, params=params[:MAX_PARAMS_PER_BATCH])
    log.info("MLflow sweep run %s (%s)", run.info.run_id, spec)
    return run.info.run_id


def log_sweep_totals(uri: str | None, parent: str, cost: dict[str, Any], stop: dict[str, Any] | None) -> None:
    """The cells' compute hours summed onto the sweep's run (`cost/gpu_hours`, `cost/cpu_hours`, and
    `cost/cells_measured`: how many cells reported them), so that sweeps compare by cost in the UI;
    a sweep that stopped early says why in the tags its runs use (`stop.kind`: budget or failures,
    `stop_reason`)."""
    if not cost and not stop:
        return
    import time

    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    from seg58.base.names import STOP_KIND_TAG, STOP_REASON_TAG

    now = int(time.time() * 1000)
    metrics = {f"cost/{k}": float(v) for k, v in cost.items() if k.endswith("_hours") or k == "cells_measured"}
    tags = {STOP_KIND_TAG: str(stop.get("kind")), STOP_REASON_TAG: str(stop.get("reason"))[:5000]} if stop else {}
    MlflowClient(resolve_uri(uri)).log_batch(parent, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                                             tags=[RunTag(k, v) for k, v in tags.items()])


def finish_sweep_run(uri: str | None, parent: str, failed: bool, sweep_dir: str, register: str | None = None) -> None:
    """Leaderboard and curves onto the sweep's run, then close it (FAILED if any cell failed);
    with `register` (tracking.register) the best run's model becomes a version of it, alias champion."""
    from mlflow.tracking import MlflowClient

    from seg58.tracking.leaderboard import publish, seed_groups, seed_markdown, to_markdown

    client = MlflowClient(resolve_uri(uri))
    try:
        rows = publish(client, parent)
        groups = seed_groups(rows)
        log.info("leaderboard (MLflow sweep run %s; rebuild with `seg58 report %s`):\n%s%s",
                 parent, sweep_dir, to_markdown(rows), "\n" + seed_markdown(groups) if groups else "")
        if register:
            from seg58.tracking.model import describe, register_best

            try:
                log.info("%s", describe(register_best(client, rows, register, parent)))
            except Seg58Error as e:  # the sweep's results stand; registering can be done again
                log.error("%s\n(retry: seg58 report %s --register %s)", e, sweep_dir, register)
    finally:
        client.set_terminated(parent, "FAILED" if failed else "FINISHED")
    _log_ui_links(client, parent, rows)


def reopen_sweep_run(uri: str | None, parent: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(resolve_uri(uri)).update_run(parent, status="RUNNING")


def kill_sweep_run(uri: str | None, parent: str, why: str) -> None:
    """An interrupted sweep's run: KILLED, with why (a resumed sweep finishes it)."""
    from mlflow.tracking import MlflowClient

    from seg58.base.names import STOP_REASON_TAG

    client = MlflowClient(resolve_uri(uri))
    client.set_tag(parent, STOP_REASON_TAG, why)
    client.set_terminated(parent, "KILLED")


def _log_ui_links(client: Any, parent: str, rows: list[dict[str, Any]]) -> None:
    """Straight to the sweep's runs: a new user's `mlflow ui` opens on a GenAI overview, with a
    sweep's runs folded under its parent."""
    from seg58.tracking.ui_links import sweep_links

    log.info("%s", sweep_links(client, parent, rows))
