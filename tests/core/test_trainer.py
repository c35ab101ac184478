"""The core, constructed directly (no Hydra, no MLflow): it learns, checkpoints and reports."""

from __future__ import annotations

import math
from functools import partial

import pytest
import segmentation_models_pytorch as smp
import torch

from seg58.base.stop import StopKind, StopReason
from seg58.data.build import build_splits
from seg58.data.loaders import make_loaders
from seg58.engine.callback import Callback
from seg58.engine.hooks import Checkpointer, LRSchedule
from seg58.engine.options import TrainerOptions
from seg58.engine.trainer import Trainer
from seg58.modeling.models import build_model


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_fit_start(self, trainer):
        self.events.append("start")

    def on_epoch_end(self, trainer, epoch, metrics):
        self.events.append(("epoch", epoch, dict(metrics)))

    def on_fit_end(self, trainer, summary):
        self.events.append(("end", summary))


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return build_splits(tmp_path_factory.mktemp("trainer-data"), img_size=64,
                        synthetic={"n_images": 24, "size": 72, "seed": 0})


@pytest.fixture(scope="module")
def loaders(splits):
    return fresh_loaders(splits)


def fresh_loaders(splits):
    return make_loaders(splits, batch_size=2, workers=0, device=torch.device("cpu"), seed=0)


def make_trainer(tmp_path, epochs, callbacks=(), lr=3e-3, cpu_amp="auto", **options):
    torch.manual_seed(0)
    return Trainer(
        build_model("Unet", "tu-test_resnet", 16),
        smp.losses.DiceLoss("multiclass", ignore_index=255),
        partial(torch.optim.AdamW, lr=lr, weight_decay=0.01),
        device=torch.device("cpu"),
        options=TrainerOptions(epochs=epochs, amp=True, cpu_amp=cpu_amp, progress=False, **options),
        hooks=[*callbacks, LRSchedule(partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=lr, pct_start=0.3)),
               Checkpointer(tmp_path / "ckpt")],
    )


@pytest.mark.slow  # 12 epochs
def test_loss_decreases_on_learnable_data(loaders, tmp_path):
    rec = Recorder()
    trainer = make_trainer(tmp_path, epochs=12, callbacks=[rec])
    summary = trainer.fit(*loaders)
    losses = [m["train/loss"] for m in (e[2] for e in rec.events if e[0] == "epoch")]
    assert len(losses) == 12
    # Dice over the classes present in each batch is noisy per epoch: compare 3-epoch means
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, losses
    miou = [h["val/miou"] for h in trainer.history]
    assert max(miou[-3:]) > 2 * miou[0] and summary.best_val_miou > 0.05, miou
    assert summary.best_epoch >= 6
    assert rec.events[0] == "start" and rec.events[-1][0] == "end"


def test_epoch_metrics_are_complete_and_sane(loaders, tmp_path):
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit(*loaders)
    m = trainer.history[0]
    for key in ("train/loss", "val/loss", "val/miou", "val/pixel_acc", "lr",
                "perf/train_imgs_per_s", "perf/step_imgs_per_s", "perf/epoch_time_s",
                "perf/peak_mem_mb", "perf/data_wait_frac"):
        assert key in m and math.isfinite(m[key]), key
    assert 0 <= m["val/miou"] <= 1 and m["perf/peak_mem_mb"] > 50
    assert m["perf/step_imgs_per_s"] >= m["perf/train_imgs_per_s"] > 0
    per_class = {k for k in m if k.startswith("val/iou/")}
    assert "val/iou/clean" in per_class and len(per_class) >= 5
    # OneCycle stepped per batch ends near zero LR
    assert m["lr"] < 0.1 * 3e-3


def test_checkpoints_hold_full_training_state(loaders, tmp_path):
    trainer = make_trainer(tmp_path, epochs=2)
    trainer.fit(*loaders)
    last = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and {"model", "optimizer", "scheduler", "scaler"} <= set(last)
    assert last["scheduler"]["_step_count"] > 1
    best = torch.load(tmp_path / "ckpt" / "best.pt", weights_only=True)
    assert best["epoch"] == trainer.best["epoch"] and "optimizer" not in best
    assert not list((tmp_path / "ckpt").glob(".*tmp"))  # atomic writes leave no temp files


