"""Bootstrap intervals of mIoU from per-image confusion matrices (seg58/modeling/intervals.py)."""

import math
import time

import numpy as np
import pytest
import torch

from seg58.modeling.intervals import (
    bootstrap_miou,
    group_mious,
    load_per_image,
    miou_of,
    paired_difference,
    resample_counts,
    save_per_image,
)


def test_miou_of_the_sum_of_two_images_by_hand():
    one = np.array([[3, 0, 1], [0, 2, 0], [0, 0, 0]])  # class 2: predicted once, never in the truth
    two = np.array([[1, 0, 0], [2, 4, 0], [0, 0, 0]])
    # sum: [[4,0,1],[2,6,0],[0,0,0]]; IoU0 = 4/(5+6-4) = 4/7, IoU1 = 6/(8+6-6) = 6/8, class 2 left out
    assert miou_of(one + two) == pytest.approx((4 / 7 + 6 / 8) / 2)
    point, _, _ = bootstrap_miou(np.stack([one, two]))
    assert point == pytest.approx((4 / 7 + 6 / 8) / 2)
    assert math.isnan(miou_of(np.zeros((3, 3))))


def test_identical_images_give_a_zero_width_interval():
    image = np.array([[5, 2], [1, 7]])
    point, lo, hi = bootstrap_miou(np.stack([image] * 6), n_boot=200)
    assert lo == pytest.approx(point) and hi == pytest.approx(point)
    assert point == pytest.approx(miou_of(image))


def _random_images(seed: int, n: int, c: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 50, size=(n, c, c)) + np.eye(c, dtype=int) * rng.integers(20, 200, size=(n, 1, 1))


def test_a_run_against_itself_differs_by_exactly_zero():
    per_image = _random_images(1, 20)
    diff, lo, hi, excludes = paired_difference(per_image, per_image)
    assert (diff, lo, hi, excludes) == (0.0, 0.0, 0.0, False)


def test_better_on_every_image_excludes_zero_and_a_symmetric_case_does_not():
    worse = np.stack([np.array([[8, 2], [3, 7]])] * 10)  # some errors on every image
    better = np.stack([np.array([[10, 0], [0, 10]])] * 10)  # the same pixels, all right
    diff, lo, hi, excludes = paired_difference(worse, better)
    assert diff > 0 and lo > 0 and excludes
    assert paired_difference(better, worse)[3] and paired_difference(better, worse)[2] < 0  # A better: hi < 0
    # half the images favour B, half A, by the same margin: no side wins
    a = np.concatenate([worse[:5], better[:5]])
    b = np.concatenate([better[:5], worse[:5]])
    diff, lo, hi, excludes = paired_difference(a, b)
    assert diff == pytest.approx(0) and lo < 0 < hi and not excludes


def test_percentile_interval_matches_a_brute_force_loop_over_the_same_resamples():
    per_image = _random_images(2, 7)
    counts = resample_counts(7, 300, seed=5)
    draws = np.random.default_rng(5).integers(0, 7, size=(300, 7))  # what resample_counts counted
    assert (counts == np.stack([np.bincount(d, minlength=7) for d in draws])).all()
    mious = [miou_of(per_image[d].sum(0)) for d in draws]
    point, lo, hi = bootstrap_miou(per_image, n_boot=300, seed=5, level=0.9)
    assert point == pytest.approx(miou_of(per_image.sum(0)))
    assert (lo, hi) == pytest.approx(tuple(np.percentile(mious, [5, 95])))
    other = _random_images(3, 7)
    diffs = [miou_of(other[d].sum(0)) - miou_of(per_image[d].sum(0)) for d in draws]
    _, dlo, dhi, _ = paired_difference(per_image, other, n_boot=300, seed=5, level=0.9)
    assert (dlo, dhi) == pytest.approx(tuple(np.percentile(diffs, [5, 95])))


