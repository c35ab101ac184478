"""A search's own Optuna plots (optimisation history, parameter importances; for a multi-objective
search the Pareto front, plot and table) on the sweep's MLflow parent run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


PARETO_TABLE = "search/pareto_front.md"


def pareto_markdown(study: Any) -> str:
    """The non-dominated trials of a multi-objective study, one row each."""
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    head = ["trial", *(f"{n} ({d.name.lower()})" for n, d in zip(names, study.directions, strict=True)), "params"]
    rows = [[f"#{t.number}", *(f"{v:.4g}" for v in t.values), " ".join(f"{k}={v}" for k, v in t.params.items())]
            for t in sorted(study.best_trials, key=lambda t: t.number)]
    return "\n".join("| " + " | ".join(r) + " |" for r in [head, ["---"] * len(head), *rows])


def publish_plots(study: Any, uri: str | None, parent_run_id: str) -> list[str]:
    """Optimisation history and parameter importances (Optuna's own plots) on the sweep's run; for
    a multi-objective study, the Pareto front (plot, table and a `pareto.trials` tag) instead."""
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
    multi = len(study.directions) > 1
    plots = (("pareto_front", oplt.plot_pareto_front),) if multi else (
        ("optimization_history", oplt.plot_optimization_history), ("param_importances", oplt.plot_param_importances))
    client = MlflowClient(resolve_uri(uri))
    with tempfile.TemporaryDirectory() as tmp:
        if multi:
            (Path(tmp) / Path(PARETO_TABLE).name).write_text(pareto_markdown(study) + "\n")
            written.append(PARETO_TABLE)
            client.set_tag(parent_run_id, "pareto.trials", ",".join(str(t.number) for t in study.best_trials))
        for name, plot in plots:
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
            client.log_artifacts(parent_run_id, tmp, artifact_path="search")
    return written
