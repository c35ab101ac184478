"""data.background=class: a 17th output trained on ARTeFACT's background (255), metrics still over
the 16 classes, predictions of it written back as 255."""

from __future__ import annotations

import json

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
from conftest import make, mlflow_runs

from seg58.config import factory
from seg58.config.config_checks import config_problems
from seg58.engine.evaluator import SegmentationEvaluator
from seg58.engine.inference import Predictor, to_tensor
from seg58.modeling.hierarchy import HierarchicalLoss, fine_labels
from seg58.modeling.losses import BackgroundAsClass


def test_the_loss_trains_background_as_class_16():
    torch.manual_seed(0)
    logits = torch.randn(2, 17, 4, 4, requires_grad=True)
    target = torch.randint(0, 16, (2, 4, 4))
    target[:, 0] = 255
    loss = BackgroundAsClass(torch.nn.CrossEntropyLoss(ignore_index=255), background=16)(logits, target)
    mapped = target.clone()
    mapped[mapped == 255] = 16
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, mapped))
    loss.backward()
    assert logits.grad[:, 16, 0].abs().sum() > 0  # background pixels now teach the 17th output


def test_hierarchical_loss_learns_background_only_at_the_fine_level():
    dice = lambda: smp.losses.DiceLoss("multiclass", ignore_index=255)  # noqa: E731
    loss = BackgroundAsClass(HierarchicalLoss(dice(), dice(), dice()), background=16)
    out = {"fine": torch.randn(1, 17, 4, 4, requires_grad=True), "coarse": torch.randn(1, 4, 4, 4, requires_grad=True),
           "binary": torch.randn(1, 2, 4, 4, requires_grad=True)}
    target = torch.full((1, 4, 4), 255)
    target[0, 2:] = 3
    loss(out, target).backward()
    assert out["fine"].grad[0, 16, :2].abs().sum() > 0
    assert out["coarse"].grad[0, :, :2].abs().sum() == 0 and out["binary"].grad[0, :, :2].abs().sum() == 0


def test_a_background_prediction_is_wrong_on_a_scored_pixel_and_truth_background_is_not_scored():
    truth = torch.tensor([1, 1, 2, 255, 255])
    pred = torch.tensor([1, 255, 2, 255, 3])
    evaluator = SegmentationEvaluator(background="class")
    evaluator.update(pred, truth)
    m = evaluator.metrics("val")
    assert m["val/iou/material_loss"] == 0.5 and m["val/iou/peel"] == 1.0  # the background guess cost class 1
    assert m["val/miou"] == 0.75 and m["val/pixel_acc"] == pytest.approx(2 / 3)
    assert "val/iou/background" not in m
    assert evaluator.confusion.shape == (17, 17) and evaluator.confusion[1, 16] == 1
    assert evaluator.confusion[16].sum() == 0  # truth 255 never scored
    assert m["val/binary/iou/damage"] == pytest.approx(2 / 3)  # at every level


def test_an_extra_output_is_predicted_as_255():
    logits = torch.zeros(1, 17, 1, 3)
    logits[0, 16, 0, 0] = logits[0, 4, 0, 1] = logits[0, 0, 0, 2] = 1
    assert fine_labels(logits).tolist() == [[[255, 4, 0]]]


class Pointwise17(torch.nn.Module):
    """A 1x1 convolution with 17 outputs whose background channel wins on dark pixels."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 17, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            self.conv.weight[16, 0] = -1.0  # dark red -> background
            self.conv.weight[5, 0] = 1.0  # bright red -> Hair

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_predictor_writes_background_as_255(mode):
    image = np.zeros((40, 70, 3), np.uint8)
    image[:, 35:, 0] = 255
    predictor = Predictor(Pointwise17(), torch.device("cpu"), 16, mode=mode, window=32, amp=False)
    pred = predictor.predict(image, None, (40, 70))
    assert set(pred[:, :35].unique().tolist()) == {255} and set(pred[:, 35:].unique().tolist()) == {5}
    assert predictor.logits(to_tensor(image)).shape == (17, 40, 70)


def test_config_builds_17_outputs_and_refuses_16_class_weights():
    cfg = make("data.background=class", "encoder=tiny", "data.img_size=64")
    assert factory.outputs(cfg) == 17 and config_problems(cfg) == []
    with torch.no_grad():
        assert factory.model(cfg, pretrained=False)(torch.randn(1, 3, 64, 64)).shape == (1, 17, 64, 64)
    assert factory.outputs(make("encoder=tiny")) == 16
    problems = config_problems(make("data.background=class", "loss=dice_ce_weighted"))
    assert any("loss.terms.ce.weights has 16 values" in p and "data.background=class" in p and "give 17" in p
               for p in problems), problems
    assert config_problems(make("data.background=class", "loss=hierarchical", "model.hierarchical=true")) == []


def test_a_tiny_run_with_background_as_a_class_trains_and_evaluates(cli, tmp_path):
    res = cli("experiment=smoke", "data.background=class", "tracking.experiment_name=bg")
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "bg")
    assert run.data.params["data.background"] == "class"
    assert 0 <= run.data.metrics["val/miou"] <= 1 and "val/iou/background" not in run.data.metrics
    (best,) = tmp_path.glob("outputs/*/*/checkpoints/best.pt")
    head = torch.load(best, weights_only=True)["model"]["segmentation_head.0.weight"]
    assert head.shape[0] == 17
    # a data override on the command line keeps the run's background setting (the checkpoint's 17 outputs)
    res = cli("evaluate", f"infer.run_id={run.info.run_id}", "data.split_seed=0")
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads(res.stdout[res.stdout.index("{"):])["metrics"]
    assert 0 <= metrics["eval/val/miou"] <= 1 and "eval/val/iou/background" not in metrics
