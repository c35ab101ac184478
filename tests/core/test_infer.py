"""Whole-image and sliding-window inference, `seg58 evaluate` and `seg58 predict` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import mlflow_runs
from PIL import Image
from trained import writable_copy

from seg58.engine.inference import Predictor, to_tensor

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]


class Pointwise(torch.nn.Module):
    """A 1x1 convolution: its logits do not depend on how the image is tiled."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 1)

    def forward(self, x):
        return self.conv(x)


def test_sliding_window_equals_whole_image_where_both_fit():
    image = np.random.default_rng(0).integers(0, 255, (150, 230, 3), dtype=np.uint8)
    x = to_tensor(image)
    whole = Predictor(Pointwise(), torch.device("cpu"), 16, mode="whole", amp=False).logits(x)
    for window, overlap in [(256, 0.0), (64, 0.0), (64, 0.5), (96, 0.3)]:
        slide = Predictor(Pointwise(), torch.device("cpu"), 16, mode="slide", window=window,
                          overlap=overlap, amp=False).logits(x)
        assert slide.shape == whole.shape == (16, 150, 230)
        torch.testing.assert_close(slide, whole, atol=1e-5, rtol=1e-5)


def test_single_window_equals_whole_for_a_real_model():
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.Unet("tu-test_resnet", encoder_weights=None, classes=16)
    x = to_tensor(np.random.default_rng(1).integers(0, 255, (128, 128, 3), dtype=np.uint8))
    whole = Predictor(model, torch.device("cpu"), 16, mode="whole", amp=False).logits(x)
    slide = Predictor(model, torch.device("cpu"), 16, mode="slide", window=128, amp=False).logits(x)
    torch.testing.assert_close(slide, whole)  # the window covers the padded image: same pass


@pytest.fixture
def trained(smoke_run, tmp_path):
    """The suite's shared run (tests/trained.py), copied here: evaluate logs into it."""
    copy = writable_copy(smoke_run, tmp_path)
    (run,) = mlflow_runs(copy.uri, "smoke")
    (best,) = tmp_path.glob("outputs/*/*/checkpoints/best.pt")
    return run, best


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_evaluate_a_run_logs_into_it(cli, tmp_path, trained, mode):
    run, _ = trained
    res = cli("evaluate", f"infer.run_id={run.info.run_id}", f"infer.mode={mode}", "infer.window=64")
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads(res.stdout[res.stdout.index("{"):])
    assert result["images"] == 2 and 0 <= result["metrics"]["eval/val/miou"] <= 1
    assert 0 <= result["metrics"]["eval/val/coarse/miou"] <= 1 and 0 <= result["metrics"]["eval/val/binary/miou"] <= 1
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    again = client.get_run(run.info.run_id)
    assert again.data.metrics["eval/val/miou"] == pytest.approx(result["metrics"]["eval/val/miou"])
    assert "eval/confusion_val.png" in {a.path for a in client.list_artifacts(run.info.run_id, "eval")}


def test_evaluate_a_checkpoint_and_bad_arguments(cli, tmp_path, trained):
    _, best = trained
    res = cli("evaluate", *SMOKE, f"infer.checkpoint={best}", "infer.split=all")
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout[res.stdout.index("{"):])["images"] == 12
    res = cli("evaluate", *SMOKE, f"infer.checkpoint={best}", "encoder=resnet50")
    assert res.returncode != 0 and "does not fit model" in res.stderr
    res = cli("evaluate", *SMOKE)
    assert res.returncode != 0 and "infer.checkpoint" in res.stderr


def test_predict_writes_masks_and_overlays(cli, tmp_path, trained):
    _, best = trained
    images = tmp_path / "in"
    images.mkdir()
    for name, size in [("a.png", (300, 200)), ("b.jpg", (90, 120))]:
        pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / name)
    res = cli("predict", *SMOKE, f"infer.checkpoint={best}", f"infer.input={images}",
              f"infer.output={tmp_path / 'out'}", "infer.mode=slide", "infer.window=64")
    assert res.returncode == 0, res.stderr[-2000:]
    mask = np.asarray(Image.open(tmp_path / "out" / "a_mask.png"))
    assert mask.shape == (200, 300) and mask.max() < 16
    assert Image.open(tmp_path / "out" / "b_overlay.png").size == (90, 120)
