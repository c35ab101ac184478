"""Sweep leaderboards from MLflow alone: `seg58 report <sweep folder | parent run id>`.

The sweeper calls the same code at the end of every sweep and logs the result to the sweep's
parent run, so the table and the plot can always be rebuilt later from the tracking store.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

PARENT_TAG = "mlflow.parentRunId"
COLUMNS = ["rank", "run", "overrides", "best_val_miou", "best_epoch", "imgs_per_s",
           "peak_mem_mb", "time_s", "epochs", "status"]


def children(client: Any, parent_id: str) -> list[Any]:
    parent = client.get_run(parent_id)
    return client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'", max_results=5000)


def _mean(history: list[Any]) -> float:
    values = [m.value for m in history]
    return sum(values) / len(values) if values else math.nan


def leaderboard(client: Any, parent_id: str) -> list[dict[str, Any]]:
    """One row per child run, best validation mIoU first (failed runs last)."""
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
            "imgs_per_s": _mean(client.get_metric_history(info.run_id, "perf/train_imgs_per_s")),
            "peak_mem_mb": max((x.value for x in client.get_metric_history(info.run_id, "perf/peak_mem_mb")),
                               default=math.nan),
            "time_s": (end - info.start_time) / 1000 if end else math.nan,
            "epochs": int(m["epochs_trained"]) if "epochs_trained" in m else None,
            "status": "PRUNED" if run.data.tags.get("pruned") == "true" else info.status,
        })
    _keep_varying_overrides(rows)
    rows.sort(key=lambda r: (r["status"] not in ("FINISHED", "PRUNED"),
                             -(r["best_val_miou"] if math.isfinite(r["best_val_miou"]) else -1)))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


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


def to_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*COLUMNS, "run_id"], extrasaction="ignore")
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


def publish(client: Any, parent_id: str) -> list[dict[str, Any]]:
    """Build the leaderboard and the curve plot and log both to the parent run."""
    rows = leaderboard(client, parent_id)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "leaderboard.md").write_text(to_markdown(rows) + "\n")
        (folder / "leaderboard.csv").write_text(to_csv(rows))
        groups = seed_groups(rows)
        if groups:
            (folder / "leaderboard_by_seed.md").write_text(seed_markdown(groups) + "\n")
        if rows:
            plot_curves(client, rows, folder / "val_miou_curves.png")
        client.log_artifacts(parent_id, str(folder), artifact_path="report")
    finished = [r for r in rows if r["status"] == "FINISHED"]
    if finished:
        client.set_tag(parent_id, "best.run", finished[0]["run"])
        client.set_tag(parent_id, "best.overrides", finished[0]["overrides"])
        client.log_metric(parent_id, "best/val_miou", finished[0]["best_val_miou"])
    return rows


DEFAULT_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default
MAX_COMPARED = 30  # runs in the compare links (best first): the compare page slows down beyond


def ui_base(uri: str) -> tuple[str, str | None]:
    """(the UI's base URL for this store, the command that serves it when it is no server)."""
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/"), None
    masked = re.sub(r"(//[^/:@]+:)[^/@]+@", r"\1***@", uri)  # a database password stays off the screen
    return DEFAULT_UI, f"mlflow ui --backend-store-uri {masked}"


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


def parent_id_of(target: str) -> str:
    """A sweep folder (its sweep_summary.json names the parent run) or a run id."""
    from seg58.errors import UsageError

    path = Path(target)
    summary = path / "sweep_summary.json"
    if summary.is_file():
        parent = json.loads(summary.read_text()).get("mlflow_parent_run_id")
        if not parent:
            raise UsageError(f"{summary} names no MLflow parent run (tracking was off?)")
        return parent
    if path.exists():
        raise UsageError(f"{target}: no sweep_summary.json there (not a seg58 sweep folder, or the sweep "
                         f"has not finished; `seg58 report` takes multirun/<date>/<time> or a run id)")
    if "/" in target or "\\" in target:
        raise UsageError(f"{target}: no such folder")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 report", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="multirun/<date>/<time> folder, or the sweep's parent run id")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here")
    parser.add_argument("--no-log", action="store_true", help="print only; do not re-log to the parent run")
    parser.add_argument("--register", metavar="NAME", default=None,
                        help="register the best finished run's model as a new version of NAME, alias champion")
    args = parser.parse_args(argv)
    from seg58.mlflow_store import existing_store, get_run

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
    if args.register:
        from seg58.mlflow_model import describe, register_best

        print(describe(register_best(client, rows, args.register, parent)))
    return 0


def rerun_main(argv: list[str] | None = None) -> int:
    """`seg58 rerun RUN_ID [overrides]`: the same command as a past run, as a new run tagged
    with its source. The config is recomposed from the run's logged .hydra/overrides.yaml and
    compared with its logged config.yaml, so a changed default is reported, not hidden."""
    parser = argparse.ArgumentParser(prog="seg58 rerun", description=rerun_main.__doc__.splitlines()[0])
    parser.add_argument("run_id")
    parser.add_argument("overrides", nargs="*", help="extra overrides, applied last")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    import subprocess

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from seg58.cli import config_dir
    from seg58.errors import UsageError
    from seg58.mlflow_store import existing_store, get_run

    client = existing_store(args.tracking_uri)
    uri = client.tracking_uri
    run = get_run(client, args.run_id)
    if ".hydra" not in {a.path for a in client.list_artifacts(args.run_id)}:
        raise UsageError(f"run {args.run_id} ({run.info.run_name}) has no .hydra/ artifacts: not a seg58 "
                         f"training run, nothing to rerun")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(client.download_artifacts(args.run_id, ".hydra", tmp))
        overrides = [str(o) for o in OmegaConf.load(folder / "overrides.yaml")]
        logged = OmegaConf.load(folder / "config.yaml")
    with initialize_config_dir(config_dir(), version_base="1.3"):
        now = compose("config", overrides=overrides)
        try:  # the data the rerun will read, extra overrides included (a bad one: the rerun says so)
            target = compose("config", overrides=[*overrides, *args.overrides]) if args.overrides else now
        except Exception:
            target = None
    before, after = _flat(logged), _flat(now)
    changed = sorted(k for k in set(before) | set(after)
                     if before.get(k) != after.get(k) and not k.startswith("paths."))
    if changed:
        print(f"note: today's defaults differ from run {args.run_id} for: {', '.join(changed)}")
    if target is not None:
        _warn_if_data_changed(client, args.run_id, target)
    command = [sys.executable, "-m", "seg58", *overrides, f"++tracking.tags.source_run={args.run_id}",
               *args.overrides]
    print("rerun:", " ".join(command[2:]))
    return subprocess.call(command, env={**os.environ, "MLFLOW_TRACKING_URI": uri})


def _warn_if_data_changed(client: Any, run_id: str, cfg: Any) -> str | None:
    """Before a rerun starts: does today's data still match the run's digest? A warning, not an
    error (a rerun on fixed or grown data is legitimate); missing data is the rerun's to report."""
    from seg58 import factory
    from seg58.errors import Seg58Error
    from seg58.tracking import data_change_warning

    try:
        root, digest = factory.current_digest(cfg)
    except Seg58Error:
        return None
    message = data_change_warning(client, run_id, root, digest)
    if message:
        print(f"warning: {message}", file=sys.stderr)
    return message


def _flat(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from seg58.tracking import flatten

    return flatten(OmegaConf.to_container(cfg, resolve=False))


if __name__ == "__main__":
    sys.exit(main())
