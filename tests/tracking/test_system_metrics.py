"""System metrics next to the training metrics: MLflow's own sampler, real runs, a real SQLite store."""

from __future__ import annotations

import time
from functools import partial

import pytest
import segmentation_models_pytorch as smp
import torch
from conftest import mlflow_runs
from mlflow.tracking import MlflowClient

from seg58.data.build import build_splits
from seg58.data.loaders import make_loaders
from seg58.engine.callback import Callback
from seg58.engine.hooks import Checkpointer
from seg58.engine.options import TrainerOptions
from seg58.engine.trainer import Trainer
from seg58.modeling.models import build_model
from seg58.tracking.run_logger import MlflowCallback
from seg58.tracking.system_metrics import JobGPUMonitor, JobSystemMetricsMonitor, visible_gpu_indices

SYSTEM = ("system/cpu_utilization_percentage", "system/system_memory_usage_megabytes")


@pytest.fixture(scope="module")
def loaders(tmp_path_factory):
    splits = build_splits(tmp_path_factory.mktemp("sysmetrics-data"), img_size=64,
                          synthetic={"n_images": 12, "size": 72, "seed": 0})
    return make_loaders(splits, batch_size=4, workers=0, device=torch.device("cpu"), seed=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating one runs MLflow's migrations: seconds); each test
    has its own experiment."""
    from seg58.tracking.store import ensure_store

    uri = f"sqlite:///{tmp_path_factory.mktemp('sysmetrics-store') / 'mlflow.db'}"
    ensure_store(uri)
    return uri


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    monkeypatch.delenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", raising=False)
    monkeypatch.delenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", raising=False)
    monkeypatch.delenv("MLFLOW_SYSTEM_METRICS_NODE_ID", raising=False)


class UntilSampled(Callback):
    """Holds the last epoch until the sampler has taken `samples` samples, so the test does not
    depend on how fast this machine trains; `then` raises (a preemption) after that."""

    def __init__(self, tracker, samples=2, then=None):
        self.tracker, self.samples, self.then = tracker, samples, then
        self.thread = None

    def on_epoch_end(self, trainer, epoch, metrics):
        if epoch != trainer.epochs - 1:
            return
        monitor = self.tracker._monitor
        self.thread = monitor._process
        deadline = time.monotonic() + 120  # a guard against hanging, not a timing check
        while monitor._logging_step < self.samples and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.then is not None:
            raise self.then


def train(tmp_path, loaders, callbacks, epochs=1):
    torch.manual_seed(0)
    trainer = Trainer(
        build_model("Unet", "tu-test_resnet", 16), smp.losses.DiceLoss("multiclass", ignore_index=255),
        partial(torch.optim.AdamW, lr=1e-3), device=torch.device("cpu"),
        options=TrainerOptions(epochs=epochs, progress=False, limit_train_batches=1, limit_val_batches=1),
        hooks=[*callbacks, Checkpointer(tmp_path / "ckpt")],
    )
    return trainer.fit(*loaders)


def test_run_logs_system_metrics_next_to_training_metrics(loaders, tmp_path, store):
    tracker = MlflowCallback(store, "on", "r", params={"x": 1}, system_metrics=True,
                             system_metrics_interval_s=1.0)
    wait = UntilSampled(tracker, samples=2)
    train(tmp_path, loaders, [tracker, wait], epochs=2)

    (run,) = mlflow_runs(store, "on")
    assert run.info.status == "FINISHED"
    assert {"train/loss", "val/miou", "best/val_miou"} <= set(run.data.metrics)
    client = MlflowClient(store)
    for key in SYSTEM:
        history = client.get_metric_history(run.info.run_id, key)
        assert len(history) >= 2, key
        assert sorted(m.step for m in history) == list(range(len(history)))  # one step per sample
    assert client.get_metric_history(run.info.run_id, SYSTEM[1])[0].value > 0
    assert not wait.thread.is_alive() and tracker._monitor is None  # stopped with the run


def test_preempted_run_is_killed_and_its_sampler_stopped(loaders, tmp_path, store):
    tracker = MlflowCallback(store, "killed", "r", params={"x": 1}, system_metrics=True,
                             system_metrics_interval_s=1.0)
    wait = UntilSampled(tracker, samples=1, then=SystemExit(-1))
    with pytest.raises(SystemExit):
        train(tmp_path, loaders, [tracker, wait])
    (run,) = mlflow_runs(store, "killed")
    assert run.info.status == "KILLED"
    assert MlflowClient(store).get_metric_history(run.info.run_id, SYSTEM[0])  # flushed at the stop
    assert not wait.thread.is_alive() and tracker._monitor is None


def test_system_metrics_off_logs_none(loaders, tmp_path, store):
    tracker = MlflowCallback(store, "off", "r", params={"x": 1}, system_metrics=False,
                             system_metrics_interval_s=1.0)
    train(tmp_path, loaders, [tracker])
    (run,) = mlflow_runs(store, "off")
    assert "train/loss" in run.data.metrics
    assert not [k for k in run.data.metrics if k.startswith("system/")]


UUIDS = ["GPU-0aaa1111-0000", "GPU-1bbb2222-0000", "GPU-2ccc3333-0000", "GPU-2ccc4444-0000"]


@pytest.mark.parametrize(("spec", "expected"), [
    (None, [0, 1, 2, 3]),            # unset: every GPU of the node
    ("", []),                        # set but empty: no GPU
    ("1,3", [1, 3]),                 # SLURM/submitit per-job indices
    ("3,1", [3, 1]),                 # CUDA's order: gpu_0 is cuda:0
    (" 2 ", [2]),
    ("0,7,1", [0]),                  # CUDA stops at the first invalid entry
    ("0,-1,1", [0]),
    ("1,1", [1]),
    ("GPU-1bbb2222-0000,GPU-2ccc4444-0000", [1, 3]),
    ("gpu-2ccc3", [2]),              # a unique prefix, any case
    ("1,GPU-2ccc", [1]),             # an ambiguous prefix ends the list
    ("MIG-5ddd5555-0000,0", [0]),    # MIG slices are not watched
    ("GPU-ffff", []),
])
def test_visible_gpus_follow_cuda_visible_devices(spec, expected):
    assert visible_gpu_indices(spec, UUIDS) == expected


def test_visible_gpus_without_devices():
    assert visible_gpu_indices(None, []) == [] and visible_gpu_indices("0,1", []) == []


def test_monitor_watches_only_the_jobs_gpus_and_tolerates_no_nvml(store, monkeypatch):
    import pynvml

    client = MlflowClient(store)
    run = client.create_run(client.create_experiment("probe"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monitor = JobSystemMetricsMonitor(run.info.run_id, sampling_interval=1, tracking_uri=store)
    gpus = [m for m in monitor.monitors if isinstance(m, JobGPUMonitor)]
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver or no GPU (CI): CPU, RAM, disk and network only
        assert gpus == [] and monitor.gpu_uuids == []
        assert {"cpu_utilization_percentage", "system_memory_usage_megabytes"} <= set(monitor.collect_metrics())
        return
    if pynvml.nvmlDeviceGetCount() == 0:
        assert gpus == []
    else:  # a GPU node: exactly the one device CUDA_VISIBLE_DEVICES names, logged as gpu_0
        (gpu,) = gpus
        assert gpu.nvml_indices == [0] and len(gpu.gpu_handles) == 1
        assert not [k for k in monitor.collect_metrics() if k.startswith("gpu_1_")]
