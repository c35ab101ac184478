"""Calibration and uncertainty: ECE against hand-computed and brute-force values, accumulated
across images; the normalised entropy map; `seg58 evaluate` logging ECE and a reliability diagram
and `seg58 predict` writing uncertainty maps at the mask's size, end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from seg58.modeling.calibration import CalibrationBins, normalized_entropy

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]


def _two_class(confidences: list[float], correct: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """2 x N probabilities whose top class is 0 with the given confidence; truth 0 where correct."""
    conf = torch.tensor(confidences, dtype=torch.float64)
    truth = torch.tensor([0 if c else 1 for c in correct])
    return torch.stack([conf, 1 - conf]), truth


def _brute_force_ece(probs: torch.Tensor, truth: torch.Tensor, n_bins: int = 15) -> float:
    """The textbook loop: bin m holds confidences in (m/M, (m+1)/M]."""
    conf, pred = probs.max(0)
    keep = truth != 255
    conf, hit = conf[keep].double().numpy(), (pred[keep] == truth[keep]).numpy()
    total = 0.0
    for m in range(n_bins):
        in_bin = (conf > m / n_bins) & (conf <= (m + 1) / n_bins)
        if in_bin.any():
            total += abs(hit[in_bin].mean() - conf[in_bin].mean()) * in_bin.sum() / len(conf)
    return total


def test_ece_of_a_hand_computed_case_leaves_ignored_pixels_out():
    # bin 13 (0.867, 0.933]: 0.90 right, 0.92 wrong -> accuracy 0.5, confidence 0.91, gap 0.41, 2 pixels
    # bin 14 (0.933, 1]: 0.95 wrong -> gap 0.95; bin 9 (0.6, 0.667]: 0.62 right -> gap 0.38
    probs, truth = _two_class([0.90, 0.92, 0.95, 0.62, 0.99], [True, False, False, True, False])
    truth[4] = 255  # a confidently wrong pixel, but ignored: it must not count
    bins = CalibrationBins(15)
    bins.update(probs, truth)
    assert bins.ece() == pytest.approx((2 * 0.41 + 0.95 + 0.38) / 4)  # 0.5375
    table = bins.table()
    assert sum(table["count"]) == 4 and table["count"][13] == 2 and table["count"][14] == 1
    assert table["accuracy"][13] == pytest.approx(0.5) and table["confidence"][13] == pytest.approx(0.91)
    assert math.isnan(table["accuracy"][0]) and table["upper"][-1] == 1.0


def test_ece_is_zero_when_each_bin_is_right_as_often_as_it_is_confident():
    # 10 pixels at 0.7 with 7 right (bin 10), 4 at 0.75 with 3 right (bin 11), 5 one-hot all right (bin 14)
    probs, truth = _two_class([0.7] * 10 + [0.75] * 4 + [1.0] * 5, [True] * 7 + [False] * 3 + [True] * 3 + [False]
                              + [True] * 5)
    bins = CalibrationBins(15)
    bins.update(probs, truth)
    assert bins.ece() == pytest.approx(0.0, abs=1e-12)
    assert bins.table()["count"][10] == 10 and bins.table()["count"][14] == 5
    assert math.isnan(CalibrationBins(15).ece())  # nothing scored yet: no number, not a perfect 0


def test_ece_accumulates_across_updates_and_matches_the_textbook_loop():
    gen = torch.Generator().manual_seed(0)
    probs = (3 * torch.randn(5, 2, 16, 16, generator=gen)).softmax(0)
    truth = torch.randint(0, 5, (2, 16, 16), generator=gen)
    truth[torch.rand(2, 16, 16, generator=gen) < 0.2] = 255
    whole = CalibrationBins(15)
    whole.update(probs.flatten(1), truth.flatten())  # one update of the concatenation
    parts = CalibrationBins(15)
    for i in range(2):
        parts.update(probs[:, i], truth[i])  # two images, one at a time
    assert parts.table()["count"] == whole.table()["count"] and sum(whole.table()["count"]) == int((truth != 255).sum())
    assert parts.ece() == pytest.approx(whole.ece(), abs=1e-12)
    assert whole.ece() == pytest.approx(_brute_force_ece(probs.flatten(1), truth.flatten()), abs=1e-9)
    assert 0.05 < whole.ece() < 1  # a random model is badly calibrated: the case is not trivial
    channels_last = CalibrationBins(15)
    channels_last.update(probs.flatten(1).T, truth.flatten(), dim=1)  # pixels x classes
    assert channels_last.ece() == pytest.approx(whole.ece(), abs=1e-12)


def test_a_predicted_class_no_truth_carries_is_wrong():
    # 3 outputs, the last a background class (data.background=class): confident, never right
    probs = torch.tensor([[0.05, 0.9], [0.05, 0.05], [0.9, 0.05]])
    bins = CalibrationBins(15)
    bins.update(probs, torch.tensor([0, 0]))
    assert bins.table()["count"][13] == 2 and bins.ece() == pytest.approx(0.9 - 0.5)  # accuracy 0.5, confidence 0.9


def test_normalized_entropy_is_one_for_uniform_and_zero_for_one_hot():
    uniform = torch.full((16, 4, 5), 1 / 16)
    torch.testing.assert_close(normalized_entropy(uniform), torch.ones(4, 5))
    one_hot = torch.nn.functional.one_hot(torch.randint(0, 16, (4, 5)), 16).permute(2, 0, 1).float()
    torch.testing.assert_close(normalized_entropy(one_hot), torch.zeros(4, 5))
    p = torch.tensor([0.5, 0.25, 0.25])[:, None]  # H = 1.5 bits, log2(3) bits at most
    torch.testing.assert_close(normalized_entropy(p), torch.tensor([1.5 / math.log2(3)]))


@pytest.fixture
def checkpoint(tmp_path):
    """An untrained smoke model's checkpoint: calibration needs probabilities, not a good model."""
    from hydra import compose, initialize_config_dir

    import seg58.config.schema  # noqa: F401 (registers the structured schema)
    from seg58.config import factory
    from seg58.config.schema import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=SMOKE)
    torch.manual_seed(0)
    path = tmp_path / "best.pt"
    torch.save({"model": factory.model(cfg, pretrained=False).state_dict()}, path)
    return path


