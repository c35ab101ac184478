"""A model as ONNX, checked against PyTorch in onnxruntime (`seg58 export` is its command).

The graph maps an N x 3 x H x W float32 image, normalised as in training (RGB / 255, ImageNet mean
and std: `seg58.engine.inference.to_tensor`), to N x C x H x W logits of the fine classes (a hierarchical
model's coarse/binary heads are left out). H and W are dynamic (multiples of the architecture's
stride, `seg58.modeling.models.input_stride`: the graph does not check it) unless the model only runs at
its training size (timm's CoAtNet built for data.img_size): then the graph is fixed at
data.img_size x data.img_size. The batch axis is always dynamic.

Exported with torch.onnx's TorchScript tracer (`dynamo=False`). Measured with torch 2.14 here:
the default torch.export-based exporter needs the extra `onnxscript` package, takes 5-10x longer
(47 s vs 10 s for Unet/ResNet-50) and failed on ConvNeXt with dynamic H/W, while the tracer
exported every encoder of conf/encoder/ with the same parity. torch deprecates the tracer: if a
later torch drops it, this is the one call to change.

Plain PyTorch + onnx/onnxruntime (the `export` extra).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seg58.base.errors import ExportError
from seg58.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from seg58.modeling.hierarchy import fine_logits

log = logging.getLogger(__name__)

OPSET = 17
INPUT, OUTPUT = "image", "logits"


class FineLogits(nn.Module):
    """The fine-class logits of any seg58 model as one tensor (ONNX wants tensors, not dicts)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fine_logits(self.model(x))


def require_onnxruntime() -> Any:
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ExportError(f"seg58 export needs onnx and onnxruntime: pip install 'seg58[export]' ({e})") from None
    return onnx, onnxruntime


def refused_size(model: nn.Module, h: int, w: int) -> str | None:
    """Why PyTorch refuses an h x w input (a fixed-size encoder), or None if it runs."""
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, h, w))
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return None


def _export(net: nn.Module, sample: torch.Tensor, path: Path, dynamic: bool) -> None:
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {0: "batch"}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        torch.onnx.export(net, (sample,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: axes, OUTPUT: axes})


def compare(session: Any, net: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """onnxruntime vs PyTorch (fp32) logits on one input: max |difference|, the logits' own
    scale, and the share of pixels whose predicted class agrees."""
    with torch.no_grad():
        ref = net(x).float().numpy()
    out = session.run([OUTPUT], {INPUT: x.numpy()})[0]
    if out.shape != ref.shape:
        raise ValueError(f"onnxruntime returned shape {out.shape}, PyTorch {ref.shape}")
    return {"shape": list(x.shape), "max_abs_diff": float(np.abs(out - ref).max()),
            "max_abs_logit": float(np.abs(ref).max()),
            "argmax_agreement": float((out.argmax(1) == ref.argmax(1)).mean())}


def _within(check: dict[str, Any], atol: float, rtol: float) -> bool:
    return check["max_abs_diff"] <= atol + rtol * check["max_abs_logit"]  # False for NaN


def _second_check(session: Any, net: nn.Module, x: torch.Tensor, checks: list[dict[str, Any]],
                  atol: float, rtol: float) -> str | None:
    """Append the check at the second input; what went wrong, or None."""
    try:
        checks.append(compare(session, net, x))
    except Exception as e:  # onnxruntime refusing the shape: a trace that froze it
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return None if _within(checks[-1], atol, rtol) else f"max abs diff {checks[-1]['max_abs_diff']:.3g}"


def export_onnx(model: nn.Module, path: str | Path, size: int, stride: int, *, dynamic: bool | None = None,
                metadata: dict[str, Any] | None = None, atol: float = 1e-3, rtol: float = 1e-4,
                seed: int = 0) -> dict[str, Any]:
    """Write `path` (+ `<path stem>.json`, the returned report) and check it in onnxruntime.

    `size`: the training size, the sample input's side. `dynamic`: None decides by trying a
    second, non-square size (size + stride x size + 2 stride) in PyTorch. A dynamic graph is
    checked at that second size too (batch 2); if onnxruntime fails or disagrees there (a trace
    that froze a shape), the model is exported again at the fixed size. Raises ExportError if
    the logits differ by more than atol + rtol * max|logit| (the report is written first)."""
    onnx, ort = require_onnxruntime()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = FineLogits(model).cpu().float().eval()
    other = (size + stride, size + 2 * stride)
    reason = None
    if dynamic is None:
        refused = refused_size(net, *other)
        dynamic = refused is None
        reason = None if dynamic else f"PyTorch refuses {other[0]}x{other[1]}: {refused}"
    elif not dynamic:
        reason = "asked for a fixed size"
    gen = torch.Generator().manual_seed(seed)
    sample = torch.randn(1, 3, size, size, generator=gen)
    second = torch.randn(2, 3, *(other if dynamic else (size, size)), generator=gen)

    def export_and_check(dynamic: bool) -> tuple[Any, list[dict[str, Any]]]:
        _export(net, sample, path, dynamic)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session, [compare(session, net, sample)]

    session, checks = export_and_check(dynamic)
    failure = _second_check(session, net, second, checks, atol, rtol)
    if failure and dynamic:
        log.warning("the dynamic ONNX graph is wrong at %dx%d (%s): exporting at the fixed size %d",
                    *other, failure, size)
        reason = f"the dynamic graph failed in onnxruntime at {other[0]}x{other[1]} ({failure})"
        dynamic = False
        session, checks = export_and_check(False)
        failure = _second_check(session, net, second[..., :size, :size].contiguous(), checks, atol, rtol)

    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    meta = {"seg58.input": "N x 3 x H x W float32: RGB / 255, minus mean, divided by std (ImageNet)",
            "seg58.mean": json.dumps(list(IMAGENET_MEAN)), "seg58.std": json.dumps(list(IMAGENET_STD)),
            "seg58.size": "dynamic" if dynamic else f"{size}x{size}",
            "seg58.stride": str(stride), **{f"seg58.{k}": v if isinstance(v, str) else json.dumps(v)
                                            for k, v in (metadata or {}).items()}}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))

    worst = max(c["max_abs_diff"] for c in checks)
    report = {
        "onnx": str(path), "dynamic": dynamic, "fixed_size_reason": reason,
        "input": {"name": INPUT, "layout": "NCHW float32", "height": "dynamic" if dynamic else size,
                  "width": "dynamic" if dynamic else size, "multiple_of": stride,
                  "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "output": {"name": OUTPUT, "layout": "NCHW float32 logits"},
        "max_abs_diff": worst, "tolerance": {"atol": atol, "rtol": rtol},
        "ok": failure is None and all(_within(c, atol, rtol) for c in checks), "failure": failure, "checks": checks,
        "exporter": f"torch.onnx.export(dynamo=False), opset {OPSET}",
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
        **(metadata or {}),
    }
    path.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    if not report["ok"]:
        raise ExportError(f"{path}: onnxruntime disagrees with PyTorch ({failure or f'max abs diff {worst:.3g}'}; "
                          f"tolerance {atol} + {rtol} x max |logit|); see {path.with_suffix('.json')}")
    return report
