"""Running the Hydra apps of tests/apps/ (apps that are not seg58 and use its sweeper) as a user
would: a real process in a copy of the app's folder. A pytest plugin of tests/conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parent / "apps"


@pytest.fixture
def app(tmp_path):
    """Run a copy of tests/apps/<name>/<script> with -m in tmp_path; (CompletedProcess, summary of
    the newest sweep). `env` adds to the process's environment (e.g. PYTHONPATH)."""

    def run(name: str, script: str, *args: str, env: dict[str, str] | None = None,
            multirun: bool = True) -> tuple[subprocess.CompletedProcess, dict]:
        folder = tmp_path / name
        if not folder.exists():
            shutil.copytree(APPS / name, folder)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1", **(env or {})}
        full_env.pop("SEG58_STUDY", None)
        out = subprocess.run([sys.executable, script, *(["-m"] if multirun else []), *args], cwd=folder,
                             env=full_env, capture_output=True, text=True, timeout=300)
        summaries = sorted((folder / "multirun").rglob("sweep_summary.json"), key=lambda p: p.stat().st_mtime)
        return out, json.loads(summaries[-1].read_text()) if summaries else {}

    return run


def statuses(summary: dict) -> list[str]:
    return [c["status"] for c in sorted(summary["cells"], key=lambda c: c["num"])]