@pytest.mark.parametrize("cpu_amp", ["bf16", "off", "auto"])
def test_cpu_autocast_is_bf16_where_asked_or_native(loaders, tmp_path, cpu_amp):
    from seg58.engine.runtime import cpu_has_native_bf16

    trainer = make_trainer(tmp_path, epochs=1, cpu_amp=cpu_amp)
    seen = []
    trainer.model.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    images, _ = next(iter(loaders[1]))
    trainer.step(images, torch.zeros(images.shape[0], 64, 64, dtype=torch.long))
    bf16 = cpu_amp == "bf16" or (cpu_amp == "auto" and cpu_has_native_bf16())
    assert seen == [torch.bfloat16 if bf16 else torch.float32] and not trainer.scaler.is_enabled()


class Interrupt(Callback):
    """Dies like a preempted job: after `epoch` is checkpointed, before anything logs it."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, metrics):
        if epoch == self.epoch:
            raise SystemExit(-1)


@pytest.mark.slow  # trains twice, through MLflow
def test_interrupted_run_resumes_into_the_same_mlflow_run(loaders, tmp_path):
    from conftest import mlflow_runs
    from mlflow.tracking import MlflowClient

    from seg58.tracking.run_logger import MlflowCallback

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def tracker():
        return MlflowCallback(uri, "resume", "r", params={"x": 1}, run_id_file=tmp_path / "run_id")

    first = make_trainer(tmp_path, epochs=4, callbacks=[Interrupt(1), tracker()])
    with pytest.raises(SystemExit):
        first.fit(*loaders)
    (run,) = mlflow_runs(uri, "resume")
    assert run.info.status == "KILLED"

    second = make_trainer(tmp_path, epochs=4, callbacks=[tracker()])
    second.fit(*loaders, resume_from=tmp_path / "ckpt" / "last.pt")
    assert second.start_epoch == 2 and len(second.history) == 4
    steps_per_epoch = len(loaders[0])
    assert second.hook(LRSchedule).scheduler.last_epoch == 4 * steps_per_epoch  # the schedule continued, not restarted
    assert second.history[:2] == first.history[:2]

    last = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    (run,) = mlflow_runs(uri, "resume")  # still one run, now finished
    assert last["meta"]["mlflow_run_id"] == run.info.run_id
    assert run.info.status == "FINISHED"
    history = MlflowClient(uri).get_metric_history(run.info.run_id, "val/miou")
    assert sorted(m.step for m in history) == [0, 1, 2, 3]  # epoch 1 logged after the restart, once


def test_channels_last_trains_the_same_way(loaders, tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(
        build_model("Unet", "tu-test_resnet", 16), smp.losses.DiceLoss("multiclass", ignore_index=255),
        partial(torch.optim.AdamW, lr=1e-3), device=torch.device("cpu"),
        options=TrainerOptions(epochs=1, channels_last=True, progress=False),
    )
    trainer.fit(*loaders)
    convs = [p for p in trainer.model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert math.isfinite(trainer.history[0]["train/loss"])


def test_patience_stops_a_run_that_no_longer_improves(loaders, tmp_path):
    from seg58.engine.hooks import EarlyStopping

    rec = Recorder()
    # min_delta=1: no epoch can beat the first by more than a whole mIoU, so epoch 2 stops it
    trainer = make_trainer(tmp_path, epochs=6, callbacks=[EarlyStopping(patience=1, min_delta=1.0), rec])
    summary = trainer.fit(*loaders)
    assert summary.epochs_trained == 2 and len(trainer.history) == 2
    assert summary.stop.kind is StopKind.early_stop and summary.stop.epoch == 2
    assert [e[1] for e in rec.events if e[0] == "epoch"] == [0, 1]  # the last epoch is still reported
    assert torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)["epoch"] == 1


def test_patience_counts_epochs_without_a_real_gain_and_survives_a_resume(tmp_path):
    from seg58.engine.hooks import EarlyStopping

    trainer = make_trainer(tmp_path, epochs=10)
    stopper = EarlyStopping(patience=2, min_delta=0.01)
    stopper.on_fit_start(trainer)
    for epoch, miou in enumerate([0.10, 0.20, 0.205, 0.25, 0.255]):  # +0.005 is not a gain
        stopper.on_epoch_end(trainer, epoch, {"val/miou": miou})
        assert trainer.stop_reason is None, epoch
    stopper.on_epoch_end(trainer, 5, {"val/miou": 0.25})
    assert trainer.stop_reason == StopReason(StopKind.early_stop, 6, "val/miou gained no more than 0.01 in 2 epoch(s)")
    assert str(trainer.stop_reason).startswith("early stop at epoch 6")
    # a resumed run rebuilds the count from its history: one more flat epoch stops it
    resumed = make_trainer(tmp_path, epochs=10)
    resumed.history = [{"val/miou": v} for v in (0.10, 0.20, 0.205, 0.25, 0.255)]
    again = EarlyStopping(patience=2, min_delta=0.01)
    again.on_fit_start(resumed)
    again.on_epoch_end(resumed, 5, {"val/miou": 0.25})
    assert resumed.stop_reason is not None


def test_validation_scores_each_material_as_its_own_images_alone(loaders, tmp_path):
    """Per-image matrices are attributed to the val samples by position: the mIoU logged for a
    material equals the mIoU of validating on that material's images only."""
    from seg58.base.classes import metric_key

    val = loaders[1]
    trainer = make_trainer(tmp_path, epochs=1, cpu_amp="off")
    metrics = trainer.validate(val)
    ids, matrices = trainer.last_per_image
    assert ids == [s.id for s in val.dataset.samples] and (matrices.sum(0) == trainer.last_confusion.numpy()).all()
    assert metrics["val/miou_ci_low"] < metrics["val/miou"] < metrics["val/miou_ci_high"]
    by_material = {}
    for i, s in enumerate(val.dataset.samples):
        by_material.setdefault(s.material, []).append(i)
    assert len(by_material) >= 2
    alone = {}
    for material, positions in by_material.items():
        subset = torch.utils.data.DataLoader(torch.utils.data.Subset(val.dataset, positions), batch_size=2)
        alone[material] = trainer.validate(subset)["val/miou"]
        assert metrics[f"val/material/{metric_key(material)}/miou"] == pytest.approx(alone[material], abs=1e-6)
    assert len({round(v, 6) for v in alone.values()}) > 1  # the materials do score differently
    assert any(k.startswith("val/content/") for k in metrics)


