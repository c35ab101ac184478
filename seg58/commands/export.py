"""`seg58 export`: a run's (or a checkpoint's) model as ONNX, checked against PyTorch in onnxruntime
(seg58/engine/onnx_export.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seg58.base.classes import CLASS_NAMES, metric_key
from seg58.base.errors import ConfigError
from seg58.config.schema import config_dir
from seg58.config.user_errors import reported_as_user_errors

log = logging.getLogger(__name__)


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> None:
    from seg58.config.config_checks import config_problems

    with reported_as_user_errors():
        problems = [p for p in config_problems(cfg) if not p.startswith("data.root=")]  # no data is read
        if problems:
            raise ConfigError(problems)
        report = run_export(cfg, list(HydraConfig.get().overrides.task), Path(HydraConfig.get().runtime.output_dir))
    print(json.dumps(report, indent=2))
    print(summary_line(report))


def run_export(cfg: Any, explicit: list[str], output_dir: Path) -> dict[str, Any]:
    """`seg58 export infer.run_id=<id> | infer.checkpoint=<best.pt> | infer.model_uri=<uri>`:
    infer.onnx, else <output_dir>/model.onnx, for that run's config (data.img_size, model)."""
    from seg58.config import factory
    from seg58.engine.checkpoints import load_checkpoint, load_weights
    from seg58.engine.onnx_export import export_onnx, require_onnxruntime
    from seg58.tracking.run_source import with_run

    require_onnxruntime()  # missing packages: say so before loading anything
    cfg, ckpt = with_run(cfg, explicit)
    model = factory.model(cfg, pretrained=False)  # as factory.predictor builds it, without the AMP set-up
    load_weights(model, load_checkpoint(ckpt), str(ckpt), f"{cfg.model.arch}/{cfg.encoder.name}")
    names = [metric_key(n) for n in CLASS_NAMES[:cfg.data.num_classes]]
    if str(cfg.data.get("background", "ignore")) == "class":  # the extra output of data.background=class
        names.append("background")
    path = Path(cfg.infer.onnx) if cfg.infer.onnx else output_dir / "model.onnx"
    metadata = {"checkpoint": str(ckpt), "run_id": cfg.infer.run_id or None, "arch": cfg.model.arch,
                "encoder": cfg.encoder.name, "img_size": cfg.data.img_size, "classes": names}
    metadata = {k: v for k, v in metadata.items() if v is not None}
    report = export_onnx(model, path, cfg.data.img_size, factory.size_multiple(cfg), metadata=metadata)
    log.info("wrote %s (%s): max |onnxruntime - PyTorch| = %.3g", path,
             "dynamic H/W" if report["dynamic"] else f"fixed {cfg.data.img_size}px", report["max_abs_diff"])
    return report


def summary_line(report: dict[str, Any]) -> str:
    """The parity figures in one line for the terminal."""
    sizes = ", ".join("x".join(map(str, c["shape"][2:])) + f" (batch {c['shape'][0]}): {c['max_abs_diff']:.3g}"
                      for c in report["checks"])
    kind = "dynamic H/W" if report["dynamic"] else f"fixed size ({report['fixed_size_reason']})"
    verdict = "ok" if report["ok"] else "FAILED"
    return f"{report['onnx']}: {kind}; max |onnxruntime - PyTorch| logits {sizes} -> {verdict}"
