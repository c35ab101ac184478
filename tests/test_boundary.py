"""The core stays plain PyTorch: importing it pulls in none of the edge frameworks."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import seg58.data

CORE = [f"seg58.{m}" for m in ("models", "hub", "losses", "metrics", "trainer", "checkpoints", "hierarchy",
                                "infer", "evaluator", "callbacks", "choices", "errors", "runtime", "visuals")]
CORE += [f"seg58.data.{m.name}" for m in pkgutil.iter_modules(seg58.data.__path__)]
EDGE = ("hydra", "omegaconf", "mlflow", "submitit")


def edge_frameworks_imported_by(modules: list[str]) -> list[str]:
    """Import `modules` in a fresh interpreter; which edge frameworks came along."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted({{k.split('.')[0] for k in sys.modules}} & set({EDGE!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"NO_ALBUMENTATIONS_UPDATE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_core_modules_import_no_edge_framework():
    assert "seg58.data.loaders" in CORE and "seg58.trainer" in CORE
    assert edge_frameworks_imported_by(CORE) == []


def test_the_probe_sees_an_edge_module():
    """The edge side (config -> objects) does import Hydra: the probe can fail."""
    assert edge_frameworks_imported_by(["seg58.factory"]) == ["hydra", "omegaconf"]
