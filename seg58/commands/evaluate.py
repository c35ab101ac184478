"""`seg58 evaluate`: a checkpoint (or an MLflow run or Model) + data -> metrics, logged to MLflow."""

from __future__ import annotations

import json
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seg58.config.schema import config_dir
from seg58.config.user_errors import reported_as_user_errors


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> None:
    from seg58.config.config_checks import check_config

    with reported_as_user_errors():
        check_config(cfg)
        result = run_evaluate(cfg, list(HydraConfig.get().overrides.task))
    print(json.dumps(result, indent=2))


def eval_scope(cfg: DictConfig) -> str:
    """`<split>`, or `<split>/tta_<choice>` with infer.tta: metrics `eval/val/miou` and
    `eval/val/tta_d4/miou` of one model sit side by side in the same run, neither overwriting the other."""
    tta = str(cfg.infer.tta)
    return str(cfg.infer.split) if tta == "none" else f"{cfg.infer.split}/tta_{tta}"


def run_evaluate(cfg: DictConfig, explicit: list[str]) -> dict[str, Any]:
    from seg58.config import factory
    from seg58.engine.inference import evaluate
    from seg58.engine.runtime import resolve_device
    from seg58.tracking.run_source import warn_if_data_changed, with_run

    cfg, ckpt = with_run(cfg, explicit)
    warn_if_data_changed(cfg)
    chosen = factory.samples(cfg, cfg.infer.split)
    predictor = factory.predictor(cfg, ckpt, resolve_device(cfg.trainer.device))
    result = evaluate(predictor, chosen, factory.inference_resolution(cfg), cfg.data.preload_max_side,
                      f"eval/{eval_scope(cfg)}", cfg.data.ignore_index, cfg.data.background, cfg.data.hierarchy)
    metrics = result["metrics"]
    if cfg.tracking.enabled:
        from seg58.tracking.eval_log import log_eval

        log_eval(cfg, ckpt, eval_scope(cfg), metrics, result["confusion"], result["reliability"], result["per_image"])
    return {"metrics": metrics, "images": result["images"], "checkpoint": str(ckpt), "mode": str(cfg.infer.mode),
            "tta": str(cfg.infer.tta)}