@pytest.mark.slow
def test_evaluate_logs_ece_and_predict_writes_uncertainty_maps(cli, tmp_path, checkpoint):
    res = cli("evaluate", *SMOKE, f"infer.checkpoint={checkpoint}", "infer.tta=flips")
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads(res.stdout[res.stdout.index("{"):])["metrics"]
    assert 0 <= metrics["eval/val/tta_flips/ece"] <= 1
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("eval").experiment_id])
    assert run.data.metrics["eval/val/tta_flips/ece"] == pytest.approx(metrics["eval/val/tta_flips/ece"])
    assert "eval/reliability_val_tta_flips.png" in {a.path for a in client.list_artifacts(run.info.run_id, "eval")}

    images = tmp_path / "in"
    images.mkdir()
    for name, size in [("a.png", (300, 200)), ("b.jpg", (90, 120))]:
        pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / name)
    common = (*SMOKE, f"infer.checkpoint={checkpoint}", f"infer.input={images}", "infer.tta=flips")
    res = cli("predict", *common, f"infer.output={tmp_path / 'out'}", "infer.uncertainty=true")
    assert res.returncode == 0, res.stderr[-2000:]
    out = tmp_path / "out"
    for stem in ("a", "b"):
        mask = Image.open(out / f"{stem}_mask.png")
        uncertainty = Image.open(out / f"{stem}_uncertainty.png")
        assert uncertainty.mode == "L" and uncertainty.size == mask.size
        assert Image.open(out / f"{stem}_uncertainty_overlay.png").size == mask.size
    values = np.asarray(Image.open(out / "a_uncertainty.png"))
    assert values.shape == (200, 300) and values.max() > values.min()  # a map, not a constant
    res = cli("predict", *common, f"infer.output={tmp_path / 'plain'}")  # off by default
    assert res.returncode == 0 and not list((tmp_path / "plain").glob("*uncertainty*"))


@pytest.mark.parametrize("tta", ["none", "flips"])
def test_the_probabilities_evaluate_scores_are_those_of_the_predicted_labels(tta):
    from seg58.engine.inference import Predictor

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 1))
    predictor = Predictor(model, torch.device("cpu"), 16, amp=False, tta=tta)
    image = np.random.default_rng(0).integers(0, 255, (40, 70, 3), dtype=np.uint8)
    probs = predictor.as_probabilities(predictor.scores_at(image, 64, (50, 90)))
    assert probs.shape == (16, 50, 90) and float(probs.min()) >= 0
    torch.testing.assert_close(probs.sum(0), torch.ones(50, 90))
    assert torch.equal(probs.argmax(0), predictor.predict(image, 64, (50, 90)))
