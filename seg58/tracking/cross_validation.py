"""A cross-validation's result on an MLflow run (a sweep's parent run, or the run of a
configuration whose folds ran in turn): mean ± std per configuration as metrics, each fold's
value, the table as JSON and as text. The table comes from seg58/sweep/folds.py (cv_table)."""

from __future__ import annotations

import math
import time
from typing import Any

from seg58.base.classes import metric_key
from seg58.base.stop import StopReason
from seg58.tracking.store import resolve_uri


def cv_metrics(table: list[dict[str, Any]], prefix: str = "cv") -> dict[str, float]:
    """`cv/mean`, `cv/std`, `cv/fold/<fold>` for one configuration; `cv/<i>/...` for several."""
    out = {}
    for i, group in enumerate(table):
        head = prefix if len(table) == 1 else f"{prefix}/{i}"
        for name in ("mean", "std"):
            if group.get(name) is not None and math.isfinite(group[name]):
                out[f"{head}/{name}"] = float(group[name])
        out.update({f"{head}/fold/{metric_key(str(f))}": float(v) for f, v in group["folds"].items()})
    return out


def log_cross_validation(uri: str | None, run_id: str, table: list[dict[str, Any]], text: str) -> None:
    from mlflow.tracking import MlflowClient

    _log_table(MlflowClient(resolve_uri(uri)), run_id, table, text)


def _log_table(client: Any, run_id: str, table: list[dict[str, Any]], text: str,
               metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None) -> None:
    """The table's metrics and tags (with `metrics`, `tags` added) in one batch, then the files."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    batch_tags = {"cv.configs": str(len(table)), **(tags or {})}
    if len(table) > 1:
        batch_tags.update({f"cv.{i}.config": g["config"][:5000] for i, g in enumerate(table)})
    batch_metrics = {**cv_metrics(table), **(metrics or {})}
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in batch_metrics.items()],
                     tags=[RunTag(k, v) for k, v in batch_tags.items()])
    client.log_dict(run_id, table, "cross_validation.json")
    client.log_text(run_id, text + "\n", "cross_validation.txt")


def start_cv_run(uri: str | None, experiment_name: str, run_name: str, tags: dict[str, str],
                 params: dict[str, Any]) -> str:  # params: the config, nested
    """The run of a configuration whose folds run in turn; each fold's run nests under it (and it
    under the sweep's run, when `tags` name one)."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    from seg58.base.names import PARENT_RUN_TAG, SWEEP_PARENT_TAG
    from seg58.tracking.run_logger import flatten
    from seg58.tracking.store import MAX_PARAM_CHARS, MAX_PARAMS_PER_BATCH, experiment_id

    uri = resolve_uri(uri)
    client = MlflowClient(uri)
    tags = {**tags, "seg58.cross_validation": "true"}
    if tags.get(SWEEP_PARENT_TAG):
        tags[PARENT_RUN_TAG] = tags[SWEEP_PARENT_TAG]
    run = client.create_run(experiment_id(client, experiment_name, uri), run_name=run_name, tags=tags)
    batch = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in flatten(params).items()]
    for i in range(0, len(batch), MAX_PARAMS_PER_BATCH):
        client.log_batch(run.info.run_id, params=batch[i:i + MAX_PARAMS_PER_BATCH])
    return run.info.run_id


def finish_cv_run(uri: str | None, run_id: str, table: list[dict[str, Any]], text: str, failed: bool,
                  stop: StopReason | None = None) -> None:
    """The folds' table, the mean as the run's best/val_miou (what leaderboards rank), closed."""
    from mlflow.tracking import MlflowClient

    from seg58.base.names import STOP_EPOCH_TAG, STOP_KIND_TAG

    client = MlflowClient(resolve_uri(uri))
    try:
        mean = table[0].get("mean") if table else None
        _log_table(client, run_id, table, text, metrics={} if mean is None else {"best/val_miou": float(mean)},
                   tags={STOP_KIND_TAG: str(stop.kind), STOP_EPOCH_TAG: str(stop.epoch)} if stop else None)
    finally:
        client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
