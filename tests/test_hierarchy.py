"""Hierarchical heads: three outputs from one encoder/decoder, the 0.2/0.3/0.5 loss, metrics."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import torch
from conftest import mlflow_runs

from seg58.classes import CLASS_NAMES
from seg58.hierarchy import FINE_TO_COARSE, HierarchicalLoss, targets
from seg58.models import build_model

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]


def test_mapping_covers_every_class_and_keeps_ignore():
    assert len(FINE_TO_COARSE) == len(CLASS_NAMES) and set(FINE_TO_COARSE) == {0, 1, 2, 3}
    fine = torch.tensor([[0, 1, 3, 8], [15, 255, 14, 11]])
    t = targets(fine)
    assert t["coarse"].tolist() == [[0, 1, 2, 3], [2, 255, 1, 3]]
    assert t["binary"].tolist() == [[0, 1, 1, 1], [1, 255, 1, 1]]


@pytest.mark.parametrize("arch", ["Unet", "DeepLabV3Plus", "FPN", "UnetPlusPlus"])
def test_three_heads_share_the_trunk(arch):
    model = build_model(arch, "tu-test_resnet", 16, hierarchical=True).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "fine": (2, 16, 64, 64), "coarse": (2, 4, 64, 64), "binary": (2, 2, 64, 64)}
    extra = sum(p.numel() for n, p in model.named_parameters() if "_head" in n and "segmentation" not in n)
    channels = model.model.segmentation_head[0].in_channels
    assert extra == (channels + 1) * (4 + 2)  # light 1x1 heads on the shared decoder output


def test_loss_is_the_weighted_sum_of_the_three_levels():
    dice = lambda: smp.losses.DiceLoss("multiclass", ignore_index=255)  # noqa: E731
    loss = HierarchicalLoss(dice(), dice(), dice())
    torch.manual_seed(0)
    out = {"fine": torch.randn(2, 16, 8, 8), "coarse": torch.randn(2, 4, 8, 8), "binary": torch.randn(2, 2, 8, 8)}
    y = torch.randint(0, 16, (2, 8, 8))
    y[0, 0] = 255
    t = targets(y)
    expected = sum(w * dice()(out[k], t[k]) for k, w in (("binary", 0.2), ("coarse", 0.3), ("fine", 0.5)))
    torch.testing.assert_close(loss(out, y), expected)
    with pytest.raises(ValueError, match="unknown levels"):
        HierarchicalLoss(dice(), dice(), dice(), weights={"fne": 1.0})


def test_hierarchical_run_logs_metrics_for_all_three_levels(cli, tmp_path):
    res = cli(*SMOKE, "model.hierarchical=true", "loss=hierarchical", "trainer.epochs=2",
              "tracking.experiment_name=hier")
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "hier")
    for key in ("val/miou", "val/coarse/miou", "val/binary/miou", "val/binary/iou/clean"):
        assert key in run.data.metrics, key
    assert run.data.params["loss.weights.fine"] == "0.5"
    (best,) = tmp_path.glob("outputs/*/*/checkpoints/best.pt")
    res = cli("evaluate", *SMOKE, "model.hierarchical=true", "loss=hierarchical", f"infer.checkpoint={best}")
    assert res.returncode == 0, res.stderr[-2000:]  # inference uses the fine head


def test_heads_and_loss_must_match(cli):
    res = cli(*SMOKE, "model.hierarchical=true")
    assert res.returncode != 0 and "model.hierarchical=true and loss=hierarchical go together" in res.stderr
