"""Shared fixtures: a per-session synthetic-data cache and a helper to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """Synthetic sets are generated once per test session and shared by every test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def tracking_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def cli(tmp_path, cache_dir):
    """Run `python -m seg58 ...` in tmp_path, like a user would; returns CompletedProcess."""

    def run(*args: str, timeout: float = 300, env: dict[str, str] | None = None):
        full_env = {
            **os.environ,
            "SEG58_CACHE_DIR": str(cache_dir),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, "-m", "seg58", *args],
            cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout,
        )

    return run


def mlflow_runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])
