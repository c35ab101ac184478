"""The trainer callback that logs one training run to MLflow: params and tags at the start, metrics
every epoch, checkpoint, visuals and MLflow Model at the end, and how the run ended.

Uses MlflowClient (no fluent global state) so several runs can live in one process and a
failure in tracking never leaks into the training core.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from seg58.base.names import (
    CHECKPOINT_DIR,
    PARENT_RUN_TAG,
    STOP_EPOCH_TAG,
    STOP_KIND_TAG,
    STOP_REASON_TAG,
)
from seg58.base.stop import StopKind
from seg58.data.lineage import Lineage
from seg58.engine.callback import Callback, FitSummary, TrainerEvent
from seg58.tracking.lineage import log_dataset
from seg58.tracking.store import (
    MAX_PARAM_CHARS,
    MAX_PARAMS_PER_BATCH,
    MAX_TAG_CHARS,
    TrackingError,
    ensure_store,
    experiment_id,
    resolve_uri,
)

log = logging.getLogger(__name__)


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


def _interval_at_best(history: Sequence[Mapping[str, float]], epoch: int) -> dict[str, float]:
    """`best/val_miou_ci_low|high`: the bootstrap interval of the best epoch's val mIoU (the leaderboard shows it)."""
    at_best = history[epoch] if 0 <= epoch < len(history) else {}
    return {f"best/val_{k}": at_best[f"val/{k}"] for k in ("miou_ci_low", "miou_ci_high") if f"val/{k}" in at_best}


