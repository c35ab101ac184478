"""Hierarchical heads: three outputs from one encoder/decoder, the 0.2/0.3/0.5 loss, metrics."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import torch
from conftest import make, mlflow_runs

from seg58.base.classes import CLASS_NAMES
from seg58.config import factory
from seg58.config.config_checks import config_problems
from seg58.engine.evaluator import SegmentationEvaluator
from seg58.modeling.hierarchy import HierarchicalLoss, targets
from seg58.modeling.models import build_model

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]
# The documented groups (README, seg58/modeling/hierarchy.py), written out by name; None = not scored (255).
DOCUMENTED = {
    "seg58": {0: ["Clean"],
              1: ["Material loss", "Peel", "Scratch", "Fold", "Cracks", "Puncture", "Burn marks"],
              2: ["Dust", "Hair", "Dirt", "Staining", "Lightleak"],
              3: ["Writing", "Stamp", "Sticker"]},
    "poc55": {None: ["Clean"],
              0: ["Material loss", "Peel", "Dust", "Scratch"],
              1: ["Hair", "Dirt", "Staining", "Stamp"],
              2: ["Fold", "Cracks", "Puncture"],
              3: ["Writing", "Sticker", "Burn marks", "Lightleak"]},
}


@pytest.mark.parametrize("mapping", sorted(DOCUMENTED))
def test_every_fine_class_gets_its_documented_coarse_and_binary_target(mapping):
    coarse = {name: 255 if group is None else group for group, names in DOCUMENTED[mapping].items() for name in names}
    assert sorted(coarse) == sorted(CLASS_NAMES)
    t = targets(torch.tensor([*range(16), 255]), mapping=mapping)
    assert t["coarse"].tolist() == [coarse[name] for name in CLASS_NAMES] + [255]
    assert t["binary"].tolist() == [0] + [1] * 15 + [255]  # Clean = no damage in both; 255 stays ignored


def test_poc55_scores_a_clean_guess_on_damage_as_wrong_at_the_coarse_level():
    truth = torch.tensor([0, 1, 5, 7, 8])  # Clean, then one class of each POC-5.5 group
    pred = torch.tensor([1, 0, 5, 7, 8])  # Clean predicted on Material loss; Material loss on Clean
    evaluator = SegmentationEvaluator(mapping="poc55")
    evaluator.update(pred, truth)
    m = evaluator.metrics("v")
    assert m["v/coarse/iou/group0"] == 0.0  # its only pixel was guessed Clean: wrong, not skipped
    assert m["v/coarse/iou/group1"] == m["v/coarse/iou/group2"] == m["v/coarse/iou/group3"] == 1.0
    assert m["v/coarse/miou"] == 0.75 and "v/coarse/iou/clean" not in m
    assert m["v/binary/iou/clean"] == 0.0 and m["v/binary/iou/damage"] == 0.6


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


def test_a_hierarchical_run_with_the_poc55_mapping(cache_dir):
    """Composed like `seg58 experiment=smoke model.hierarchical=true loss=hierarchical data.hierarchy=poc55`
    and built through the factory, as the CLI does (without MLflow: seconds, not a minute)."""
    cfg = make("experiment=smoke", "model.hierarchical=true", "loss=hierarchical", "data.hierarchy=poc55",
               f"paths.cache_dir={cache_dir}", "tracking=none")
    assert config_problems(cfg) == [] and cfg.loss.mapping == "poc55"
    rt = factory.runtime(cfg)
    splits = factory.data_splits(cfg)
    trainer = factory.trainer(cfg, rt.device)
    metrics = trainer.fit(*factory.loaders(cfg, splits, rt)).last
    coarse = {k for k in metrics if k.startswith("val/coarse/iou/")}
    assert coarse and coarse <= {f"val/coarse/iou/group{g}" for g in range(4)}, coarse
    assert trainer.model.coarse_head.out_channels == 4 and "val/heads/coarse/miou" in metrics
    assert 0 <= metrics["val/binary/miou"] <= 1


def test_heads_and_loss_must_match(cli):
    res = cli(*SMOKE, "model.hierarchical=true")
    assert res.returncode != 0 and "model.hierarchical=true and loss=hierarchical go together" in res.stderr
