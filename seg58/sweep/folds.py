"""Cross-validation as one sweep: a cell that asks for every fold (the app's SweepHooks.fold_key
set to `all`) becomes one cell per fold, and at the end the cells are grouped back into
configurations (their overrides less the fold's) with the mean ± std of the objective over folds
and the per-fold table. Generic: any app whose hooks name a fold key gets it."""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser

from seg58.base.status import CellStatus

ALL = "all"


def quoted(value: str) -> str:
    """A value as a Hydra override writes it (materials have spaces: 'Film emulsion')."""
    return value if value.replace("_", "").replace("-", "").replace(".", "").isalnum() else \
        "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@functools.cache
def _parser() -> OverridesParser:
    return OverridesParser.create()


def _split(overrides: Sequence[str], key: str) -> tuple[list[str], str | None]:
    """(the other overrides, the fold's value or None)."""
    rest, fold = [], None
    for text in overrides:
        if key not in text:  # cannot be the fold's override: not parsed (a grid of 10,000 cells)
            rest.append(text)
            continue
        o = _parser().parse_override(text)
        if o.get_key_element() == key and not o.is_sweep_override():
            fold = str(o.value())
        else:
            rest.append(text)
    return rest, fold


def expand_folds(cells: list[list[str]], key: str,
                 folds_of: Callable[[list[str]], list[str] | None]) -> list[list[str]]:
    """Each cell whose config asks for every fold -> one cell per fold (the fold's override last);
    `folds_of(cell)` gives the folds, or None when the cell is not a cross-validation."""
    out = []
    for cell in cells:
        values = folds_of(cell)
        if not values:
            out.append(cell)
            continue
        rest, _ = _split(cell, key)
        out += [[*rest, f"{key}={quoted(v)}"] for v in values]
    return out


def cv_table(cells: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Per configuration (cells with a `key=` override, grouped by their other overrides): the
    objective of each fold, their mean and sample standard deviation (None below two folds), and
    which folds did not give one. A multi-objective cell counts by its first objective."""
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for c in sorted(cells, key=lambda c: c["num"]):
        rest, fold = _split(c["overrides"], key)
        if fold is None:
            continue
        group = groups.setdefault(tuple(rest), {"config": " ".join(rest) or "(defaults)", "folds": {}, "missing": []})
        value = c.get("objective")
        value = value[0] if isinstance(value, list) else value
        if value is None or c.get("status") != CellStatus.COMPLETED:
            group["missing"].append(fold)
        else:
            group["folds"][fold] = float(value)
    table = []
    for group in groups.values():
        values = list(group["folds"].values())
        group["mean"] = statistics.fmean(values) if values else None
        group["std"] = statistics.stdev(values) if len(values) > 1 else None
        table.append(group)
    return table


def format_cv(table: list[dict[str, Any]], metric: str | None) -> str:
    """mean ± std per configuration, then the per-fold table (configurations as columns)."""
    name = metric if isinstance(metric, str) else "objective"
    lines = [f"cross-validation of {name}: mean ± std over folds"]
    tokens = [g["config"].split() for g in table]
    common = set.intersection(*map(set, tokens)) if len(table) > 1 else set()  # show what differs
    for i, (g, t) in enumerate(zip(table, tokens, strict=True)):
        n, missing = len(g["folds"]), f", {len(g['missing'])} fold(s) missing" if g["missing"] else ""
        label = " ".join(x for x in t if x not in common) or g["config"]
        lines.append(f"  [{i}] {_num(g['mean'])} ± {_num(g['std'])}  ({n} folds{missing})  {label}")
    folds = sorted({f for g in table for f in (*g["folds"], *g["missing"])}, key=_natural)
    width = max([len(f) for f in folds] + [4])
    lines.append("  " + "fold".ljust(width) + "".join(f"  {f'[{i}]':>7}" for i in range(len(table))))
    for f in folds:
        lines.append("  " + f.ljust(width) + "".join(f"  {_num(g['folds'].get(f, math.nan)):>7}" for g in table))
    return "\n".join(lines)


def _num(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def _natural(fold: str) -> tuple[int, Any]:
    return (0, int(fold)) if fold.isdigit() else (1, fold)
