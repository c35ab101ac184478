"""`seg58 export`: ONNX that onnxruntime runs with the same logits as PyTorch, at other sizes when
the encoder allows it, at the training size when it does not; the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import mlflow_runs
from trained import writable_copy

from seg58.base.errors import ExportError
from seg58.engine.onnx_export import export_onnx

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]


def _unet(encoder: str = "tu-test_resnet", **kwargs) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    return smp.Unet(encoder, encoder_weights=None, classes=16, **kwargs).eval()


def _max_diff(path, model: torch.nn.Module, x: torch.Tensor) -> float:
    """onnxruntime vs PyTorch, computed here rather than trusted from the report."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(x).numpy()
    out = session.run(None, {"image": x.numpy()})[0]
    assert out.shape == ref.shape
    return float(np.abs(out - ref).max())


def test_dynamic_export_matches_pytorch_at_the_training_size_and_others(tmp_path):
    model = _unet()
    report = export_onnx(model, tmp_path / "m.onnx", 64, 32, metadata={"arch": "Unet", "classes": ["a", "b"]})
    assert report["dynamic"] and report["ok"] and report["max_abs_diff"] < 1e-3
    assert [c["shape"] for c in report["checks"]] == [[1, 3, 64, 64], [2, 3, 96, 128]]
    assert json.loads((tmp_path / "m.json").read_text()) == report
    for shape in [(1, 3, 64, 64), (1, 3, 160, 96), (3, 3, 32, 224)]:  # any multiple of 32, any batch
        assert _max_diff(tmp_path / "m.onnx", model, torch.randn(*shape)) < 1e-3, shape
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert meta["seg58.size"] == "dynamic" and meta["seg58.stride"] == "32" and meta["seg58.arch"] == "Unet"
    assert json.loads(meta["seg58.classes"]) == ["a", "b"] and json.loads(meta["seg58.mean"])[0] == 0.485


def test_a_fixed_size_encoder_is_exported_at_its_training_size(tmp_path):
    model = _unet("tu-test_coatnet", img_size=64)  # a tiny CoAtNet: like Swin/MaxViT, built for one size
    report = export_onnx(model, tmp_path / "m.onnx", 64, 32)
    assert not report["dynamic"] and "PyTorch refuses 96x128" in report["fixed_size_reason"]
    assert report["ok"] and report["max_abs_diff"] < 1e-3
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 3, 64, 64]
    assert _max_diff(tmp_path / "m.onnx", model, torch.randn(2, 3, 64, 64)) < 1e-3


class FrozenShape(torch.nn.Module):
    """Runs at any size in PyTorch, but reads its size as Python ints, which the tracer freezes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 1)

    def forward(self, x):
        h, w = int(x.shape[2]), int(x.shape[3])
        return self.conv(x).reshape(-1, 16, h * w).reshape(-1, 16, h, w)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the very thing this test is about
def test_a_dynamic_graph_that_is_wrong_elsewhere_falls_back_to_the_fixed_size(tmp_path):
    report = export_onnx(FrozenShape(), tmp_path / "m.onnx", 64, 32)
    assert not report["dynamic"] and "dynamic graph failed in onnxruntime at 96x128" in report["fixed_size_reason"]
    assert report["ok"] and [c["shape"] for c in report["checks"]] == [[1, 3, 64, 64], [2, 3, 64, 64]]


def test_disagreement_beyond_tolerance_is_an_error_with_the_report_written(tmp_path):
    with pytest.raises(ExportError, match="onnxruntime disagrees with PyTorch"):
        export_onnx(_unet(), tmp_path / "m.onnx", 64, 32, atol=-1.0)  # nothing can pass a negative tolerance
    assert json.loads((tmp_path / "m.json").read_text())["ok"] is False


def test_export_command_for_a_checkpoint_and_a_run(cli, tmp_path, smoke_run):
    writable_copy(smoke_run, tmp_path)  # the suite's shared run; export writes into its folder
    (best,) = tmp_path.glob("outputs/*/*/checkpoints/best.pt")
    res = cli("export", *SMOKE, f"infer.checkpoint={best}", f"infer.onnx={tmp_path / 'onnx' / 'smoke.onnx'}")
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout[res.stdout.index("{"):res.stdout.rindex("}") + 1])
    assert report["dynamic"] and report["ok"] and report["max_abs_diff"] < 1e-3
    assert report["checkpoint"] == str(best) and report["encoder"] == "tu-test_resnet" and len(report["classes"]) == 16
    assert "max |onnxruntime - PyTorch| logits" in res.stdout and (tmp_path / "onnx" / "smoke.json").is_file()
    net = _unet()
    net.load_state_dict(torch.load(best, weights_only=True)["model"])
    assert _max_diff(tmp_path / "onnx" / "smoke.onnx", net, torch.randn(1, 3, 96, 64)) < 1e-3

    (run,) = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "smoke")
    res = cli("export", f"infer.run_id={run.info.run_id}")  # its config and best.pt from MLflow
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout[res.stdout.index("{"):res.stdout.rindex("}") + 1])
    assert report["run_id"] == run.info.run_id and report["img_size"] == 64 and report["ok"]
    (written,) = tmp_path.glob("outputs/*/*/model.onnx")  # default: the command's own output folder
    assert written.resolve() == (tmp_path / report["onnx"]).resolve()

    res = cli("export", *SMOKE)
    assert res.returncode != 0 and "infer.checkpoint" in res.stderr and "Traceback" not in res.stderr
