"""Freeing a sweep's space in MLflow (`seg58 gc`): a run's checkpoints and its logged MLflow Models,
or a whole failed run. A run with a registered model version is never touched: the registry's
versions point into it. Each function returns the bytes it frees (or would, with dry_run)."""

from __future__ import annotations

from typing import Any

from seg58.tracking.store import resolve_uri

CHECKPOINT_DIR = "checkpoints"


def registered_runs(uri: str | None, run_ids: list[str]) -> set[str]:
    """Those of these runs that a registered model version comes from."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(resolve_uri(uri))
    return {run_id for run_id in run_ids if client.search_model_versions(f"run_id='{run_id}'", max_results=1)}


def _size(list_artifacts: Any, path: str | None = None) -> int:
    total = 0
    for info in list_artifacts(path):
        total += _size(list_artifacts, info.path) if info.is_dir else int(info.file_size or 0)
    return total


def trim_run(uri: str | None, run_id: str, dry_run: bool = False) -> int:
    """Delete a run's checkpoints and the MLflow Models it logged; its metrics, params, visuals
    and reports stay."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.tracking import MlflowClient

    client = MlflowClient(resolve_uri(uri))
    run = client.get_run(run_id)
    freed = _size(lambda p: client.list_artifacts(run_id, p), CHECKPOINT_DIR)
    if freed and not dry_run:
        get_artifact_repository(run.info.artifact_uri).delete_artifacts(CHECKPOINT_DIR)
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'")
    for model in models:
        freed += _size(lambda p, m=model.model_id: client.list_logged_model_artifacts(m, p))
        if not dry_run:
            get_artifact_repository(model.artifact_location).delete_artifacts()
            client.delete_logged_model(model.model_id)
    return freed


def delete_run(uri: str | None, run_id: str, dry_run: bool = False) -> int:
    """A failed run gone: every artifact deleted, the run itself moved to MLflow's trash."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.tracking import MlflowClient

    client = MlflowClient(resolve_uri(uri))
    run = client.get_run(run_id)
    freed = trim_run(uri, run_id, dry_run) + _size(lambda p: client.list_artifacts(run_id, p))
    if not dry_run:
        get_artifact_repository(run.info.artifact_uri).delete_artifacts()
        client.delete_run(run_id)
    return freed
