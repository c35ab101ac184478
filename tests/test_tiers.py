"""The tiers are what the markers say: a test that uses a trained fixture or a real seg58/mlflow
process is in the slow tier even without its own mark (tests/conftest.py adds it before `-m`
deselects; added after, the fast tier silently took in every end-to-end test)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_test_on_a_trained_fixture_is_left_out_of_the_fast_tier():
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-m", "not slow and not slurm and not ui", "tests/commands/test_cli.py", "tests/core/test_trainer.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300).stdout
    assert "test_single_run_logs_params_metrics_tags_and_artifacts" not in out  # smoke_run, no mark of its own
    assert "test_loss_decreases_on_learnable_data" not in out  # marked slow
    assert "test_epoch_metrics_are_complete_and_sane" in out  # the fast tier is not empty
