"""The leaderboard can show chosen classes' IoU (the rare ones: Dust, Hair, ...) at each run's best
epoch, from a real MLflow store; without the option it is as before."""

from __future__ import annotations

import math

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from seg58.base.errors import UsageError
from seg58.base.names import PARENT_RUN_TAG
from seg58.commands.report import class_keys
from seg58.commands.report import main as report_main
from seg58.tracking.leaderboard import COLUMNS, leaderboard, to_csv, to_markdown
from seg58.tracking.store import ensure_store


@pytest.fixture
def sweep(tmp_path):
    """A parent run with two finished children: per-epoch val mIoU and Dust IoU, best epoch 1."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_store(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("board")
    parent = client.create_run(exp, run_name="sweep").info.run_id
    for name, dust in (("a", [0.0, 0.25, 0.5]), ("b", [0.1, 0.75, 0.0])):
        run = client.create_run(exp, run_name=name, tags={PARENT_RUN_TAG: parent, "overrides": f"seed={name}"})
        rid = run.info.run_id
        client.log_batch(rid, metrics=[Metric("val/miou", 0.3 + 0.1 * step + (name == "b") * 0.05, 0, step)
                                       for step in range(3)]
                         + [Metric("val/iou/dust", v, 0, step) for step, v in enumerate(dust)]
                         + [Metric("best/epoch", 1, 0, 0), Metric("best/val_miou", 0.4 + (name == "b") * 0.05, 0, 0)])
        client.set_terminated(rid)
    return uri, client, parent


def test_class_iou_columns_show_the_best_epochs_value(sweep):
    _, client, parent = sweep
    plain = leaderboard(client, parent)
    assert to_markdown(plain).splitlines()[0] == "| " + " | ".join(COLUMNS) + " |"  # unchanged by default
    rows = leaderboard(client, parent, ["dust", "hair"])
    assert [r["run"] for r in rows] == ["b", "a"]
    assert [r["iou/dust"] for r in rows] == [0.75, 0.25]  # at best epoch 1, not the last or the max
    assert all(math.isnan(r["iou/hair"]) for r in rows)  # never logged: no Hair in the val masks
    table = to_markdown(rows)
    assert table.splitlines()[0].endswith("| status | iou/dust | iou/hair |") and "| 0.7500 | - |" in table
    assert to_csv(rows).splitlines()[0] == ",".join([*COLUMNS, "iou/dust", "iou/hair", "run_id", "val_miou_ci_low",
                                                   "val_miou_ci_high"])


def test_report_takes_rare_for_the_rarest_classes_and_names_a_bad_key(sweep, capsys):
    uri, _, parent = sweep
    assert class_keys("rare,dust") == ["dust", "hair", "puncture", "burn_marks"]
    assert report_main([parent, "--tracking-uri", uri, "--no-log", "--class-iou", "rare"]) == 0
    assert "| iou/dust | iou/hair | iou/puncture | iou/burn_marks |" in capsys.readouterr().out
    with pytest.raises(UsageError, match="no class dusty; valid: rare, clean, material_loss"):
        class_keys("dusty")


def test_the_sweeps_parallel_coordinates_show_the_swept_keys_against_val_miou(tmp_path):
    from seg58.tracking.sweep_plot import swept_table, write_parallel_plots

    rows = [{"status": "FINISHED", "overrides": "encoder=resnet50 optim.lr=0.0001", "best_val_miou": 0.41},
            {"status": "FINISHED", "overrides": "encoder=swin optim.lr=0.01", "best_val_miou": 0.38},
            {"status": "FAILED", "overrides": "encoder=swin optim.lr=0.1", "best_val_miou": float("nan")}]
    keys, values, scores = swept_table(rows)
    assert keys == ["encoder", "optim.lr"] and scores == [0.41, 0.38] and len(values) == 2  # the failed one left out
    html, png = write_parallel_plots(rows, tmp_path)
    page = html.read_text()
    assert '"parcoords"' in page and "log10(optim.lr)" in page and "swin" in page
    assert r'"label":"val\u002fmiou"' in page  # plotly's JSON escapes the slash
    assert png.stat().st_size > 5_000
    assert write_parallel_plots([{**rows[0], "overrides": ""}], tmp_path / "none") == []  # nothing swept


def test_interrupted_trials_are_interrupted_in_the_leaderboard_as_in_the_summary(tmp_path):
    """Ctrl-C on a sweep: a SLURM-like job cancelled mid-run (its run ended FAILED) and a cell
    trained in the driver's process (its run ended KILLED) are INTERRUPTED in the summary, and so
    in the leaderboard, not FAILED or KILLED; a finished sibling stays FINISHED."""
    import json

    from hydra.core.utils import JobReturn, JobStatus

    from seg58.base.names import RUN_ID_FILE
    from seg58.commands.sweep_hooks import SegmentationSweepHooks
    from seg58.sweep.book import SweepBook
    from seg58.sweep.interrupt import SweepInterrupted

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_store(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("board")
    parent = client.create_run(exp, run_name="sweep").info.run_id
    sweep_dir = tmp_path / "sweep"
    book = SweepBook(sweep_dir, "grid", hooks=SegmentationSweepHooks())
    book.tracking = {"enabled": True, "uri": uri}
    for num, ended in enumerate(("FINISHED", "FAILED", "KILLED")):
        run = client.create_run(exp, run_name=f"cell{num}", tags={PARENT_RUN_TAG: parent})
        client.log_metric(run.info.run_id, "best/val_miou", 0.5 - num * 0.1)
        client.set_terminated(run.info.run_id, ended)
        (sweep_dir / str(num)).mkdir(parents=True)
        (sweep_dir / str(num) / RUN_ID_FILE).write_text(run.info.run_id)
        book.put({"num": num, "overrides": [f"x={num}"], "status": "COMPLETED" if num == 0 else "RUNNING",
                  "output_dir": str(sweep_dir / str(num))})

    class CancelledPool:  # cell 1: a queued job, cancelled by the sweep's Ctrl-C
        def cancel_all(self, state):
            return [(1, JobReturn(overrides=["x=1"], status=JobStatus.FAILED, _return_value=RuntimeError("scancel")),
                     {"state": state, "output_dir": str(sweep_dir / "1")})]

    with pytest.raises(SweepInterrupted):
        book.interrupt(CancelledPool(), "continue")
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert [c["status"] for c in summary["cells"]] == ["COMPLETED", "INTERRUPTED", "INTERRUPTED"]
    assert [r["status"] for r in leaderboard(client, parent)] == ["FINISHED", "INTERRUPTED", "INTERRUPTED"]
    # resumed and finished since: MLflow's word again
    client.update_run((sweep_dir / "1" / RUN_ID_FILE).read_text(), status="FINISHED")
    assert [r["status"] for r in leaderboard(client, parent)] == ["FINISHED", "FINISHED", "INTERRUPTED"]
