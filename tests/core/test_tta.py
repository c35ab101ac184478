"""Test-time augmentation: each symmetry is undone exactly, a model that is equivariant by
construction gains nothing from TTA (so transform, undo and averaging fit together, whole and
sliding-window alike, on non-square images), and a real model does change under it."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from conftest import mlflow_runs
from trained import writable_copy

from seg58.base.choices import Tta
from seg58.engine.inference import TTA_SYMMETRIES, Predictor, to_tensor

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]
CPU = torch.device("cpu")


class Pointwise(torch.nn.Module):
    """Two 1x1 convolutions with a ReLU: each pixel's logits depend on that pixel alone, so the
    model commutes with every flip and rotation (and zero padding changes nothing)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 1))

    def forward(self, x):
        return self.net(x)


def _distinct(images: list[torch.Tensor]) -> int:
    kept: list[torch.Tensor] = []
    for im in images:
        if not any(k.shape == im.shape and torch.equal(k, im) for k in kept):
            kept.append(im)
    return len(kept)


def test_each_symmetry_is_undone_exactly_and_each_set_is_a_group():
    x = torch.randn(2, 3, 5, 7)
    assert {t: len(s) for t, s in TTA_SYMMETRIES.items()} == {Tta.none: 1, Tta.flips: 4, Tta.d4: 8}
    for symmetries in TTA_SYMMETRIES.values():
        for s in symmetries:
            y = s.apply(x)
            assert y.shape[-2:] == ((7, 5) if s.turns % 2 else (5, 7))  # quarter turns go W x H
            assert torch.equal(s.undo(y), x) and torch.equal(s.apply(s.undo(x)), x)
        images = [s.apply(x) for s in symmetries]
        assert _distinct(images) == len(symmetries)  # no symmetry repeated, none a silent identity
        for a, b in itertools.product(symmetries, repeat=2):  # closed: a after b is one of the set
            assert _distinct([*images, a.apply(b.apply(x))]) == len(symmetries)
    flips = [s.apply(x) for s in TTA_SYMMETRIES[Tta.flips]]
    assert _distinct([*flips, x, x.flip(-1), x.flip(-2), x.flip(-2, -1)]) == 4  # exactly h, v, both
    d4 = [s.apply(x) for s in TTA_SYMMETRIES[Tta.d4]]
    assert _distinct([*d4, torch.rot90(x, 1, (-2, -1)), x.transpose(-2, -1)]) == 8


@pytest.mark.parametrize("tta", ["flips", "d4"])
@pytest.mark.parametrize(("mode", "window"), [("whole", 0), ("slide", 32)])
def test_an_equivariant_model_gains_nothing_from_tta(tta, mode, window):
    image = np.random.default_rng(0).integers(0, 255, (50, 83, 3), dtype=np.uint8)  # non-square, not /32
    x = to_tensor(image)

    def predictor(tta):
        return Predictor(Pointwise(), CPU, 16, mode=mode, window=window or 384, overlap=0.25, amp=False, tta=tta)

    plain, augmented = predictor("none"), predictor(tta)
    probs = augmented.probabilities(x)
    assert probs.shape == (16, 50, 83)
    torch.testing.assert_close(probs, plain.logits(x).softmax(0), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(probs.sum(0), torch.ones(50, 83))
    assert torch.equal(augmented.predict(image, None, (50, 83)), plain.predict(image, None, (50, 83)))
    # resized to 120 px (rotated: 120 x 72 for d4) and upsampled back to a third size
    assert torch.equal(augmented.predict(image, 120, (61, 99)), predictor("flips").predict(image, 120, (61, 99)))


@pytest.mark.parametrize(("mode", "window"), [("whole", 0), ("slide", 64)])
def test_a_real_model_changes_under_d4_and_its_tta_prediction_is_equivariant(mode, window):
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.Unet("tu-test_resnet", encoder_weights=None, classes=16)
    x = torch.randn(3, 64, 96)  # sides divisible by 32 both ways round: no padding to break symmetry

    def predictor(tta):
        return Predictor(model, CPU, 16, mode=mode, window=window or 384, overlap=0.5, amp=False, tta=tta)

    plain, d4 = predictor("none").probabilities(x), predictor("d4").probabilities(x)
    assert (plain - d4).abs().max() > 1e-3  # the model is not equivariant: TTA does something
    # averaged over a group, the prediction commutes with it whatever the model, if and only if
    # every pass is undone right; a transpose (quarter turn + flip) also swaps H and W
    torch.testing.assert_close(predictor("d4").probabilities(x.transpose(-2, -1)), d4.transpose(-2, -1),
                               atol=1e-5, rtol=1e-4)


def test_tta_is_a_config_choice_wired_into_the_predictor(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    import seg58.config.schema  # noqa: F401 (registers the structured schema)
    from seg58.config import factory
    from seg58.config.schema import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=smoke", "infer.tta=d4", "infer.mode=slide"])
        with pytest.raises(ConfigCompositionException) as err:
            compose("config", overrides=["infer.tta=rot"])
    assert "[none, flips, d4]" in str(err.value.__cause__ or err.value)
    checkpoint = tmp_path / "best.pt"
    torch.save({"model": factory.model(cfg, pretrained=False).state_dict()}, checkpoint)
    predictor = factory.predictor(cfg, checkpoint, CPU)
    assert predictor.tta is Tta.d4 and len(TTA_SYMMETRIES[predictor.tta]) == 8


def test_evaluate_logs_tta_metrics_beside_the_plain_ones(cli, tmp_path, smoke_run):
    (run,) = mlflow_runs(writable_copy(smoke_run, tmp_path).uri, "smoke")  # evaluate logs into the run
    results = {}
    for tta in ("none", "d4"):
        res = cli("evaluate", f"infer.run_id={run.info.run_id}", f"infer.tta={tta}")
        assert res.returncode == 0, res.stderr[-2000:]
        results[tta] = json.loads(res.stdout[res.stdout.index("{"):])
    assert results["d4"]["tta"] == "d4"
    plain, d4 = results["none"]["metrics"], results["d4"]["metrics"]
    assert "eval/val/tta_d4/miou" in d4 and not any("tta" in k for k in plain)
    assert {k.replace("/tta_d4", "") for k in d4} == set(plain)  # the same metrics, one level down
    assert any(k.startswith("eval/val/precision/") for k in plain) and 0 <= plain["eval/val/mf1"] <= 1
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    logged = client.get_run(run.info.run_id).data
    assert logged.metrics["eval/val/miou"] == pytest.approx(plain["eval/val/miou"])
    assert logged.metrics["eval/val/tta_d4/miou"] == pytest.approx(d4["eval/val/tta_d4/miou"])
    assert logged.metrics["eval/val/tta_d4/recall/clean"] == pytest.approx(d4["eval/val/tta_d4/recall/clean"])
    assert "d4" not in logged.tags["eval.val.mode"] and "eval.val.tta_d4.mode" in logged.tags
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "eval")}
    assert {"eval/confusion_val.png", "eval/confusion_val_tta_d4.png"} <= artifacts
