"""`seg58 report <sweep folder | parent run id> [--register NAME]`: a sweep's leaderboard from
MLflow alone, re-logged to its parent run; optionally the best run's model registered."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from seg58.base.classes import CLASS_NAMES, RARE_CLASSES, metric_key
from seg58.base.errors import UsageError
from seg58.base.names import SUMMARY_FILE
from seg58.tracking.leaderboard import leaderboard, publish, seed_groups, seed_markdown, to_markdown
from seg58.tracking.ui_links import sweep_links


def parent_id_of(target: str) -> str:
    """A sweep folder (its sweep_summary.json names the parent run) or a run id."""
    path = Path(target)
    summary = path / SUMMARY_FILE
    if summary.is_file():
        parent = json.loads(summary.read_text()).get("mlflow_parent_run_id")
        if not parent:
            raise UsageError(f"{summary} names no MLflow parent run (tracking was off?)")
        return parent
    if path.exists():
        raise UsageError(f"{target}: no {SUMMARY_FILE} there (not a seg58 sweep folder, or the sweep "
                         f"has not finished; `seg58 report` takes multirun/<date>/<time> or a run id)")
    if "/" in target or "\\" in target:
        raise UsageError(f"{target}: no such folder")
    return target


def class_keys(spec: str | None) -> list[str]:
    """--class-iou: comma-separated class keys (dust,burn_marks), `rare` for ARTeFACT's rarest four."""
    valid = [metric_key(n) for n in CLASS_NAMES]
    keys = [k.strip() for k in (spec or "").split(",") if k.strip()]
    keys = [x for k in keys for x in ([valid[c] for c in RARE_CLASSES] if k == "rare" else [k])]
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise UsageError(f"--class-iou {spec}: no class {', '.join(unknown)}; valid: rare, {', '.join(valid)}")
    return list(dict.fromkeys(keys))


def pareto_front(client: Any, parent: str) -> str | None:
    """The Pareto front a multi-objective search logged to its parent run, else None."""
    import tempfile

    from seg58.tracking.study_plots import PARETO_TABLE

    if PARETO_TABLE not in {a.path for a in client.list_artifacts(parent, "search")}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(parent, PARETO_TABLE, tmp)).read_text().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 report", description="a sweep's leaderboard, from MLflow")
    parser.add_argument("target", help="multirun/<date>/<time> folder, or the sweep's parent run id")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here")
    parser.add_argument("--no-log", action="store_true", help="print only; do not re-log to the parent run")
    parser.add_argument("--register", metavar="NAME", default=None,
                        help="register the best finished run's model as a new version of NAME, alias champion")
    parser.add_argument("--class-iou", metavar="KEYS", default=None,
                        help="also show these classes' val IoU at each run's best epoch: comma-separated "
                             "(dust,hair), or `rare` for Dust, Hair, Puncture, Burn marks")
    args = parser.parse_args(argv)
    classes = class_keys(args.class_iou)
    from seg58.tracking.store import existing_store, get_run

    parent = parent_id_of(args.target)
    client = existing_store(args.tracking_uri)
    name = get_run(client, parent).info.run_name
    rows = leaderboard(client, parent, classes) if args.no_log else publish(client, parent, classes)
    print(f"{name} (MLflow parent run {parent}): {len(rows)} runs")
    print(to_markdown(rows))
    groups = seed_groups(rows)
    if groups:
        print(seed_markdown(groups))
    print(sweep_links(client, parent, rows))
    pareto = pareto_front(client, parent)
    if pareto:
        print(f"Pareto front (the non-dominated trials of the search):\n{pareto}")
    if args.register:
        from seg58.tracking.model import describe, register_best

        print(describe(register_best(client, rows, args.register, parent)))
    return 0
