"""Bad input, NaNs, OOM, kills and restarts: loud early failures, no lost or doubled work."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
from conftest import free_port, mlflow_runs, start_mlflow_server
from mlflow.tracking import MlflowClient
from PIL import Image

from seg58.base.errors import CheckpointError, NonFiniteLossError
from seg58.data.build import build_splits
from seg58.data.loaders import make_loaders
from seg58.engine.callback import Callback
from seg58.engine.hooks import Checkpointer, LRSchedule
from seg58.engine.options import TrainerOptions
from seg58.engine.trainer import Trainer
from seg58.modeling.models import build_model

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]


@pytest.fixture(scope="module")
def loaders(tmp_path_factory):
    splits = build_splits(tmp_path_factory.mktemp("rel"), img_size=64,
                          synthetic={"n_images": 12, "size": 72, "seed": 0})
    return make_loaders(splits, batch_size=4, workers=0, device=torch.device("cpu"), seed=0)


class Events(Callback):
    def __init__(self):
        self.seen = []

    def on_event(self, trainer, key, value):
        self.seen.append((key, value))


def trainer_for(tmp_path, loss=None, nonfinite="skip", epochs=2, callbacks=()):
    torch.manual_seed(0)
    return Trainer(
        build_model("Unet", "tu-test_resnet", 16),
        loss or smp.losses.DiceLoss("multiclass", ignore_index=255),
        partial(torch.optim.AdamW, lr=1e-3), device=torch.device("cpu"),
        options=TrainerOptions(epochs=epochs, progress=False, nonfinite=nonfinite),
        hooks=[*callbacks, LRSchedule(partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1e-3)),
               Checkpointer(tmp_path / "ckpt")],
    )


class NaNOnCalls(torch.nn.Module):
    """Dice loss that returns NaN on the given (0-based) training calls."""

    def __init__(self, bad_calls):
        super().__init__()
        self.inner = smp.losses.DiceLoss("multiclass", ignore_index=255)
        self.bad, self.calls = set(bad_calls), 0

    def forward(self, logits, target):
        loss = self.inner(logits, target)
        if torch.is_grad_enabled():
            if self.calls in self.bad:
                loss = loss * float("nan")
            self.calls += 1
        return loss


def test_nonfinite_loss_is_skipped_and_recorded(loaders, tmp_path):
    events = Events()
    trainer = trainer_for(tmp_path, NaNOnCalls({1, 3}), callbacks=[events])
    trainer.fit(*loaders)
    assert len(loaders[0]) == 2  # so calls 1 and 3 are the last step of each epoch
    assert [h["train/nonfinite_steps"] for h in trainer.history] == [1.0, 1.0]
    assert all(math.isfinite(h["train/loss"]) for h in trainer.history)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert ("nonfinite.last_step", 3) in events.seen
    assert trainer.hook(LRSchedule).scheduler.last_epoch == 2 * len(loaders[0])  # schedule stayed aligned


def test_nonfinite_loss_stops_when_asked(loaders, tmp_path):
    trainer = trainer_for(tmp_path, NaNOnCalls({2}), nonfinite="stop")
    with pytest.raises(NonFiniteLossError, match="epoch 2 step 2"):
        trainer.fit(*loaders)


def test_out_of_memory_retries_with_accumulation(loaders, tmp_path):
    events = Events()
    trainer = trainer_for(tmp_path, callbacks=[events], epochs=1)
    raised = []

    def oom_once(module, args):
        if args[0].shape[0] > 2 and not raised:
            raised.append(True)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    trainer.model.register_forward_pre_hook(oom_once)
    trainer.fit(*loaders)
    assert raised and trainer.accum_steps == 2
    assert events.seen == [("oom.accumulation_steps", 2)]
    assert trainer.history[0]["train/accum_steps"] == 2.0
    assert trainer.hook(LRSchedule).scheduler.last_epoch == len(loaders[0])  # every batch still made one step
    last = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert last["accum_steps"] == 2  # a resumed run does not hit the same OOM again


def test_corrupt_checkpoint_is_a_clear_error(loaders, tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(CheckpointError, match=str(bad)):
        trainer_for(tmp_path).fit(*loaders, resume_from=bad)


def test_corrupt_checkpoint_through_the_cli(cli, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(os.urandom(64))
    res = cli(*SMOKE, f"trainer.resume={bad}")
    out = res.stderr + res.stdout
    assert res.returncode != 0 and f"cannot load checkpoint {bad}" in out and "Traceback" not in out


def _bad_dataset(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(6):
        Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(root / "images" / f"a{i}.png")
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "annotations" / f"a{i}.png")
    Image.fromarray(np.full((64, 64), 99, np.uint8)).save(root / "annotations" / "a1.png")
    Image.fromarray(np.zeros((32, 64), np.uint8)).save(root / "annotations" / "a2.png")
    (root / "images" / "a3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(40))
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / "annotations" / "a4.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "annotations" / "orphan.png")
    return root


def test_bad_data_lists_every_file_and_records_only_a_failed_run(cli, tmp_path):
    _bad_dataset(tmp_path / "data" / "artefact")
    res = cli("data=artefact", f"paths.data_dir={tmp_path / 'data'}", "data.img_size=64",
              "encoder=tiny", "tracking.experiment_name=bad")
    out = res.stderr + res.stdout
    assert res.returncode != 0 and "Traceback" not in out
    assert "mask without image" in out and "orphan.png" in out  # scan problems come first
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "bad")
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert "orphan.png" in runs[0].data.tags["error"]
    assert runs[0].data.params == {} and runs[0].data.metrics == {}

    (tmp_path / "data" / "artefact" / "annotations" / "orphan.png").unlink()
    res = cli("check-data", "data=artefact", f"paths.data_dir={tmp_path / 'data'}")
    out = res.stderr + res.stdout
    assert res.returncode != 0
    for name, problem in [("a1.png", "labels out of range"), ("a2.png", "size mismatch"),
                          ("a3.png", "unreadable image"), ("a4.png", "mode RGB")]:
        assert name in out and problem in out, (name, out[-2000:])
    assert "a0.png" not in out and "a5.png" not in out


def test_check_data_reports_a_good_dataset(cli, tmp_path):
    res = cli("check-data", "data.synthetic.n_images=20", "data.synthetic.size=64")
    assert res.returncode == 0, res.stderr[-2000:]
    assert ": OK" in res.stdout and "16 train / 4 val" in res.stdout and "Lightleak" in res.stdout
    assert not (tmp_path / "outputs").exists()  # a check writes no run folder


@pytest.mark.parametrize(("args", "key"), [
    (["trainer.batch_size=64"], "trainer.batch_size=64"),
    (["trainer.epochs=0"], "trainer.epochs=0"),
    (["data.img_size=-64"], "data.img_size=-64"),
    (["trainer.nonfinite=ignore"], "trainer.nonfinite"),
])
def test_config_values_are_checked_naming_the_key(cli, args, key):
    res = cli(*SMOKE, *args)
    out = res.stderr + res.stdout
    assert res.returncode != 0 and key in out and "Traceback" not in out


def test_unreachable_tracking_server_fails_before_any_work(cli, tmp_path):
    res = cli(*SMOKE, env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "SEG58_CACHE_DIR": str(tmp_path / "c")})
    out = res.stderr + res.stdout
    assert res.returncode != 0 and "http://127.0.0.1:9 is not reachable" in out
    assert not (tmp_path / "c").exists()  # no data generated, nothing trained


def test_kill_9_then_the_same_command_resumes_into_the_same_run(cli, tmp_path, cache_dir):
    args = [*SMOKE, "data.synthetic.n_images=24", "trainer.epochs=12", "tracking.experiment_name=kill"]
    env = {**os.environ, "SEG58_CACHE_DIR": str(cache_dir), "PYTHONUNBUFFERED": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    proc = subprocess.Popen([sys.executable, "-m", "seg58", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(tmp_path.glob("outputs/*/*/checkpoints/last.pt")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # a few epochs in, mid-epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (first_dir,) = [p.parent.parent for p in tmp_path.glob("outputs/*/*/checkpoints/last.pt")]
    killed_at = torch.load(first_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"]
    assert killed_at < 11

    time.sleep(1.1)  # a new Hydra output folder (second resolution)
    res = cli(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "continuing the unfinished run" in res.stderr + res.stdout
    assert f"resumed from {first_dir}" in res.stderr + res.stdout
    (run,) = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "kill")
    assert run.info.status == "FINISHED"
    steps = [m.step for m in MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_metric_history(
        run.info.run_id, "val/miou")]
    assert sorted(steps) == list(range(12))  # nothing lost, nothing twice
    assert (first_dir / "COMPLETED").exists()
    # the same command once more starts afresh instead of "resuming" the finished run
    from seg58.commands.train import unfinished_run

    assert unfinished_run(first_dir.parent / "99-99-99", args) is None


@pytest.mark.slow  # a real server, stopped and restarted
def test_tracking_server_outage_mid_run_loses_nothing(loaders, tmp_path, monkeypatch):
    """A real `mlflow server` goes down after epoch 0 and comes back after epoch 2."""
    from seg58.tracking.run_logger import MlflowCallback

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    port = free_port()
    server = [start_mlflow_server(port, tmp_path)]

    class Outage(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            if epoch == 0:
                server[0].terminate()
                server[0].wait()
            elif epoch == 2:
                server[0] = start_mlflow_server(port, tmp_path)

    uri = f"http://127.0.0.1:{port}"
    tracker = MlflowCallback(uri, "outage", "r", params={"x": 1}, run_id_file=tmp_path / "rid",
                             log_checkpoint=False)
    try:
        trainer = trainer_for(tmp_path, epochs=4, callbacks=[tracker, Outage()])
        trainer.fit(*loaders)  # training never stopped for the outage
        (run,) = mlflow_runs(uri, "outage")
        assert run.info.status == "FINISHED"
        steps = [m.step for m in MlflowClient(uri).get_metric_history(run.info.run_id, "train/loss")]
        assert sorted(steps) == [0, 1, 2, 3]
    finally:
        server[0].terminate()
        server[0].wait()
