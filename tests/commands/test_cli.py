"""End to end through the real command line, a real SQLite MLflow store and real SMP models. The
`cli` fixture runs seg58's entry point inside the test process; the two canaries here start real
`python -m seg58` processes, so the interpreter's start-up and its exit codes are checked too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import mlflow_runs
from mlflow.tracking import MlflowClient

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]


def test_single_run_logs_params_metrics_tags_and_artifacts(smoke_run):
    """The suite's shared run (tests/trained.py), trained by a real `python -m seg58` process."""
    runs = mlflow_runs(smoke_run.uri, "smoke")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["model.arch"] == "Unet" and p["encoder.name"] == "tu-test_resnet"
    assert p["optim.lr"] == "0.003" and p["optim.scheduler.max_lr"] == "0.003"
    assert p["trainer.epochs"] == "2" and p["data.img_size"] == "64"
    t = run.data.tags
    assert (t["model"], t["encoder"], t["data"], t["experiment"]) == ("unet", "tiny", "synthetic", "smoke")
    assert "optim.lr=3e-3" in t["overrides"]
    assert "mlflow.parentRunId" not in t  # single runs stay flat
    client = MlflowClient(smoke_run.uri)
    for key in ("train/loss", "val/loss", "val/miou", "val/pixel_acc", "lr", "val/iou/clean",
                "perf/train_imgs_per_s", "perf/step_imgs_per_s", "perf/epoch_time_s",
                "perf/peak_mem_mb"):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == [0, 1], key
    assert "best/val_miou" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {".hydra", "checkpoints"} <= artifacts
    hydra_files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, ".hydra")}
    assert {"config.yaml", "overrides.yaml", "hydra.yaml"} <= hydra_files
    # the run's output folder holds the checkpoints, and nothing generated leaks into the cwd
    outputs = list((smoke_run.root / "outputs").glob("*/*/checkpoints/last.pt"))
    assert len(outputs) == 1
    assert "epoch 2/2" in smoke_run.output
    assert "Downloading artifacts" not in smoke_run.output  # MLflow's bars while the model is logged
    assert {p.name for p in smoke_run.root.iterdir()} <= {"mlartifacts", "mlflow.db", "mlflow.db.lock", "outputs"}


def test_sweep_over_two_encoders_gives_two_runs(smoke_sweep):
    runs = mlflow_runs(smoke_sweep.uri, "smoke")
    assert sorted(r.data.params["encoder.name"] for r in runs) == ["tu-test_convnext", "tu-test_resnet"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len(list(smoke_sweep.sweep_dir.glob("[01]/.hydra/config.yaml"))) == 2
    # the parent run carries the swept key against val/miou (MLflow's own compare page opens elsewhere)
    report = {a.path for a in MlflowClient(smoke_sweep.uri).list_artifacts(smoke_sweep.parent, "report")}
    assert {"report/parallel_coordinates.html", "report/parallel_coordinates.png"} <= report
    # what each run cost (CPU here: no GPU-hours), summed in the summary and on the parent run
    hours = [r.data.metrics["cost/cpu_hours"] for r in runs]
    assert all(h > 0 for h in hours) and all(r.data.metrics["cost/gpu_hours"] == 0 for r in runs)
    cost = json.loads((smoke_sweep.sweep_dir / "sweep_summary.json").read_text())["cost"]
    assert cost["cells_measured"] == 2 and cost["cpu_hours"] == pytest.approx(sum(hours), rel=1e-4)
    parent = MlflowClient(smoke_sweep.uri).get_run(smoke_sweep.parent).data.metrics
    assert parent["cost/cpu_hours"] == pytest.approx(sum(hours), rel=1e-4) and parent["cost/cells_measured"] == 2


def test_parallel_local_sweep_on_a_new_store_does_not_race(cli, tmp_path):
    """3 jobs start together on a fresh SQLite file: the case that crashed MLflow's migration."""
    res = cli("-m", "launcher=local_parallel", *SMOKE, "seed=1,2,3", timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "smoke")
    assert sorted(r.data.params["seed"] for r in runs) == ["1", "2", "3"]
    assert all(r.info.status == "FINISHED" for r in runs)
    # each job got its share of the 2 cores, not all of them
    logs = [p.read_text() for p in (tmp_path / "multirun").glob("*/*/[012]/seg58.log")]
    assert len(logs) == 3 and all("threads=1 " in log for log in logs)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["encoder=resnet5"], ["Could not find 'encoder/resnet5'", "convnext_tiny", "resnet50"]),
        (["model=deeplabv3plus", "encoder=swin"], ["tu-swin", "DeepLabV3Plus", "dilated"]),
        (["data=artefact", "paths.data_dir=/nonexistent/place"], ["/nonexistent/place/artefact", "data.root"]),
        (["data.img_size=100"], ["data.img_size=100", "divisible by 32"]),
        (["trainer.epoch=3"], ["trainer.epoch"]),
    ],
    ids=["unknown-encoder", "incompatible", "missing-data", "indivisible", "typo"],
)
@pytest.mark.parametrize("mode", [[], ["-m"]], ids=["run", "multirun"])
def test_bad_config_fails_early_with_a_clear_message(cli, tmp_path, args, expected, mode):
    res = cli(*mode, *args, "tracking.experiment_name=errors")
    assert res.returncode != 0
    out = res.stderr + res.stdout
    for text in expected:
        assert text in out, out[-2000:]
    assert "Traceback" not in out  # a user error, reported as such, not as a crash
    # nothing was trained or tracked
    assert mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "errors") == []
    assert not list(tmp_path.rglob("last.pt"))


def test_a_refusal_in_a_real_process_exits_2_in_one_message(cli_process, tmp_path):
    res = cli_process("-m", "trainer.epoch=3", "tracking.experiment_name=errors")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "trainer.epoch" in res.stderr and "Traceback" not in res.stderr + res.stdout
    assert "HYDRA_FULL_ERROR" not in res.stderr + res.stdout  # a refusal, not a crash
    assert not list(tmp_path.rglob("last.pt"))


def test_one_bad_cell_stops_the_sweep_before_any_job(cli, tmp_path):
    res = cli("-m", *SMOKE, "model=unet,deeplabv3plus", "encoder=swin")
    assert res.returncode != 0
    assert "model=deeplabv3plus encoder=swin]" in res.stderr
    assert "[model=unet" not in res.stderr  # the good cell is not reported
    assert not list(tmp_path.rglob("last.pt"))


def test_local_sweep_reports_every_cell_and_a_failure_does_not_stop_the_others(cli, tmp_path):
    res = cli("-m", *SMOKE, "trainer.device=cuda,cpu")  # no GPU here: the first cell fails at run time
    assert res.returncode != 0
    out = res.stderr + res.stdout
    assert "1 of 2 sweep jobs did not complete" in out and "CUDA is not available" in out
    assert "hydra.sweeper.rerun=" in out and "Traceback" not in out
    (summary,) = tmp_path.glob("multirun/*/*/sweep_summary.json")
    import json

    cells = json.loads(summary.read_text())["cells"]
    assert [c["status"] for c in cells] == ["FAILED", "COMPLETED"]
    assert cells[1]["best_val_miou"] is not None
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "smoke")
    assert [r.data.params["trainer.device"] for r in runs] == ["cpu"]
