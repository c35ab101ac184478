"""The layers as a check: lint-imports keeps every contract of pyproject.toml on this tree, and
breaks on a copy of the tree with one deliberately wrong import (so the check can fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the tree at `root` shadows the installed one
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for part in ("seg58", "hydra_plugins"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_every_import_contract_is_kept():
    out = lint_imports(REPO)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    # MLflow in the training loop (the example of docs/architecture.md)
    ("seg58/engine/trainer.py", "import mlflow", "the core (base, data, modeling, engine) knows nothing"),
    # the engine (core) reaching up into tracking: MLflow in the training loop
    ("seg58/engine/trainer.py", "from seg58.tracking import store", "layers point down"),
    # a function-local import that closes a cycle counts as much as a module-level one
    ("seg58/engine/checkpoints.py", "def _peek():\n    from seg58.engine import trainer\n    return trainer\n",
     "no import cycles"),
    # the generic sweeper importing the segmentation side
    ("seg58/sweep/pool.py", "def _peek():\n    from seg58.config import factory\n    return factory\n",
     "the sweep layer is generic"),
])
def test_a_wrong_import_breaks_its_contract(tmp_path, module, line, contract):
    root = copy_tree(tmp_path)
    with open(root / module, "a") as f:
        f.write(f"\n\n{line}\n")
    out = lint_imports(root)
    assert out.returncode != 0
    broken = out.stdout[out.stdout.index("Broken contracts"):]
    assert contract in broken, out.stdout[-3000:]


def test_the_hydra_plugin_is_thin():
    """Only what Hydra must discover lives in hydra_plugins/ (the work is seg58.sweep's)."""
    lines = sum(len(p.read_text().splitlines()) for p in (REPO / "hydra_plugins").rglob("*.py"))
    assert lines < 250, lines


def test_ruff_lints_every_python_file_of_the_repository():
    """An exclude pattern that is not anchored to the top (`data` rather than `/data`) would also skip
    seg58/data/; every tracked .py file must be one ruff checks."""
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True)
    shown = subprocess.run([sys.executable, "-m", "ruff", "check", "--show-files", "."], cwd=REPO,
                           capture_output=True, text=True, check=True)
    linted = {Path(line).resolve() for line in shown.stdout.splitlines() if line.endswith(".py")}
    skipped = [name for name in tracked.stdout.split() if (REPO / name).resolve() not in linted]
    assert skipped == [], skipped