class MlflowCallback(Callback):
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
        parent_run_id: str | None = None,
        end_artifact_dirs: dict[str, Path] | None = None,
        system_metrics: bool = False,
        system_metrics_interval_s: float = 10.0,
        model_config: dict[str, Any] | None = None,
        dataset: Lineage | None = None,
        best_checkpoint: Path | None = None,
    ):
        self.uri = resolve_uri(uri)
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.params = params
        self.tags = tags or {}
        self.artifact_dirs = artifact_dirs or {}
        self.log_checkpoint = log_checkpoint
        self.run_id_file = Path(run_id_file) if run_id_file else None
        self.end_artifact_dirs = end_artifact_dirs or {}  # logged when training ends
        self.system_metrics = system_metrics  # MLflow's CPU/RAM/GPU sampler, next to the epochs
        self.system_metrics_interval_s = system_metrics_interval_s
        self.model_config = model_config  # the resolved run config; given: best.pt is also logged as an MLflow Model
        self.best_checkpoint = best_checkpoint  # the Checkpointer's best.pt, logged when training ends
        self._monitor: Any = None
        if parent_run_id:  # nested under a sweep's run in the MLflow UI
            self.tags = {**self.tags, PARENT_RUN_TAG: parent_run_id}
        self.dataset = dataset  # logged as the run's MLflow dataset input; its digest also as a tag
        if dataset is not None:
            self.tags = {**self.tags, "dataset.digest": dataset.digest, "dataset.root": str(dataset.root)}
        self.client: Any = None
        self._pending: list[tuple[int, list]] = []  # (epoch, metrics) not yet accepted by MLflow
        self.run_id: str | None = None

    def on_fit_start(self, trainer: Any) -> None:
        from mlflow.tracking import MlflowClient

        ensure_store(self.uri)
        self.client = MlflowClient(self.uri)
        self.run_id = self._previous_run()
        resumed = self.run_id is not None
        if resumed:  # a restarted job (requeue, preemption, kill): same run
            self.client.update_run(self.run_id, status="RUNNING")
            log.info("MLflow: resuming run %s", self.run_id)
        else:
            self._start_run()
        trainer.meta["mlflow_run_id"] = self.run_id  # the run this checkpoint logs to
        if self.system_metrics:
            self._start_monitor(resumed)
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
        if self.dataset is not None:
            log_dataset(self.client, self.run_id, self.dataset)
        log.info("MLflow run %s (%s) in experiment %r at %s", self.run_id, self.run_name,
                 self.experiment_name, self.uri)

    def _start_monitor(self, resumed: bool) -> None:
        """After the run is RUNNING (MLflow's sampler quits on any other status); monitoring is
        never worth failing a run for."""
        try:
            from seg58.tracking.system_metrics import start_monitor

            self._monitor = start_monitor(self.run_id, self.uri, self.system_metrics_interval_s, resumed)
            if self._monitor.gpu_uuids:  # which physical GPUs gpu_0, gpu_1 ... are
                self.client.set_tag(self.run_id, "system_metrics.gpus", ",".join(self._monitor.gpu_uuids))
        except Exception as e:
            log.warning("MLflow: no system metrics for this run (%s: %s)", type(e).__name__, e)

    def _stop_monitor(self) -> None:
        """Before the run is terminated, on every path that ends it; safe to call twice."""
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.finish()

    def _log_missing_epochs(self, history: list[dict[str, float]]) -> None:
        """After a restart: log the checkpointed epochs that never reached MLflow (the job died
        between saving the checkpoint and logging), so every epoch is logged exactly once."""
        if not history:
            return
        logged = {m.step for m in self.client.get_metric_history(self.run_id, "train/loss")}
        for epoch, metrics in enumerate(history):
            if epoch not in logged:
                self.on_epoch_end(None, epoch, metrics)

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, epoch) for k, v in metrics.items() if math.isfinite(v)]
        self._pending.append((epoch, batch))
        self._flush()

    def log_summary(self, values: dict[str, float]) -> None:
        """Final figures (benchmarks, best scores) at step 0, then close the run."""
        from mlflow.entities import Metric

        self._stop_monitor()
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[
            Metric(k, float(v), now, 0) for k, v in values.items() if math.isfinite(float(v))])
        self.client.set_terminated(self.run_id, "FINISHED")

    def on_event(self, trainer: Any, event: TrainerEvent, value: float) -> None:
        try:
            self.client.set_tag(self.run_id, str(event), str(value))
        except Exception as e:  # a tag is not worth stopping training for
            log.warning("MLflow: could not set tag %s=%s: %s", event, value, e)

    def _flush(self) -> bool:
        """Send buffered epochs in order; on failure keep them for the next try. Training never
        waits on a broken tracking server beyond MLflow's own request retries."""
        while self._pending:
            _, batch = self._pending[0]
            try:
                self.client.log_batch(self.run_id, metrics=batch)
            except Exception as e:
                log.warning("MLflow unreachable (%s: %s); %d epoch(s) of metrics kept, retried "
                            "after the next epoch", type(e).__name__, str(e)[:200], len(self._pending))
                return False
            self._pending.pop(0)
        return True

    def on_fit_end(self, trainer: Any, summary: FitSummary) -> None:
        from mlflow.entities import Metric

        self._stop_monitor()  # normal end, early stop and pruned (KILLED) trials alike
        for attempt in range(3):
            if self._flush():
                break
            time.sleep(5 * (attempt + 1))
        else:
            self._dump_pending()

        now = int(time.time() * 1000)
        final = {"best/val_miou": summary.best_val_miou, "best/epoch": summary.best_epoch,
                 "epochs_trained": summary.epochs_trained, **summary.final,
                 **_interval_at_best(summary.history, summary.best_epoch)}
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in final.items() if math.isfinite(v)],
        )
        best = self.best_checkpoint
        if self.log_checkpoint and best is not None and best.is_file():
            self.client.log_artifact(self.run_id, str(best), artifact_path=CHECKPOINT_DIR)
        stop = summary.stop  # a StopReason, or None for a run that ran its course
        pruned = stop is not None and stop.kind is StopKind.pruned
        if self.model_config is not None and best is not None and best.is_file() and not pruned:
            self._log_model(best)
        for name, folder in self.end_artifact_dirs.items():
            if Path(folder).is_dir():
                self.client.log_artifacts(self.run_id, str(folder), artifact_path=name)
        if stop is not None:  # the one typed reason; the leaderboard reads stop.kind
            for key, value in ((STOP_KIND_TAG, stop.kind), (STOP_EPOCH_TAG, stop.epoch), (STOP_REASON_TAG, stop)):
                self.client.set_tag(self.run_id, key, str(value))
        self.client.set_terminated(self.run_id, "KILLED" if pruned else "FINISHED")  # a pruned trial: kept, marked

    # -- the best model as an MLflow Model (tracking.log_model; seg58/tracking/model.py) ------------
    def _log_model(self, best: Path) -> None:
        """A model that cannot be logged costs the run its model, not its results: warned and tagged."""
        from seg58.tracking.model import log_best_model

        try:
            uri = log_best_model(self.uri, self.run_id, best, self.model_config)
            log.info("MLflow Model of the best checkpoint: runs:/%s/model (%s)", self.run_id, uri)
        except Exception as e:
            log.warning("MLflow: the best checkpoint was not logged as a model (%s: %s)", type(e).__name__, e)
            self.client.set_tag(self.run_id, "model.error", f"{type(e).__name__}: {e}"[:MAX_TAG_CHARS])
    # -- end of the MLflow Model part ------------------------------------------------------------

    def _dump_pending(self) -> None:
        import json

        folder = self.run_id_file.parent if self.run_id_file else Path.cwd()
        path = folder / "unsynced_metrics.json"
        path.write_text(json.dumps({"run_id": self.run_id, "uri": self.uri, "epochs": [
            {"epoch": e, "metrics": {m.key: m.value for m in batch}} for e, batch in self._pending]}))
        raise TrackingError(f"MLflow at {self.uri} stayed unreachable: {len(self._pending)} epoch(s) "
                            f"of metrics for run {self.run_id} were saved to {path} instead")

    def on_failure(self, trainer: Any, error: BaseException) -> None:
        self._stop_monitor()
        if self._pending:
            try:
                self._flush()
            except Exception:
                pass
        if self.client is not None and self.run_id is not None:
            self.client.set_tag(self.run_id, "error", f"{type(error).__name__}: {error}"[:MAX_TAG_CHARS])
            killed = isinstance(error, (KeyboardInterrupt, SystemExit))  # signals, preemption
            self.client.set_terminated(self.run_id, "KILLED" if killed else "FAILED")
