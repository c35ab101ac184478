"""How far a sweep cell's MLflow run has come, for `seg58 status`."""

from __future__ import annotations

import time
from pathlib import Path

from seg58.tracking.store import resolve_uri


def run_progress(uri: str | None, run_id_file: Path, metric: str = "val/miou",
                 ) -> tuple[int | None, float | None, float | None, float | None]:
    """(epochs logged, latest and best `metric`, seconds since the run started); Nones when the
    run is not there (yet)."""
    if not run_id_file.is_file():
        return None, None, None, None
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(resolve_uri(uri))
        run_id = run_id_file.read_text().strip()
        history = sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)
        info = client.get_run(run_id).info
    except Exception:
        return None, None, None, None
    end = (info.end_time or time.time() * 1000) / 1000
    values = [m.value for m in history]
    return (len(values), values[-1] if values else None, max(values) if values else None,
            end - info.start_time / 1000)
