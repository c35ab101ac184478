"""A search's own Optuna plots (optimisation history, parameter importances) on the sweep's
MLflow parent run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def publish_plots(study: Any, uri: str | None, parent_run_id: str) -> list[str]:
    """Optimisation history and parameter importances (Optuna's own plots) on the sweep's run."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt
    from mlflow.tracking import MlflowClient
    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization import matplotlib as oplt

    from seg58.tracking.store import resolve_uri

    warnings.filterwarnings("ignore", category=ExperimentalWarning)  # Optuna's matplotlib plots
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, plot in (("optimization_history", oplt.plot_optimization_history),
                           ("param_importances", oplt.plot_param_importances)):
            try:
                ax = plot(study)
            except Exception as e:  # importances need >= 2 finished trials with varied params
                log.info("search plot %s skipped: %s", name, e)
                continue
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(8, 4.5)
            fig.tight_layout()
            fig.savefig(Path(tmp) / f"{name}.png", dpi=110)
            plt.close(fig)
            written.append(f"search/{name}.png")
        if written:
            MlflowClient(resolve_uri(uri)).log_artifacts(parent_run_id, tmp, artifact_path="search")
    return written
