import math

import pytest
import torch

from seg58.modeling.metrics import ConfusionMatrix


def test_iou_per_class_and_mean_exclude_absent_classes():
    cm = ConfusionMatrix(num_classes=4, ignore_index=255)
    target = torch.tensor([[0, 0, 1, 1], [1, 255, 255, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [3, 2, 0, 0]])
    cm.update(pred, target)
    out = cm.compute()
    # truth 0 at (0,0),(0,1),(1,3); pred there 0,1,0 -> tp=2, fn=1; pred 0 elsewhere: none -> IoU 2/3
    assert math.isclose(out["iou"][0], 2 / 3)
    # truth 1 at (0,2),(0,3),(1,0); pred 1,1,3 -> tp=2, fn=1; fp for 1 at (0,1) -> IoU 2/4
    assert math.isclose(out["iou"][1], 0.5)
    # class 2 never in the truth (its only prediction is on an ignored pixel) -> undefined
    assert math.isnan(out["iou"][2])
    # class 3 absent from the truth but predicted once -> also undefined, excluded from mIoU
    assert math.isnan(out["iou"][3])
    assert math.isclose(out["miou"], (2 / 3 + 0.5) / 2)
    assert math.isclose(out["pixel_acc"], 4 / 6)  # ignored pixels are not counted


def test_accumulates_over_updates():
    cm = ConfusionMatrix(num_classes=2)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    cm.update(torch.tensor([1, 1]), torch.tensor([0, 1]))
    assert cm.matrix.tolist() == [[1, 1], [0, 2]]
    assert math.isclose(cm.compute()["miou"], (0.5 + 2 / 3) / 2)


def test_evaluator_scores_levels_from_the_fine_prediction_and_heads_separately():
    from seg58.engine.evaluator import SegmentationEvaluator

    # truth: Peel (structural), Dust (surface), Writing (additions), ignore
    truth = torch.tensor([[2, 3, 8, 255]])
    pred = torch.tensor([[1, 3, 3, 0]])  # Material loss: wrong class, right coarse group
    ev = SegmentationEvaluator()
    ev.update(pred, truth, {"binary": torch.tensor([[1, 1, 0, 0]])})
    m = ev.metrics("val")
    assert m["val/iou/peel"] == 0.0 and m["val/iou/dust"] == 0.5
    assert m["val/coarse/iou/structural"] == 1.0  # 2 -> 1 both map to structural
    assert m["val/coarse/iou/surface"] == 0.5 and m["val/coarse/iou/additions"] == 0.0
    assert m["val/binary/miou"] == 1.0  # every fine prediction is some damage, as is the truth
    assert m["val/heads/binary/iou/damage"] == 2 / 3  # the head called Writing clean
    assert "val/iou/clean" not in m  # absent from the ground truth: no IoU, not 0
    assert ev.confusion.sum() == 3  # the ignored pixel is not counted


def test_leaderboard_pools_runs_that_differ_only_by_seed():
    from seg58.tracking.leaderboard import seed_groups

    rows = [{"overrides": o, "status": s, "best_val_miou": v} for o, s, v in [
        ("lr=1 seed=1", "FINISHED", 0.5), ("lr=1 seed=2", "FINISHED", 0.7), ("lr=2 seed=1", "FINISHED", 0.4),
        ("lr=2 seed=2", "FAILED", float("nan")), ("lr=3 seed=1", "FINISHED", 0.9)]]
    groups = seed_groups(rows)
    assert [(g["overrides"], g["n"]) for g in groups] == [("lr=3", 1), ("lr=1", 2), ("lr=2", 1)]
    assert groups[1]["mean"] == pytest.approx(0.6) and groups[1]["std"] == pytest.approx(0.1414, abs=1e-4)
    assert seed_groups(rows[2:]) == []  # no configuration with two seeds: nothing to pool


def _from_matrix(matrix: list[list[int]]) -> ConfusionMatrix:
    """A ConfusionMatrix filled through update() with label pairs that make `matrix`."""
    pairs = [(t, p) for t, row in enumerate(matrix) for p, n in enumerate(row) for _ in range(n)]
    cm = ConfusionMatrix(num_classes=len(matrix))
    cm.update(torch.tensor([p for _, p in pairs]), torch.tensor([t for t, _ in pairs]))
    assert cm.matrix.tolist() == matrix
    return cm


def test_precision_recall_f1_by_hand():
    out = _from_matrix([  # rows: truth, columns: prediction
        [6, 2, 0, 0, 0],  # class 0: 8 true pixels, 6 found; 9 predicted
        [1, 3, 0, 1, 0],  # class 1: 5 true, 3 found; 5 predicted
        [0, 0, 0, 0, 0],  # class 2: absent, never predicted
        [0, 0, 0, 0, 0],  # class 3: absent, predicted once (a false positive of class 1's)
        [2, 0, 0, 0, 0],  # class 4: present (2 px), never predicted
    ]).compute()
    assert out["precision"][:2] == pytest.approx([6 / 9, 3 / 5]) and out["recall"][:2] == pytest.approx([6 / 8, 3 / 5])
    assert out["f1"][0] == pytest.approx(2 * (6 / 9) * (6 / 8) / (6 / 9 + 6 / 8))  # harmonic mean = 12/17
    assert out["f1"][:2] == pytest.approx([12 / 17, 3 / 5])
    assert (out["precision"][4], out["recall"][4], out["f1"][4], out["iou"][4]) == (0.0, 0.0, 0.0, 0.0)
    for kind in ("iou", "precision", "recall", "f1"):  # absent from the truth: undefined, as IoU
        assert math.isnan(out[kind][2]) and math.isnan(out[kind][3]), kind
    assert out["mprecision"] == pytest.approx((6 / 9 + 3 / 5 + 0) / 3)
    assert out["mrecall"] == pytest.approx((6 / 8 + 3 / 5 + 0) / 3)
    assert out["mf1"] == pytest.approx((12 / 17 + 3 / 5 + 0) / 3)
    assert out["miou"] == pytest.approx((6 / 11 + 3 / 7 + 0) / 3)  # present classes only
    assert out["miou_all"] == pytest.approx((6 / 11 + 3 / 7) / 5)  # absent ones count as IoU 0
    assert math.isnan(ConfusionMatrix(3).compute()["miou_all"])  # nothing scored: no number


def test_evaluator_logs_precision_recall_f1_only_when_detailed():
    from seg58.engine.evaluator import SegmentationEvaluator

    truth = torch.tensor([[0, 0, 0, 3, 3, 255]])  # Clean x3, Dust x2
    pred = torch.tensor([[0, 0, 3, 3, 1, 7]])
    ev = SegmentationEvaluator()
    ev.update(pred, truth)
    brief, full = ev.metrics("val"), ev.metrics("eval/val", detailed=True)
    assert not any("precision" in k or "recall" in k or "/f1" in k for k in brief)  # validation: no flood
    assert brief["val/miou_all"] == pytest.approx((2 / 3 + 1 / 3) / 16)  # clean 2/(3+2-2), dust 1/(2+2-1)
    assert full["eval/val/precision/clean"] == 1.0 and full["eval/val/recall/clean"] == pytest.approx(2 / 3)
    assert full["eval/val/precision/dust"] == 0.5 and full["eval/val/f1/dust"] == 0.5
    assert "eval/val/precision/material_loss" not in full  # predicted, but absent from the truth
    assert full["eval/val/mf1"] == pytest.approx((0.8 + 0.5) / 2)
    assert full["eval/val/binary/recall/damage"] == 1.0  # Dust taken for Material loss: still damage
    assert full["eval/val/binary/precision/damage"] == pytest.approx(2 / 3)
    assert full["eval/val/binary/miou_all"] == pytest.approx((2 / 3 + 2 / 3) / 2)  # clean 2/(3+2-2), damage 2/(2+3-2)
    with_background = SegmentationEvaluator(background="class")  # 17 columns, still 16 scored classes
    with_background.update(pred, truth)
    assert with_background.metrics("val")["val/miou_all"] == pytest.approx(brief["val/miou_all"])
