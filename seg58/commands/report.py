"""`seg58 report <sweep folder | parent run id> [--register NAME]`: a sweep's leaderboard from
MLflow alone, re-logged to its parent run; optionally the best run's model registered."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

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


def artifact_text(client: Any, parent: str, path: str) -> str | None:
    """A text the sweep logged to its parent run (the Pareto front of a multi-objective search, a
    cross-validation's table), else None."""
    import tempfile

    if path not in {a.path for a in client.list_artifacts(parent, str(Path(path).parent).strip("."))}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(parent, path, tmp)).read_text().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 report", description="a sweep's leaderboard, from MLflow")
    parser.add_argument("target", help="multirun/<date>/<time> folder, or the sweep's parent run id")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here")
    parser.add_argument("--no-log", action="store_true", help="print only; do not re-log to the parent run")
    parser.add_argument("--register", metavar="NAME", default=None,
                        help="register the best finished run's model as a new version of NAME, alias champion")
    args = parser.parse_args(argv)
    from seg58.tracking.store import existing_store, get_run

    parent = parent_id_of(args.target)
    client = existing_store(args.tracking_uri)
    name = get_run(client, parent).info.run_name
    rows = leaderboard(client, parent) if args.no_log else publish(client, parent)
    print(f"{name} (MLflow parent run {parent}): {len(rows)} runs")
    print(to_markdown(rows))
    groups = seed_groups(rows)
    if groups:
        print(seed_markdown(groups))
    print(sweep_links(client, parent, rows))
    from seg58.tracking.study_plots import PARETO_TABLE

    folds = artifact_text(client, parent, "cross_validation.txt")
    if folds:
        print(folds)
    pareto = artifact_text(client, parent, PARETO_TABLE)
    if pareto:
        print(f"Pareto front (the non-dominated trials of the search):\n{pareto}")
    if args.register:
        from seg58.tracking.model import describe, register_best

        print(describe(register_best(client, rows, args.register, parent)))
    return 0
