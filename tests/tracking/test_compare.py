"""How sure is a number: per-image confusion matrices in MLflow, bootstrap intervals in the
leaderboard and `seg58 report --compare` (issue #20), against a real SQLite store."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from trained import writable_copy

from seg58.base.errors import UsageError
from seg58.commands.report import compare
from seg58.modeling.intervals import load_per_image
from seg58.tracking.leaderboard import leaderboard, to_csv, to_markdown
from seg58.tracking.per_image import download_per_image, log_per_image


def _matrices(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 30, size=(n, 4, 4)) + np.eye(4, dtype=np.int64) * 100


def test_compare_matches_images_by_id_and_warns_about_the_rest(tracking_uri, capsys):
    client = MlflowClient(tracking_uri)
    exp = client.create_experiment("cmp")
    runs = [client.create_run(exp, run_name=name).info.run_id for name in ("a", "b", "c", "none")]
    log_per_image(client, runs[0], "val", ["x1", "x2", "x3"], _matrices(0, 3))
    log_per_image(client, runs[1], "val", ["x3", "x2", "x9"], _matrices(0, 3)[[2, 1, 0]])  # x2, x3 the same
    log_per_image(client, runs[2], "val", ["y1"], _matrices(1, 1))
    ids, back = download_per_image(client, runs[0], "val")
    assert ids == ["x1", "x2", "x3"] and (back == _matrices(0, 3)).all()

    text = compare(client, runs[0], runs[1], "val")
    assert "only 2 images are in both runs" in capsys.readouterr().err
    assert "2 images" in text and "B - A: +0.0000 [+0.0000, +0.0000]" in text  # same matrices on x2, x3
    assert text.splitlines()[-1] == "not distinguishable at 95 % (the interval holds 0)"
    with pytest.raises(UsageError, match=f"runs {runs[0]} and {runs[2]} share no image"):
        compare(client, runs[0], runs[2], "val")
    with pytest.raises(UsageError, match=f"run {runs[3]} has no per-image .* it has none"):
        compare(client, runs[0], runs[3], "val")
    with pytest.raises(UsageError, match="scope 'eval/val': it has val"):
        compare(client, runs[0], runs[1], "eval/val")


def test_leaderboard_shows_the_interval_beside_miou_when_a_run_logged_one(tracking_uri):
    from seg58.base.names import PARENT_RUN_TAG

    client = MlflowClient(tracking_uri)
    exp = client.create_experiment("board")
    parent = client.create_run(exp, run_name="sweep").info.run_id
    for name, metrics in (("with", {"best/val_miou": 0.412, "best/val_miou_ci_low": 0.371,
                                    "best/val_miou_ci_high": 0.455}), ("without", {"best/val_miou": 0.3})):
        run = client.create_run(exp, run_name=name, tags={PARENT_RUN_TAG: parent}).info.run_id
        for key, value in metrics.items():
            client.log_metric(run, key, value)
        client.set_terminated(run, "FINISHED")
    rows = leaderboard(client, parent)
    table = to_markdown(rows).splitlines()
    assert "| 0.4120 [0.3710, 0.4550] |" in table[2] and "| 0.3000 |" in table[3]
    assert to_csv(rows).splitlines()[0].endswith("run_id,val_miou_ci_low,val_miou_ci_high")


@pytest.mark.slow  # one evaluate and four reports through the CLI, on the shared sweep's two runs
def test_report_compare_two_training_runs(cli, tmp_path, smoke_sweep):
    copy = writable_copy(smoke_sweep, tmp_path)  # evaluate logs into a run
    client = MlflowClient(copy.uri)
    a, b = (client.get_run(run_id) for run_id in copy.run_ids)
    for run in (a, b):  # the best epoch's matrices and interval, logged with the run
        m = run.data.metrics
        assert m["best/val_miou_ci_low"] <= m["best/val_miou"] <= m["best/val_miou_ci_high"]
        assert any(k.startswith("val/material/") for k in m) and any(k.startswith("val/content/") for k in m)
        ids, matrices = download_per_image(client, run.info.run_id, "val")
        assert len(ids) == len(matrices) >= 3 and matrices.shape[1:] == (16, 16)
    (local,) = [p for p in copy.sweep_dir.glob("*/per_image/val/per_image_confusion.npz")
                if (p.parents[2] / "mlflow_run_id").read_text() == a.info.run_id]
    assert load_per_image(local)[0] == download_per_image(client, a.info.run_id, "val")[0]

    rep = cli("report", "--compare", a.info.run_id, b.info.run_id)
    assert rep.returncode == 0, rep.stderr[-2000:]
    lines = rep.stdout.strip().splitlines()
    assert f"{a.info.run_name} ({a.info.run_id})  mIoU {a.data.metrics['best/val_miou']:.4f} " \
           f"[{a.data.metrics['best/val_miou_ci_low']:.4f}, {a.data.metrics['best/val_miou_ci_high']:.4f}]" in lines[1]
    assert f"{b.info.run_name} ({b.info.run_id})  mIoU {b.data.metrics['best/val_miou']:.4f}" in lines[2]
    diff = b.data.metrics["best/val_miou"] - a.data.metrics["best/val_miou"]
    assert lines[3].startswith(f"B - A: {diff:+.4f} [")
    assert lines[4].split(" at 95 %")[0] in ("B is better than A", "A is better than B", "not distinguishable")

    same = cli("report", "--compare", a.info.run_id, a.info.run_id)
    assert "B - A: +0.0000 [+0.0000, +0.0000]" in same.stdout and "not distinguishable at 95 %" in same.stdout
    unknown = cli("report", "--compare", a.info.run_id, "0123456789abcdef")
    assert unknown.returncode == 2 and "0123456789abcdef" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1 and "Traceback" not in unknown.stderr

    # `seg58 evaluate` of a run: interval and per-domain metrics, and its own per-image matrices
    ev = cli("evaluate", f"infer.run_id={a.info.run_id}")
    assert ev.returncode == 0, ev.stderr[-2000:]
    m = client.get_run(a.info.run_id).data.metrics
    assert m["eval/val/miou_ci_low"] <= m["eval/val/miou"] <= m["eval/val/miou_ci_high"]
    assert any(k.startswith("eval/val/material/") for k in m)
    assert sorted(download_per_image(client, a.info.run_id, "eval/val")[0]) == sorted(ids_of(client, a.info.run_id))
    missing = cli("report", "--compare", a.info.run_id, b.info.run_id, "--scope", "eval/val")
    assert missing.returncode == 2 and f"run {b.info.run_id} has no per-image" in missing.stderr
    assert "it has val (--scope)" in missing.stderr


def ids_of(client, run_id: str) -> list[str]:
    return download_per_image(client, run_id, "val")[0]
