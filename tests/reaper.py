"""Nothing a test starts outlives it, nor the test run (registered in tests/conftest.py's
pytest_plugins).

Local sweep jobs (submitit) ignore SIGTERM by design, so a sweep left running by a failed or
interrupted test would go on training for minutes at full CPU. Three guards:
- each test's teardown kills what the test started in this process group and left running
  (session services, the MLflow server and PostgreSQL, run in sessions of their own);
- SIGTERM to pytest (e.g. from `timeout`) becomes a KeyboardInterrupt, so the teardowns run;
- a watchdog in its own session records this process's descendants and, if pytest dies without
  tearing down (SIGKILL, OOM), kills the ones it recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

WATCHDOG = textwrap.dedent("""
    import os, signal, sys, time
    import psutil
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a group-wide SIGTERM must not stop the guard
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runner = psutil.Process(int(sys.argv[1]))
    seen = {}
    while True:
        try:
            if runner.status() == psutil.STATUS_ZOMBIE:
                break
            for child in runner.children(recursive=True):
                if child.pid != os.getpid():  # the guard is the runner's child too
                    seen[child.pid] = child.create_time()
        except psutil.NoSuchProcess:
            break
        except psutil.Error:
            pass
        time.sleep(0.5)
    for pid, created in seen.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created:
                proc.kill()
        except psutil.Error:
            pass
""")


def _kill_tree(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)


def _terminated(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminated)
    config._seg58_watchdog = subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(os.getpid())], start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pytest_unconfigure(config):
    watchdog = getattr(config, "_seg58_watchdog", None)
    if watchdog is not None:
        watchdog.kill()
        watchdog.wait(timeout=10)


@pytest.fixture(autouse=True)
def no_process_left_behind():
    """Kill what the test started in pytest's own process group and left running."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    group = os.getpgrp()
    left = []
    for proc in me.children(recursive=True):
        try:
            if proc.pid not in before and os.getpgid(proc.pid) == group and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except (psutil.Error, ProcessLookupError):
            pass
    _kill_tree(left)
