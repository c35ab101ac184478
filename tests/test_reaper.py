"""A test run stopped from outside leaves nothing running (tests/reaper.py): a nested pytest whose
test starts a child that ignores SIGTERM, as local sweep jobs do, is stopped with SIGTERM (what
`timeout` sends) or SIGKILL; the child must be gone soon after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from conftest import wait_for

TESTS = Path(__file__).resolve().parent
STUBBORN = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    from pathlib import Path

    def test_starts_a_job_that_ignores_sigterm(tmp_path):
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        Path(os.environ["PID_FILE"]).write_text(str(child.pid))
        time.sleep(600)

    def test_leaves_a_job_running(tmp_path):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        Path(os.environ["PID_FILE"]).write_text(str(child.pid))
""")


def nested_pytest(tmp_path: Path, test: str) -> tuple[subprocess.Popen, int]:
    (tmp_path / "test_stubborn.py").write_text(STUBBORN)
    pid_file = tmp_path / "pid"
    env = {**os.environ, "PYTHONPATH": str(TESTS), "PID_FILE": str(pid_file)}
    runner = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "reaper", "-p", "no:cacheprovider",
                               f"test_stubborn.py::{test}", "--rootdir", str(tmp_path)],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    child = int(wait_for(lambda: pid_file.is_file() and pid_file.read_text(), 60, "the nested test's child"))
    return runner, child


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_stopped_test_run_leaves_no_job_running(tmp_path, sig):
    runner, child = nested_pytest(tmp_path, "test_starts_a_job_that_ignores_sigterm")
    time.sleep(1.5)  # the guard looks for the runner's descendants every 0.5 s (a job lives longer)
    try:
        runner.send_signal(sig)
        runner.wait(timeout=60)
        wait_for(lambda: gone(child), 30, f"job {child} to be killed after the runner got {sig.name}")
    finally:
        if not gone(child):
            os.kill(child, signal.SIGKILL)


def test_a_finished_test_leaves_no_job_running(tmp_path):
    runner, child = nested_pytest(tmp_path, "test_leaves_a_job_running")
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0, out.decode()[-2000:]
    assert gone(child)
