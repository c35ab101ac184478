"""MLflow at the edge: store set-up, and a trainer callback that logs one run.

Uses MlflowClient (no fluent global state) so several runs can live in one process and a
failure in tracking never leaks into the training core.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit
MAX_PARAM_CHARS = 6000


def resolve_uri(uri: str | None) -> str:
    """Explicit setting > $MLFLOW_TRACKING_URI > MLflow's default SQLite file in the cwd.

    Made absolute so that jobs started elsewhere (submitit, SLURM) write to the same store.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
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


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def git_commit(path: Path) -> tuple[str | None, bool]:
    """(commit, dirty) of the repository holding `path`, or (None, False) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, timeout=5).stdout.strip() != ""
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return None, False


def mark_lost_run(uri: str | None, run_id_file: Path, state: str) -> str | None:
    """A job that died without a word (scancel, node failure) leaves its run RUNNING forever;
    the sweeper, which outlives it, closes the run as KILLED and says why."""
    if not run_id_file.is_file():
        return None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(resolve_uri(uri))
    run_id = run_id_file.read_text().strip()
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, "slurm.state", state)
        client.set_terminated(run_id, "KILLED")
    return run_id


class MlflowCallback:
    """Trainer callback: params + tags at start, metrics per epoch, artifacts and status at end."""

    def __init__(
        self,
        uri: str | None,
        experiment_name: str,
        run_name: str,
        params: dict[str, Any],
        tags: dict[str, str] | None = None,
        artifact_dirs: dict[str, Path] | None = None,
        log_checkpoint: bool = True,
        run_id_file: Path | None = None,
    ):
        self.uri = resolve_uri(uri)
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.params = params
        self.tags = tags or {}
        self.artifact_dirs = artifact_dirs or {}
        self.log_checkpoint = log_checkpoint
        self.run_id_file = Path(run_id_file) if run_id_file else None
        self.client: Any = None
        self.run_id: str | None = None

    def on_fit_start(self, trainer: Any) -> None:
        from mlflow.tracking import MlflowClient

        ensure_store(self.uri)
        self.client = MlflowClient(self.uri)
        self.run_id = self._previous_run()
        if self.run_id is not None:  # a restarted job (requeue, preemption, kill): same run
            self.client.update_run(self.run_id, status="RUNNING")
            log.info("MLflow: resuming run %s", self.run_id)
        else:
            self._start_run()
        self._log_missing_epochs(trainer.history)

    def _previous_run(self) -> str | None:
        if self.run_id_file is None or not self.run_id_file.is_file():
            return None
        run_id = self.run_id_file.read_text().strip()
        try:
            self.client.get_run(run_id)
        except Exception:
            log.warning("MLflow run %s named in %s is not in %s; starting a new run",
                        run_id, self.run_id_file, self.uri)
            return None
        return run_id

    def _start_run(self) -> None:
        from mlflow.entities import Param

        exp = experiment_id(self.client, self.experiment_name, self.uri)
        run = self.client.create_run(exp, run_name=self.run_name, tags=self.tags)
        self.run_id = run.info.run_id
        if self.run_id_file is not None:
            tmp = self.run_id_file.with_name(self.run_id_file.name + ".tmp")
            tmp.write_text(self.run_id)
            os.replace(tmp, self.run_id_file)
        items = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in flatten(self.params).items()]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + MAX_PARAMS_PER_BATCH])
        for name, folder in self.artifact_dirs.items():
            if Path(folder).is_dir():
                self.client.log_artifacts(self.run_id, str(folder), artifact_path=name)
        log.info("MLflow run %s (%s) in experiment %r at %s", self.run_id, self.run_name,
                 self.experiment_name, self.uri)

    def _log_missing_epochs(self, history: list[dict[str, float]]) -> None:
        """After a restart: log the checkpointed epochs that never reached MLflow (the job died
        between saving the checkpoint and logging), so every epoch is logged exactly once."""
        if not history:
            return
        logged = {m.step for m in self.client.get_metric_history(self.run_id, "train/loss")}
        for epoch, metrics in enumerate(history):
            if epoch not in logged:
                self.on_epoch_end(None, epoch, metrics)

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, epoch) for k, v in metrics.items() if math.isfinite(v)]
        self.client.log_batch(self.run_id, metrics=batch)

    def on_fit_end(self, trainer: Any, summary: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        final = {"best/val_miou": summary["best_val_miou"], "best/epoch": summary["best_epoch"]}
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in final.items() if math.isfinite(v)],
        )
        best = trainer.checkpoint_dir / "best.pt" if trainer.checkpoint_dir else None
        if self.log_checkpoint and best is not None and best.is_file():
            self.client.log_artifact(self.run_id, str(best), artifact_path="checkpoints")
        self.client.set_terminated(self.run_id, "FINISHED")

    def on_failure(self, error: BaseException) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_tag(self.run_id, "error", f"{type(error).__name__}: {error}"[:5000])
            killed = isinstance(error, (KeyboardInterrupt, SystemExit))  # signals, preemption
            self.client.set_terminated(self.run_id, "KILLED" if killed else "FAILED")
