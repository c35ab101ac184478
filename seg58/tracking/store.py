"""The MLflow store: where it is, creating it safely, probing it, and records written from
outside a training run (failed starts, jobs that died without a word)."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seg58.base.db_uri import with_installed_driver
from seg58.base.environment import environ
from seg58.base.errors import TrackingError
from seg58.base.names import CELL_STATUS_TAG

log = logging.getLogger(__name__)

# MLflow's own limits, and ours for long texts in tags
MAX_PARAMS_PER_BATCH = 100  # params per log_batch call
MAX_PARAM_CHARS = 6000  # characters of one param value
MAX_TAG_CHARS = 5000  # an error message kept in a tag (readable in the UI)


QUICK_REQUESTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
"""A reachability probe should answer in seconds, not after MLflow's minutes of retries."""


def check_reachable(uri: str | None, experiment: str | None = None) -> str:
    """Fail before any expensive work when the tracking store cannot be used: unreachable, the
    credentials refused, or (with `experiment`, on an MLflow server with users) no permission to
    write to that experiment."""
    uri = resolve_uri(uri)
    try:
        with environ(QUICK_REQUESTS):
            _probe_database(uri)
            ensure_store(uri)
            from mlflow.tracking import MlflowClient

            client = MlflowClient(uri)
            client.search_experiments(max_results=1)
            if experiment and uri.startswith(("http://", "https://")):
                _check_writable(client, uri, experiment)
    except TrackingError:
        raise
    except Exception as e:
        raise _refusal(uri, e) or TrackingError(
            f"MLflow tracking store {uri} is not reachable ({type(e).__name__}: {str(e)[:300]}). "
            f"Start the server, fix MLFLOW_TRACKING_URI / tracking.uri, or run with tracking=none"
        ) from None
    return uri


def _probe_database(uri: str) -> None:
    """One connection to a database store (PostgreSQL, MySQL) with a short timeout: MLflow itself
    retries an unreachable database for minutes before it gives up."""
    if uri.startswith(("sqlite:", "http://", "https://", "file:", "databricks")) or "://" not in uri:
        return
    import sqlalchemy

    connect_args = {"connect_timeout": 5} if uri.startswith("postgresql") else {}
    engine = sqlalchemy.create_engine(uri, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _check_writable(client: Any, uri: str, name: str) -> None:
    """A server with users (mlflow server --app-name basic-auth) lets a user read what it may not
    write: probe with an experiment tag (creating the experiment makes the user its manager)."""
    found = client.get_experiment_by_name(name)
    try:
        if found is None:
            client.create_experiment(name)
        else:
            client.set_experiment_tag(found.experiment_id, "seg58.write_check", "ok")
    except Exception as e:
        refused = _refusal(uri, e, name)
        if refused is None:
            raise
        raise refused from None


def _refusal(uri: str, error: Exception, experiment: str | None = None) -> TrackingError | None:
    """The server's 401 / 403 in one line, naming the user and where its credentials come from."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "(none: $MLFLOW_TRACKING_USERNAME is not set)")
    if "error code 401" in str(error):
        return TrackingError(f"MLflow server {uri} refused the credentials of user {user} (401, not authenticated): "
                             "check $MLFLOW_TRACKING_USERNAME / $MLFLOW_TRACKING_PASSWORD (or $MLFLOW_TRACKING_TOKEN)")
    if "error code 403" in str(error):
        what = f"experiment {experiment!r}" if experiment else "this server"
        return TrackingError(f"user {user} may not write to {what} on MLflow server {uri} (403, permission "
                             "denied): ask its owner for EDIT permission, or choose another tracking.experiment_name")
    return None


def existing_store(uri: str | None) -> Any:
    """A client for a store that must already hold runs (report, rerun, evaluate a run): a
    missing SQLite file is an error, not a new empty store, and a dead server fails fast."""
    uri = resolve_uri(uri)
    db = _sqlite_path(uri)
    if db is not None and not db.is_file():
        raise TrackingError(f"no MLflow store at {db}: run from the folder that holds mlflow.db, or set "
                            f"MLFLOW_TRACKING_URI / --tracking-uri / tracking.uri")
    check_reachable(uri)
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def get_run(client: Any, run_id: str) -> Any:
    """The run, or a TrackingError naming the id and the store."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise TrackingError(f"no MLflow run {run_id!r} in {client.tracking_uri}") from None


def record_failed_run(uri: str | None, experiment_name: str, run_name: str, tags: dict[str, str],
                      reason: str) -> None:
    """A run that never started (bad data): a FAILED run with the reason, nothing else."""
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(uri)
    ensure_store(uri)
    client = MlflowClient(uri)
    run = client.create_run(experiment_id(client, experiment_name, uri), run_name=run_name,
                            tags={**tags, "error": reason[:MAX_TAG_CHARS]})
    client.set_terminated(run.info.run_id, "FAILED")


def resolve_uri(uri: str | None) -> str:
    """Explicit setting > $MLFLOW_TRACKING_URI > MLflow's default SQLite file in the cwd.

    A plain postgresql:// gets the installed driver (seg58/base/db_uri.py). Made absolute so that
    jobs started elsewhere (submitit, SLURM) write to the same store.
    """
    uri = with_installed_driver(uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db",
                                "tracking.uri")
    db = _sqlite_path(uri)
    return f"sqlite:///{db.resolve()}" if db is not None else uri


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_store(uri: str) -> None:
    """Create / migrate a SQLite store once, under a file lock.

    MLflow creates its schema on first open; jobs that open a new file at the same moment race
    in the migration and corrupt it (measured: 3 of 3 crashes). Serialising the first open
    removes the race; afterwards concurrent writers are safe.
    """
    db = _sqlite_path(uri)
    if db is None:
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    from mlflow.tracking import MlflowClient

    with _file_lock(db.with_name(db.name + ".lock")):
        MlflowClient(uri).search_experiments(max_results=1)


def experiment_id(client: Any, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    db = _sqlite_path(uri)
    location = (db.parent / "mlartifacts").as_uri() if db else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # a concurrent job created it first
        return client.get_experiment_by_name(name).experiment_id


def mark_lost_run(uri: str | None, run_id_file: Path, state: str) -> str | None:
    """A job that died without a word (scancel, node failure) leaves its run RUNNING forever;
    the sweeper, which outlives it, closes the run as KILLED and says why. Either way the run is
    tagged with its cell's status in the sweep (`state`), so that the leaderboard names an
    interrupted trial as the summary does (INTERRUPTED), not as MLflow does (KILLED, FAILED)."""
    if not run_id_file.is_file():
        return None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(resolve_uri(uri))
    run_id = run_id_file.read_text().strip()
    client.set_tag(run_id, CELL_STATUS_TAG, str(state))
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, "slurm.state", state)
        client.set_terminated(run_id, "KILLED")
    return run_id
