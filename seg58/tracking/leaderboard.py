"""Sweep leaderboards from MLflow alone: one row per child run of a sweep's parent run, seed
groups, the curve plot; the sweep's end (and `seg58 report`) logs them to the parent run, so they
can always be rebuilt later from the tracking store."""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seg58.base.names import CELL_STATUS_TAG, PARENT_RUN_TAG, STOP_KIND_TAG
from seg58.base.status import CellStatus
from seg58.base.stop import StopKind
from seg58.tracking.sweep_plot import write_parallel_plots

COLUMNS = ["rank", "run", "overrides", "best_val_miou", "best_epoch", "imgs_per_s",
           "peak_mem_mb", "time_s", "epochs", "status"]


def children(client: Any, parent_id: str) -> list[Any]:
    parent = client.get_run(parent_id)
    return client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent_id}'", max_results=5000)


def _mean(history: list[Any]) -> float:
    values = [m.value for m in history]
    return sum(values) / len(values) if values else math.nan


def _at_best_epoch(client: Any, run: Any, key: str) -> float:
    """`key` at the run's best epoch (its last logged value when no best epoch is recorded); NaN
    where it was not logged (a class absent from the validation masks has no IoU)."""
    history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda x: x.step)
    best = run.data.metrics.get("best/epoch")
    values = [x.value for x in history if best is None or x.step == int(best)]
    return values[-1] if values else math.nan


def leaderboard(client: Any, parent_id: str, class_iou: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per child run, best validation mIoU first (failed runs last). `class_iou`: metric
    keys of classes (seg58.base.classes.metric_key: "dust", "burn_marks") whose val IoU at the best
    epoch each row also carries, as `iou/<key>` (shown after the COLUMNS)."""
    rows = []
    for run in children(client, parent_id):
        m, info = run.data.metrics, run.info
        end = info.end_time or info.start_time
        rows.append({
            "run": info.run_name,
            "run_id": info.run_id,
            "overrides": run.data.tags.get("overrides", ""),
            "best_val_miou": m.get("best/val_miou", max(
                (x.value for x in client.get_metric_history(info.run_id, "val/miou")), default=math.nan)),
            "best_epoch": int(m["best/epoch"]) + 1 if "best/epoch" in m else None,
            "val_miou_ci_low": m.get("best/val_miou_ci_low", math.nan),
            "val_miou_ci_high": m.get("best/val_miou_ci_high", math.nan),
            "imgs_per_s": _mean(client.get_metric_history(info.run_id, "perf/train_imgs_per_s")),
            "peak_mem_mb": max((x.value for x in client.get_metric_history(info.run_id, "perf/peak_mem_mb")),
                               default=math.nan),
            "time_s": (end - info.start_time) / 1000 if end else math.nan,
            "epochs": int(m["epochs_trained"]) if "epochs_trained" in m else None,
            "status": _status(run),
            **{f"iou/{key}": _at_best_epoch(client, run, f"val/iou/{key}") for key in class_iou},
        })
    _keep_varying_overrides(rows)
    rows.sort(key=lambda r: (r["status"] not in ("FINISHED", "PRUNED"),
                             -(r["best_val_miou"] if math.isfinite(r["best_val_miou"]) else -1)))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def _status(run: Any) -> str:
    """MLflow's status of the run, in the sweep's words where they differ: PRUNED for a pruned
    trial, and INTERRUPTED, as the summary says, for a run Ctrl-C or a requeue stopped (MLflow:
    KILLED or FAILED) that did not finish since."""
    tags = run.data.tags
    if _pruned(tags):
        return CellStatus.PRUNED.value
    if tags.get(CELL_STATUS_TAG) == CellStatus.INTERRUPTED and run.info.status != "FINISHED":
        return CellStatus.INTERRUPTED.value
    return run.info.status


def _pruned(tags: dict[str, str]) -> bool:
    """stop.kind; runs logged by older versions carry pruned=true instead."""
    return tags.get(STOP_KIND_TAG) == StopKind.pruned.value or tags.get("pruned") == "true"


def _keep_varying_overrides(rows: list[dict[str, Any]]) -> None:
    """Show what differs between the cells (the swept values), not what they share."""
    tokens = [r["overrides"].split() for r in rows]
    common = set.intersection(*map(set, tokens)) if len(rows) > 1 else set()
    for r, t in zip(rows, tokens, strict=True):
        r["overrides"] = " ".join(x for x in t if x not in common)


def seed_groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished runs that differ only by `seed=`, pooled: mean +- std of best val mIoU over n
    seeds, best mean first. Empty when no configuration ran with more than one seed."""
    import statistics
    from collections import defaultdict

    groups: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["status"] == "FINISHED" and math.isfinite(r["best_val_miou"]):
            key = " ".join(t for t in r["overrides"].split() if not t.startswith("seed="))
            groups[key or "(defaults)"].append(r["best_val_miou"])
    if all(len(v) < 2 for v in groups.values()):
        return []
    pooled = [{"overrides": k, "n": len(v), "mean": statistics.fmean(v),
               "std": statistics.stdev(v) if len(v) > 1 else 0.0} for k, v in groups.items()]
    return sorted(pooled, key=lambda g: -g["mean"])


def seed_markdown(groups: list[dict[str, Any]]) -> str:
    lines = ["| overrides (seeds pooled) | n | best val mIoU mean ± std |", "|---|---|---|"]
    lines += [f"| {g['overrides']} | {g['n']} | {g['mean']:.4f} ± {g['std']:.4f} |" for g in groups]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}" if abs(value) < 1 else f"{value:.1f}"
    return "-" if value is None else str(value)


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """COLUMNS, then the per-class IoU columns the rows were built with."""
    return [*COLUMNS, *(k for k in (rows[0] if rows else {}) if k.startswith("iou/"))]