def test_a_thousand_resamples_of_400_images_take_well_under_a_second():
    per_image = _random_images(4, 400, c=16)
    start = time.perf_counter()
    paired_difference(per_image, _random_images(5, 400, c=16), n_boot=1000)
    assert time.perf_counter() - start < 1.0


def test_groups_skip_unknown_and_empty_labels():
    per_image = np.stack([np.array([[1, 1], [0, 2]]), np.array([[2, 0], [0, 2]]), np.eye(2, dtype=int)])
    out = group_mious(per_image, ["Paper", "", "unknown"])
    assert out == {"Paper": pytest.approx(miou_of(per_image[0]))}


def test_saved_matrices_come_back_with_their_ids(tmp_path):
    per_image = _random_images(6, 3)
    save_per_image(tmp_path / "m.npz", ["a", "b", "c"], per_image, scope="val")
    ids, back = load_per_image(tmp_path / "m.npz")
    assert ids == ["a", "b", "c"] and (back == per_image).all() and back.dtype == np.int64


def test_evaluator_per_material_miou_is_each_images_own_miou():
    from types import SimpleNamespace

    from seg58.engine.evaluator import SegmentationEvaluator

    truth = torch.tensor([[[0, 0, 1, 1], [1, 2, 2, 255]], [[3, 3, 3, 0], [0, 0, 4, 4]]])
    pred = torch.tensor([[[0, 1, 1, 1], [1, 2, 0, 0]], [[3, 3, 0, 0], [0, 4, 4, 4]]])
    samples = [SimpleNamespace(id="p1", material="Paper", content="Line art"),
               SimpleNamespace(id="w1", material="Film emulsion", content="")]
    ev = SegmentationEvaluator(per_image=True)
    ev.update(pred, truth, samples=samples)
    plain = SegmentationEvaluator()
    plain.update(pred, truth)
    metrics = ev.metrics("val")
    assert {k: v for k, v in metrics.items() if k in plain.metrics("val")} == plain.metrics("val")  # unchanged
    ids, matrices = ev.per_image_confusion()
    assert ids == ["p1", "w1"] and matrices.shape == (2, 16, 16) and (matrices.sum(0) == ev.confusion.numpy()).all()
    for i in range(2):
        alone = SegmentationEvaluator()
        alone.update(pred[i], truth[i])
        own = alone.metrics("x")["x/miou"]
        assert metrics[f"val/material/{('paper', 'film_emulsion')[i]}/miou"] == pytest.approx(own)
        assert miou_of(matrices[i]) == pytest.approx(own)
    assert metrics["val/content/line_art/miou"] == pytest.approx(metrics["val/material/paper/miou"])
    assert not any(k.startswith("val/content/") and "line_art" not in k for k in metrics)  # "" is no group
    assert metrics["val/miou_ci_low"] <= metrics["val/miou"] <= metrics["val/miou_ci_high"]


def test_copies_of_one_source_are_drawn_together_and_widen_nothing_they_do_not_prove():
    """Three identical copies of a good image and one bad image: drawn by image, the copies look
    like three independent good results; drawn by source there are two sources, and every
    resample is all-good, all-bad or half and half."""
    good, bad = np.diag([50, 50]), np.array([[10, 40], [40, 10]])
    per_image = np.stack([good, good, good, bad])
    groups = ["a", "a", "a", "b"]
    counts = resample_counts(4, 200, 0, groups)
    assert (counts[:, 0] == counts[:, 1]).all() and (counts[:, 1] == counts[:, 2]).all()
    assert set(counts.sum(1) % 1) == {0} and set(np.unique(counts[:, :3].sum(1) // 3 + counts[:, 3])) == {2}
    by_image = bootstrap_miou(per_image, 2000, 0)
    by_source = bootstrap_miou(per_image, 2000, 0, groups=groups)
    assert by_source[0] == by_image[0]
    assert by_source[2] - by_source[1] > by_image[2] - by_image[1]
