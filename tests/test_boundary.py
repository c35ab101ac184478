"""The core stays plain PyTorch: importing it pulls in none of the edge frameworks (the runtime
side of the import contracts in pyproject.toml, which lint-imports checks statically)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import seg58.base
import seg58.data
import seg58.engine
import seg58.modeling

CORE_PACKAGES = (seg58.base, seg58.data, seg58.modeling, seg58.engine)
CORE = [f"{p.__name__}.{m.name}" for p in CORE_PACKAGES for m in pkgutil.iter_modules(p.__path__)]
EDGE = ("hydra", "omegaconf", "mlflow", "submitit", "optuna")


def frameworks_imported_by(modules: list[str], frameworks: tuple[str, ...] = EDGE) -> list[str]:
    """Import `modules` in a fresh interpreter; which of `frameworks` came along."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted({{k.split('.')[0] for k in sys.modules}} & set({frameworks!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"NO_ALBUMENTATIONS_UPDATE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_core_modules_import_no_edge_framework():
    assert {"seg58.data.loaders", "seg58.engine.trainer", "seg58.modeling.models", "seg58.base.errors"} <= set(CORE)
    assert frameworks_imported_by(CORE) == []


def test_the_probe_sees_an_edge_module():
    """The edge side (config -> objects) does import Hydra: the probe can fail."""
    assert frameworks_imported_by(["seg58.config.factory"]) == ["hydra", "omegaconf"]


def test_hydra_imports_the_plugin_without_heavy_frameworks():
    """Hydra imports every module of hydra_plugins on every start of every app: seg58's must not
    drag torch, MLflow or Optuna along (the issue's `python -c "import hydra_plugins.seg58_sweeper"`,
    with the plugin's modules imported as Hydra's scan does)."""
    modules = ["hydra_plugins.seg58_sweeper"] + [
        f"hydra_plugins.seg58_sweeper.{m}" for m in ("config", "sweeper", "launchers")]
    assert frameworks_imported_by(modules, ("torch", "mlflow", "optuna", "segmentation_models_pytorch")) == []