def _cell(row: dict[str, Any], column: str) -> str:
    """best_val_miou with its 95 % bootstrap interval beside it when the run logged one: "0.4120 [0.3710, 0.4550]"."""
    low, high = row.get("val_miou_ci_low", math.nan), row.get("val_miou_ci_high", math.nan)
    if column == "best_val_miou" and math.isfinite(low) and math.isfinite(high):
        return f"{_fmt(row[column])} [{low:.4f}, {high:.4f}]"
    return _fmt(row[column])


def to_markdown(rows: list[dict[str, Any]]) -> str:
    shown = columns(rows)
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_cell(r, c) for c in shown) + " |" for r in rows]
    return "\n".join(lines)


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*columns(rows), "run_id", "val_miou_ci_low", "val_miou_ci_high"],
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def plot_curves(client: Any, rows: list[dict[str, Any]], path: Path, metric: str = "val/miou") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for r in rows:
        history = sorted(client.get_metric_history(r["run_id"], metric), key=lambda m: m.step)
        if history:
            ax.plot([m.step + 1 for m in history], [m.value for m in history], marker="o", markersize=3,
                    label=f"#{r['rank']} {r['overrides'] or r['run']} ({_fmt(r['best_val_miou'])})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def publish(client: Any, parent_id: str, class_iou: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Build the leaderboard and the curve plot and log both to the parent run."""
    rows = leaderboard(client, parent_id, class_iou)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "leaderboard.md").write_text(to_markdown(rows) + "\n")
        (folder / "leaderboard.csv").write_text(to_csv(rows))
        groups = seed_groups(rows)
        if groups:
            (folder / "leaderboard_by_seed.md").write_text(seed_markdown(groups) + "\n")
        if rows:
            plot_curves(client, rows, folder / "val_miou_curves.png")
            write_parallel_plots(rows, folder)  # the swept keys against val/miou (seg58/tracking/sweep_plot.py)
        client.log_artifacts(parent_id, str(folder), artifact_path="report")
    finished = [r for r in rows if r["status"] == "FINISHED"]
    if finished:
        client.set_tag(parent_id, "best.run", finished[0]["run"])
        client.set_tag(parent_id, "best.overrides", finished[0]["overrides"])
        client.log_metric(parent_id, "best/val_miou", finished[0]["best_val_miou"])
    return rows
