"""MLflow as the comparison tool, against a real `mlflow server` and a real SQLite store."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import pytest
from conftest import mlflow_runs
from mlflow.tracking import MlflowClient
from trained import SERVER_EXPERIMENT, writable_copy

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]


def test_sweep_is_one_parent_run_with_nested_children_and_a_leaderboard(cli, tmp_path, mlflow_server, server_sweep):
    res = server_sweep  # the shared 2-cell sweep tracked by the session's server (tests/trained.py)
    client = MlflowClient(mlflow_server)
    runs = mlflow_runs(mlflow_server, SERVER_EXPERIMENT, include_sweeps=True)
    (parent,) = [r for r in runs if r.data.tags.get("seg58.sweep") == "true"]
    kids = [r for r in runs if r is not parent]
    assert len(kids) == 2 and all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in kids)
    assert parent.info.status == "FINISHED" and parent.info.run_name.startswith("sweep ")
    assert parent.data.params["encoder.name"] == "tu-test_resnet,tu-test_convnext"
    # the leaderboard logged to the parent matches the children's own metrics
    board = client.download_artifacts(parent.info.run_id, "report/leaderboard.csv", str(tmp_path))
    rows = list(csv.DictReader(open(board)))
    by_id = {r.info.run_id: r for r in kids}
    assert len(rows) == 2 and [int(r["rank"]) for r in rows] == [1, 2]
    for row in rows:
        kid = by_id[row["run_id"]]
        assert float(row["best_val_miou"]) == pytest.approx(kid.data.metrics["best/val_miou"])
        assert row["overrides"] == f"encoder.name={kid.data.params['encoder.name']}"
    assert [float(r["best_val_miou"]) for r in rows] == sorted((float(r["best_val_miou"]) for r in rows), reverse=True)
    assert parent.data.tags["best.run"] == by_id[rows[0]["run_id"]].info.run_name
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/leaderboard.md", "report/leaderboard.csv", "report/val_miou_curves.png"} <= artifacts
    assert "| rank | run | overrides" in res.output  # printed at the end of the sweep

    # rebuilt later from MLflow alone, by sweep folder
    summary = res.sweep_dir / "sweep_summary.json"
    assert json.loads(summary.read_text())["mlflow_parent_run_id"] == parent.info.run_id
    rep = cli("report", str(summary.parent), "--no-log", env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert rep.returncode == 0, rep.stderr[-2000:]
    for row in rows:
        assert f"{float(row['best_val_miou']):.4f}" in rep.stdout


WRITER = textwrap.dedent("""
    import sys, time
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    from seg58.tracking.store import ensure_store, experiment_id, resolve_uri
    uri, tag, steps = resolve_uri(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ensure_store(uri)
    client = MlflowClient(uri)
    run = client.create_run(experiment_id(client, "concurrency", uri), run_name=tag)
    for step in range(steps):
        client.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0 / (step + 1), int(time.time() * 1000), step)])
    client.set_terminated(run.info.run_id)
""")


@pytest.mark.slow  # 3 writer processes (and a server)
@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_concurrent_writers_lose_nothing(tmp_path, store, request):
    """3 processes start together (on a NEW SQLite file: the migration race) and log 200 steps each."""
    uri = f"sqlite:///{tmp_path / 'fresh.db'}" if store == "sqlite" else request.getfixturevalue("mlflow_server")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, uri, f"writer{i}", "200"],
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    runs = mlflow_runs(uri, "concurrency")
    assert sorted(r.info.run_name for r in runs) == ["writer0", "writer1", "writer2"]
    client = MlflowClient(uri)
    for r in runs:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "loss")]
        assert sorted(steps) == list(range(200))  # every point there, none twice


def test_rerun_of_a_past_run_recomposes_its_config_and_tags_the_source(cli, tmp_path, smoke_run):
    uri = writable_copy(smoke_run, tmp_path).uri  # the suite's shared run is the past run
    (source,) = mlflow_runs(uri, "smoke")
    # the data cache it trained with (under pytest-xdist another worker may have trained it)
    again = cli("rerun", source.info.run_id, env={"SEG58_CACHE_DIR": source.data.params["paths.cache_dir"]})
    assert again.returncode == 0, again.stderr[-2000:]
    assert "optim.lr=3e-3" in again.stdout
    (new,) = [r for r in mlflow_runs(uri, "smoke") if r.info.run_id != source.info.run_id]
    assert new.data.tags["source_run"] == source.info.run_id
    assert new.info.status == "FINISHED"
    same = {k: v for k, v in source.data.params.items() if not k.startswith("tracking.tags")}
    assert {k: new.data.params[k] for k in same} == same  # the identical configuration


def test_single_run_logs_visuals_of_the_best_epoch(smoke_run):
    (run,) = mlflow_runs(smoke_run.uri, "smoke")
    client = MlflowClient(smoke_run.uri)
    names = {a.path for a in client.list_artifacts(run.info.run_id, "visuals")}
    assert names == {"visuals/per_class_iou.png", "visuals/confusion_matrix.png", "visuals/val_overlays.png"}
    from PIL import Image

    (png,) = smoke_run.root.glob("outputs/*/*/visuals/val_overlays.png")
    assert Image.open(png).size[0] > 500  # a real picture, not an empty file
