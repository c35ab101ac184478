"""`seg58 report <sweep folder | parent run id> [--register NAME]`: a sweep's leaderboard from
MLflow alone, re-logged to its parent run; optionally the best run's model registered.
`seg58 report --compare RUN_A RUN_B`: is B better than A beyond what the choice of images explains?"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from seg58.base.classes import CLASS_NAMES, RARE_CLASSES, metric_key
from seg58.base.errors import UsageError
from seg58.base.names import SUMMARY_FILE
from seg58.sweep.cells import format_spent
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


def artifact_text(client: Any, parent: str, path: str) -> str | None:
    """A text the sweep logged to its parent run (the Pareto front of a multi-objective search, a
    cross-validation's table), else None."""
    import tempfile

    if path not in {a.path for a in client.list_artifacts(parent, str(Path(path).parent).strip("."))}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(parent, path, tmp)).read_text().strip()


def compare(client: Any, run_a: str, run_b: str, scope: str, level: float = 0.95, n_boot: int = 1000) -> str:
    """Both runs' mIoU with its bootstrap interval, and the paired difference B - A over the images
    they share (matched by id), resampling the same images for both."""
    from seg58.modeling.intervals import bootstrap_miou, paired_difference
    from seg58.tracking.per_image import download_per_image
    from seg58.tracking.store import get_run

    names = {r: get_run(client, r).info.run_name for r in (run_a, run_b)}  # unknown ids fail here
    (ids_a, mats_a), (ids_b, mats_b) = (download_per_image(client, r, scope) for r in (run_a, run_b))
    shared = sorted(set(ids_a) & set(ids_b))
    if not shared:
        raise UsageError(f"runs {run_a} and {run_b} share no image (scope {scope!r}): nothing to compare")
    if mats_a.shape[1:] != mats_b.shape[1:]:
        raise UsageError(f"runs {run_a} and {run_b} score different classes ({mats_a.shape[1]} vs "
                         f"{mats_b.shape[1]}): not comparable")
    if len(shared) < max(len(ids_a), len(ids_b)):
        print(f"seg58 report: warning: only {len(shared)} images are in both runs ({len(ids_a)} in A, "
              f"{len(ids_b)} in B); comparing those", file=sys.stderr)
    a = mats_a[[ids_a.index(i) for i in shared]] if shared != ids_a else mats_a
    b = mats_b[[ids_b.index(i) for i in shared]] if shared != ids_b else mats_b
    pct = f"{level * 100:g} %"
    lines = [f"scope {scope}: {len(shared)} images, {pct} percentile intervals over {n_boot} bootstrap resamples"]
    for tag, run, mats in (("A", run_a, a), ("B", run_b, b)):
        point, lo, hi = bootstrap_miou(mats, n_boot, level=level)
        lines.append(f"{tag}: {names[run]} ({run})  mIoU {point:.4f} [{lo:.4f}, {hi:.4f}]")
    diff, lo, hi, excludes = paired_difference(a, b, n_boot, level=level)
    lines.append(f"B - A: {diff:+.4f} [{lo:+.4f}, {hi:+.4f}] (paired: the same images resampled for both)")
    verdict = "B is better than A" if lo > 0 else "A is better than B" if hi < 0 else "not distinguishable"
    lines.append(f"{verdict} at {pct}" + ("" if excludes else " (the interval holds 0)"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 report", description="a sweep's leaderboard, from MLflow; "
                                     "or two runs compared with bootstrap intervals (--compare)")
    parser.add_argument("target", nargs="?", help="multirun/<date>/<time> folder, or the sweep's parent run id")
    parser.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), default=None,
                        help="two run ids: each mIoU with its 95 %% interval and the paired difference B - A")
    parser.add_argument("--scope", default="val",
                        help="with --compare: whose per-image matrices: val (the best training epoch, "
                             "default) or eval/<split>[/tta_<x>] (what `seg58 evaluate` logged)")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here")
    parser.add_argument("--no-log", action="store_true", help="print only; do not re-log to the parent run")
    parser.add_argument("--register", metavar="NAME", default=None,
                        help="register the best finished run's model as a new version of NAME, alias champion")
    parser.add_argument("--class-iou", metavar="KEYS", default=None,
                        help="also show these classes' val IoU at each run's best epoch: comma-separated "
                             "(dust,hair), or `rare` for Dust, Hair, Puncture, Burn marks")
    args = parser.parse_args(argv)
    if (args.target is None) == (args.compare is None):
        parser.error("give a sweep (folder or parent run id), or --compare RUN_A RUN_B, not both")
    classes = class_keys(args.class_iou)
    from seg58.tracking.store import existing_store, get_run

    if args.compare:
        print(compare(existing_store(args.tracking_uri), *args.compare, args.scope))
        return 0
    parent = parent_id_of(args.target)
    client = existing_store(args.tracking_uri)
    run = get_run(client, parent)
    rows = leaderboard(client, parent, classes) if args.no_log else publish(client, parent, classes)
    print(f"{run.info.run_name} (MLflow parent run {parent}): {len(rows)} runs")
    print(to_markdown(rows))
    compute = format_spent({k.removeprefix("cost/"): v for k, v in run.data.metrics.items()
                            if k.startswith("cost/") and (k.endswith("_hours") or k == "cost/cells_measured")})
    if compute:
        print(compute)
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
