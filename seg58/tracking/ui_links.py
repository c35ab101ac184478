"""Links into the MLflow UI for a sweep's runs (its training-runs page, the compare view, the
metric curves), printed at a sweep's end and by `seg58 report`."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from seg58.base.secrets import mask

DEFAULT_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default
MAX_COMPARED = 30  # runs in the compare links (best first): the compare page slows down beyond


def ui_base(uri: str) -> tuple[str, str | None]:
    """(the UI's base URL for this store, the command that serves it when it is no server)."""
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/"), None
    return DEFAULT_UI, f"mlflow ui --backend-store-uri {mask(uri)}"  # a database password stays off the screen


def ui_links(uri: str, experiment_id: str, run_ids: list[str], metric: str = "val/miou") -> list[tuple[str, str]]:
    """Routes of MLflow 3.17's UI (hash router): the experiment's training-runs tab (its default
    page is the GenAI overview), the compare page of the runs (parameters that differ, parallel
    coordinates) and their `metric` curves per step."""
    base, _ = ui_base(uri)

    def q(value: Any) -> str:
        return urllib.parse.quote(json.dumps(value, separators=(",", ":")), safe="")

    links = [("training runs", f"{base}/#/experiments/{experiment_id}/runs")]
    if run_ids:
        runs, experiments = q(run_ids[:MAX_COMPARED]), q([experiment_id])
        links += [
            ("compare", f"{base}/#/compare-runs?runs={runs}&experiments={experiments}"),
            (f"{metric} curves", f"{base}/#/metric/?runs={runs}&metric={q(metric)}&experiments={experiments}"
                                 f"&plot_metric_keys={q([metric])}&x_axis=step&show_point=true"),
        ]
    return links


def sweep_links(client: Any, parent_id: str, rows: list[dict[str, Any]]) -> str:
    """The links for a sweep's children, best first, as lines to print; links are never worth
    failing a report for."""
    try:
        uri = client.tracking_uri
        experiment = client.get_run(parent_id).info.experiment_id
    except Exception as e:
        return f"(no MLflow UI links: {type(e).__name__}: {e})"
    _, serve = ui_base(uri)
    ids = [r["run_id"] for r in rows]
    head = ["MLflow UI" + (f" (start it: {serve})" if serve else "") + ": in the runs table, expand the sweep (+)"]
    if len(ids) > MAX_COMPARED:
        head.append(f"  (compare and curves: the best {MAX_COMPARED} of {len(ids)} runs)")
    return "\n".join([*head, *(f"  {name}: {url}" for name, url in ui_links(uri, experiment, ids))])
