"""Every encoder of conf/encoder/ runs at sizes other than the one it trained at: evaluate's and
predict's whole-image and sliding-window passes, TTA (whose transposes swap height and width), the
MLflow Model (the same predictor), and ONNX export (checked in onnxruntime at another size where the
graph is dynamic). Untrained models at 64 px, in this process: the shapes are the point, not the numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make

from seg58.config import factory
from seg58.tracking.model import predict_masks

pytestmark = pytest.mark.slow  # builds and exports every encoder of conf/encoder/ (ResNet-50, Swin-T, ...)
ENCODERS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "conf" / "encoder").glob("*.yaml"))
IMAGE = np.random.default_rng(0).integers(0, 256, (97, 150, 3), dtype=np.uint8)  # H x W: no multiple of 32


@pytest.fixture(scope="module", params=ENCODERS)
def trained_at_64(request, tmp_path_factory):
    cfg = make(f"encoder={request.param}", "data.img_size=64", "encoder.weights=null")
    torch.manual_seed(0)
    checkpoint = tmp_path_factory.mktemp(request.param) / "best.pt"
    torch.save({"model": factory.model(cfg, pretrained=False).state_dict()}, checkpoint)
    return cfg, checkpoint


# whole image at 96 px: 96 x 62, padded to 96 x 64 (not the trained 64 x 64); TTA's transposes: 64 x 96;
# the sliding window over a 160 px image
@pytest.mark.parametrize("overrides", [["infer.resolution=96"], ["infer.resolution=96", "infer.tta=d4"],
                                       ["infer.resolution=160", "infer.mode=slide"]],
                         ids=["whole-96", "tta-d4-96", "slide-160"])
def test_an_encoder_predicts_at_sizes_it_did_not_train_at(trained_at_64, overrides):
    cfg, checkpoint = trained_at_64
    for override in overrides:
        key, value = override.split("=")
        cfg = cfg.copy()
        cfg.infer[key.split(".")[1]] = int(value) if value.isdigit() else float(value) if "." in value else value
    predictor = factory.predictor(cfg, checkpoint, torch.device("cpu"))
    mask = predictor.predict(IMAGE, factory.inference_resolution(cfg), IMAGE.shape[:2])
    assert tuple(mask.shape) == IMAGE.shape[:2] and int(mask.max()) < cfg.data.num_classes
    batch = predict_masks(predictor, np.stack([IMAGE, IMAGE[::-1]]), factory.inference_resolution(cfg), None)
    assert batch.shape == (2, *IMAGE.shape[:2])  # what the MLflow Model's predict returns


def test_an_encoder_exports_to_onnx_and_matches_pytorch(trained_at_64, tmp_path):
    from seg58.engine.checkpoints import load_checkpoint, load_weights
    from seg58.engine.onnx_export import export_onnx

    cfg, checkpoint = trained_at_64
    model = factory.model(cfg, pretrained=False)
    load_weights(model, load_checkpoint(checkpoint), str(checkpoint), cfg.encoder.name)
    report = export_onnx(model, tmp_path / "m.onnx", 64, factory.size_multiple(cfg))
    assert report["ok"], report
    sizes = {tuple(c["shape"][2:]) for c in report["checks"]}
    # dynamic: checked at a size it was not exported at; fixed: only where PyTorch itself refuses others
    assert len(sizes) == 2 if report["dynamic"] else "PyTorch refuses" in report["fixed_size_reason"], report


def test_the_input_multiple_covers_windows_of_the_built_size():
    from seg58.modeling.models import input_multiple

    assert input_multiple("Unet", "tu-swin_tiny_patch4_window7_224", {"img_size": 128}) == 32
    assert input_multiple("Unet", "tu-maxvit_tiny_tf_224", {"img_size": 128}) == 128
    assert input_multiple("DeepLabV3Plus", "resnet50", None) == 16
