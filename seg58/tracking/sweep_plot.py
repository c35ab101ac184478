"""The sweep's own comparison: what the sweep varied against val/miou as parallel coordinates, an
interactive HTML page (plotly) and a PNG (matplotlib) on the sweep's MLflow run, for a grid as for a
search. MLflow's compare page opens its parallel coordinates on whichever params come first
(`encoder.kwargs`, ...) against a system metric; these open on the swept keys."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

METRIC = "val/miou"


def swept_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, str]], list[float]]:
    """(swept keys, each finished run's values of them, its best val/miou) from leaderboard rows,
    whose `overrides` hold only the keys that vary across the sweep."""
    keys: list[str] = []
    values, scores = [], []
    for row in rows:
        if row.get("status") not in ("FINISHED", "PRUNED") or not math.isfinite(row.get("best_val_miou", math.nan)):
            continue
        pairs = dict(p.split("=", 1) for p in str(row.get("overrides", "")).split() if "=" in p)
        keys += [k for k in pairs if k not in keys]
        values.append(pairs)
        scores.append(float(row["best_val_miou"]))
    return keys, values, scores


def _axis(key: str, column: list[str]) -> tuple[str, list[float], list[float] | None, list[str] | None]:
    """(label, positions, tick positions, tick labels): numbers as numbers (log10 when they span
    more than a decade, as learning rates do), anything else as evenly spaced categories."""
    try:
        numbers = [float(v) for v in column]
    except ValueError:
        names = list(dict.fromkeys(column))
        return key, [float(names.index(v)) for v in column], [float(i) for i in range(len(names))], names
    if min(numbers) > 0 and max(numbers) / min(numbers) >= 10:
        return f"log10({key})", [math.log10(v) for v in numbers], None, None
    return key, numbers, None, None


def write_parallel_plots(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """parallel_coordinates.html and .png in `folder`; nothing when no key varied or nothing finished."""
    keys, values, scores = swept_table(rows)
    if not keys or not scores:
        return []
    axes = [_axis(k, [v.get(k, "(default)") for v in values]) for k in keys]
    return [_html(axes, scores, folder / "parallel_coordinates.html"),
            _png(axes, scores, folder / "parallel_coordinates.png")]


def _html(axes: list, scores: list[float], path: Path) -> Path:
    import plotly.graph_objects as go

    dimensions = [dict(label=label, values=pos, **({"tickvals": ticks, "ticktext": names} if ticks else {}))
                  for label, pos, ticks, names in axes]
    dimensions.append(dict(label=METRIC, values=scores))
    figure = go.Figure(go.Parcoords(line=dict(color=scores, colorscale="Viridis", showscale=True),
                                    dimensions=dimensions))
    figure.update_layout(title=f"swept keys against best {METRIC}")
    figure.write_html(str(path), include_plotlyjs=True, full_html=True)  # offline: no CDN needed
    return path


def _png(axes: list, scores: list[float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [pos for _, pos, _, _ in axes] + [scores]
    labels = [label for label, *_ in axes] + [METRIC]
    spans = [(min(c), max(c)) for c in columns]
    scaled = [[(v - lo) / (hi - lo) if hi > lo else 0.5 for v in c] for c, (lo, hi) in zip(columns, spans, strict=True)]
    fig, ax = plt.subplots(figsize=(2.2 * len(columns) + 1, 4.5))
    cmap, (low, high) = plt.get_cmap("viridis"), spans[-1]
    for i, score in enumerate(scores):
        shade = (score - low) / (high - low) if high > low else 0.5
        ax.plot(range(len(columns)), [c[i] for c in scaled], color=cmap(shade), alpha=0.8)
    ticked = [(ticks, names) for _, _, ticks, names in axes] + [(None, None)]
    for x, ((ticks, names), (lo, hi)) in enumerate(zip(ticked, spans, strict=True)):
        ax.axvline(x, color="grey", lw=0.8)
        marks = zip(ticks, names, strict=True) if ticks else ((lo, f"{lo:.3g}"), (hi, f"{hi:.3g}"))
        for value, text in marks:
            ax.text(x, (value - lo) / (hi - lo) if hi > lo else 0.5, f" {text}", fontsize=8, va="center")
    ax.set_xticks(range(len(columns)), labels, fontsize=9)
    ax.set_yticks([])
    ax.set_title(f"swept keys against best {METRIC}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