class Measures(Callback):
    """Adds a figure when training ends, like the cost meter."""

    def finish(self, trainer):
        return {"cost/answer": 42.0}


def test_every_hook_reads_the_whole_summary_whatever_its_place(loaders, tmp_path):
    """Reporters listed before the hooks that add figures still see them, and the checkpoint of an
    epoch is on disk before a hook listed first hears of that epoch."""
    seen = []

    class Reporter(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            seen.append(torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)["epoch"])

        def on_fit_end(self, trainer, summary):
            seen.append(dict(summary.final))

    trainer = make_trainer(tmp_path, epochs=1, callbacks=[Reporter(), Measures()], limit_train_batches=2,
                           limit_val_batches=1)
    summary = trainer.fit(*loaders)
    assert seen == [0, {"cost/answer": 42.0}]
    assert [type(h).__name__ for h in trainer.hooks][:2] == ["LRSchedule", "Checkpointer"]
    with pytest.raises(TypeError):
        summary.final["cost/answer"] = 0.0  # read-only: hooks add figures only by returning them
    assert summary.epochs_trained == 1 and summary.last is summary.history[-1]


def test_a_resumed_run_continues_its_schedule_and_shuffle_order(splits, tmp_path):
    """Stopped after epoch 1 and resumed from a process whose own seed differs, a run ends with
    the LR, momentum and shuffle-order state of the run that was never stopped."""
    options = dict(cpu_amp="off", limit_train_batches=3, limit_val_batches=1)
    whole = make_trainer(tmp_path / "whole", 2, **options)
    whole.fit(*fresh_loaders(splits))

    first = make_trainer(tmp_path / "parts", 2, callbacks=[Interrupt(0)], **options)
    with pytest.raises(SystemExit):
        first.fit(*fresh_loaders(splits))
    torch.manual_seed(123)
    second = make_trainer(tmp_path / "parts", 2, **options)
    train_loader, val_loader = fresh_loaders(splits)
    second.fit(train_loader, val_loader, resume_from=tmp_path / "parts" / "ckpt" / "last.pt")

    assert second.start_epoch == 1
    assert second.hook(LRSchedule).scheduler.last_epoch == whole.hook(LRSchedule).scheduler.last_epoch == 6
    for key in ("lr", "betas"):
        assert second.optimizer.param_groups[0][key] == whole.optimizer.param_groups[0][key], key
    assert torch.equal(train_loader.generator.get_state(), whole._data_order.get_state())


def test_the_same_seed_augments_the_same_way(splits, tmp_path):
    """Two runs with one seed see the same crops and flips (albumentations seeds from the OS
    unless told), so that two encoders compared in a sweep saw the same data."""
    runs = []
    for name in ("a", "b"):
        trainer = make_trainer(tmp_path / name, 1, cpu_amp="off", limit_train_batches=3, limit_val_batches=1)
        runs.append(trainer.fit(*fresh_loaders(splits)).history[0]["train/loss"])
    assert runs[0] == runs[1]
