"""One cell's record: its outcome from Hydra's JobReturn, and its line in the sweep's reports."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from seg58.base.status import CellStatus
from seg58.base.stop import is_pruned
from seg58.sweep.ledger import LIVE_STATES, OK_STATES, HoursTally


def cell_of(num: int, ret: JobReturn, info: dict[str, Any], sweep_dir: Path, metric: str | None = None) -> dict:
    """A cell's record from its JobReturn. The task's return value: a number is the objective; a
    dict names it by `metric` and its other plain values (epochs, times, ...) are kept, its
    `stop` ({"kind": "pruned", "epoch": N}, seg58/base/stop.py) says whether it was pruned."""
    ok = ret.status == JobStatus.COMPLETED
    value = ret._return_value
    result = value if ok and isinstance(value, dict) else {}
    objective = objective_of_result(value, metric) if ok else None
    stop = result.get("stop")
    state = info.get("state") or (CellStatus.COMPLETED if ok else CellStatus.FAILED)
    if state == CellStatus.COMPLETED and is_pruned(stop):
        state = CellStatus.PRUNED
    output_dir = Path(str(ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg else sweep_dir / str(num)))
    metrics = metric if isinstance(metric, (list, tuple)) else [metric]
    kept = {k: _plain(v) for k, v in result.items()
            if k not in (*metrics, "stop", "seconds") and (v is None or isinstance(v, (int, float, str, bool)))}
    return {
        **kept,
        "num": num,
        "overrides": list(ret.overrides or []),
        "status": state,
        "objective": objective,
        "elapsed_s": result.get("seconds"),
        "stop": stop,
        "error": None if ok else f"{type(value).__name__}: {value}".strip()[:2000],
        "output_dir": str(output_dir),
        **{k: v for k, v in info.items() if k != "state"},
    }


def objective_of_result(value: Any, metric: Any) -> float | list[float] | None:
    """The objective a task returned: a number; a dict's `metric` value; with a list of metrics
    (multi-objective) the list of their values, as a list or tuple of numbers too. None when
    missing or not finite."""
    if isinstance(metric, (list, tuple)):
        values = [value.get(m) for m in metric] if isinstance(value, dict) else value
        if not isinstance(values, (list, tuple)) or len(values) != len(metric):
            return None
        finite = [_finite(v) for v in values]
        return None if None in finite else finite
    if isinstance(value, (list, tuple)) and metric is None:  # hydra-optuna-sweeper's multi-objective return
        finite = [_finite(v) for v in value]
        return None if not finite or None in finite else finite
    if isinstance(value, dict):
        return _finite(value.get(metric)) if metric is not None else None
    return None if isinstance(value, bool) else _finite(value)


def _plain(value: Any) -> Any:
    return _finite(value) if isinstance(value, float) else value


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def format_objective(value: float | list[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in value) + "]" if isinstance(value, list) else f"{value:.4f}"


def format_cell(c: dict[str, Any]) -> str:
    where = f" slurm={c['job_id']}" if c.get("job_id") and c.get("executor", "slurm") == "slurm" else ""
    score = "" if c.get("objective") is None else f" objective={format_objective(c['objective'])}"
    epochs = f" epochs={c['epochs_trained']}" if c.get("epochs_trained") is not None else ""
    took = f" in {duration(c['elapsed_s'])}" if c.get("elapsed_s") is not None else ""
    line = f"  #{c['num']} {c['status']:<10}{where}{score}{epochs}{took}  {' '.join(c['overrides'])}"
    if c["status"] not in (*OK_STATES, *LIVE_STATES):
        log_path = c.get("stderr") or c.get("output_dir")
        line += f"\n      error: {(c['error'] or '').splitlines()[0] if c.get('error') else '?'}"
        line += f"\n      log: {log_path}" if log_path else ""
    return line


def format_summary(cells: list[dict]) -> str:
    return "\n".join(format_cell(c) for c in cells)


def spent(cells: list[dict]) -> dict[str, Any]:
    """A list of cells' compute (ledger.HoursTally); {} before the first reported any."""
    tally = HoursTally()
    for cell in cells:
        tally.add(cell)
    return tally.result()


def format_spent(cost: dict[str, Any], total: int | None = None) -> str:
    """`compute: 0.412 GPU-h, 3.3 CPU-h in 12 cells (est. 1.03 GPU-h for all 30)`; '' when none."""
    if not cost:
        return ""
    n = int(cost.get("cells_measured") or 0)
    hours = {k.removesuffix("_hours").upper(): v for k, v in cost.items() if k.endswith("_hours")}
    text = ", ".join(f"{v:.3g} {k}-h" for k, v in hours.items())
    line = f"compute: {text}" + (f" in {n} cell(s)" if n else "")
    if total and n and total > n and hours:
        first, value = next(iter(hours.items()))
        line += f" (est. {value / n * total:.3g} {first}-h for all {total})"
    return line
