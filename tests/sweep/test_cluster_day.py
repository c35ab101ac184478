"""A day with a sweep, on this machine's launchers: cells reported as they end, fail-fast,
one job per GPU, `seg58 status` / `seg58 collect`. The SLURM side (detach, cancelling queued
and running jobs) is in test_slurm.py on the real local cluster."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import mlflow_runs
from trained import writable_copy

pytestmark = pytest.mark.slow  # sweeps of real local jobs, end to end

SMOKE = ["experiment=smoke"]


def summary(tmp_path: Path) -> dict:
    (path,) = tmp_path.glob("multirun/*/*/sweep_summary.json")
    return json.loads(path.read_text())


def test_local_parallel_gives_each_job_its_own_gpu_and_reports_cells_as_they_end(cli, tmp_path):
    # two GPU ids on a CPU-only machine: jobs get CUDA_VISIBLE_DEVICES=0 or 1 and train on the CPU
    res = cli("-m", *SMOKE, "launcher=local_parallel", "hydra.launcher.gpus=[0,1]", "trainer.epochs=8,1,1",
              "data.synthetic.n_images=24", timeout=400)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    ended = re.findall(r"\[(\d)/3 ended\]\s+#(\d) COMPLETED", out)
    assert [n for _, n in ended][:1] == ["1"] and {n for _, n in ended} == {"0", "1", "2"}  # #1 before #0
    runs = {r.data.params["trainer.epochs"] + r.data.tags["hydra.job.num"]: r
            for r in mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "smoke")}
    gpu = {k: r.data.tags["cuda.visible_devices"] for k, r in runs.items()}
    assert gpu["80"] == "0" and gpu["11"] == "1" and gpu["12"] == "1"  # #2 waited for #1's GPU
    a, b = runs["11"].info, runs["12"].info
    assert a.end_time <= b.start_time  # never two jobs on one GPU at once
    assert "threads=1 " in (tmp_path / summary(tmp_path)["cells"][0]["output_dir"] / "seg58.log").read_text()


def test_max_failures_cancels_the_rest_and_says_why(cli, tmp_path):
    # the first cell fails at once (no CUDA here); the sweep stops instead of running the others
    res = cli("-m", *SMOKE, "trainer.device=cuda,cpu,cpu", "hydra.sweeper.max_failures=1")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    s = summary(tmp_path)
    assert [c["status"] for c in s["cells"]] == ["FAILED", "CANCELLED", "CANCELLED"]
    assert "max_failures=1 reached" in s["stopped"] and "max_failures=1 reached" in out
    assert all(c["error"].startswith("not started") for c in s["cells"][1:])
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "smoke", include_sweeps=True)
    assert [r.info.status for r in runs] == ["FAILED"]  # the sweep's run; the cancelled cells never started
    # what was cancelled is what a rerun launches
    status = cli("status", str(Path(s["sweep_dir"])))
    assert status.returncode == 0 and "grid: 2 CANCELLED, 1 FAILED" in status.stdout, status.stdout


def test_max_failures_cancels_running_local_jobs_and_closes_their_runs(tmp_path, cache_dir):
    """Both cells train; the test kills #1 (as the OOM killer would); fail-fast cancels #0."""
    import psutil

    env = {**os.environ, "SEG58_CACHE_DIR": str(cache_dir), "PYTHONUNBUFFERED": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    proc = subprocess.Popen([sys.executable, "-m", "seg58", "-m", *SMOKE, "launcher=local_parallel",
                             "trainer.epochs=500", "seed=1,2", "hydra.sweeper.max_failures=1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 400
        while len(list(tmp_path.glob("multirun/*/*/[01]/mlflow_run_id"))) < 2:  # both runs exist
            assert time.time() < deadline and proc.poll() is None, "the two cells never started training"
            time.sleep(0.5)
        cells = summary(tmp_path)["cells"]
        victim = psutil.Process(int(cells[1]["job_id"]))  # a local job's id is its controller's PID
        for p in [*victim.children(recursive=True), victim]:
            p.kill()
        out, _ = proc.communicate(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the sweep and its local jobs, whatever happened
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    cells = summary(tmp_path)["cells"]
    assert [c["status"] for c in cells] == ["CANCELLED", "CANCELLED"], out[-3000:]
    assert cells[0]["error"].startswith("cancelled: hydra.sweeper.max_failures=1") and "max_failures=1 reached" in out
    assert not cells[1].get("cancelled_by_sweep")  # the killed one is the failure that stopped the sweep
    runs = mlflow_runs(env["MLFLOW_TRACKING_URI"], "smoke")
    assert len(runs) == 2 and all(r.info.status in ("KILLED", "FAILED") for r in runs)  # closed, not RUNNING


def test_status_and_collect_of_a_finished_sweep(cli, tmp_path, smoke_sweep):
    sweep_dir = str(writable_copy(smoke_sweep, tmp_path).sweep_dir)  # the shared sweep; collect writes
    status = cli("status", sweep_dir)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert "grid: 2 COMPLETED" in lines
    (row0,) = [ln for ln in lines if ln.startswith("0 ")]
    assert row0.split()[1:4] == ["COMPLETED", "-", "1"]  # state, job (none: ran in-process), epochs
    assert any(ln.startswith("compute: 0 GPU-h, ") and ln.endswith("CPU-h in 2 cell(s)") for ln in lines), lines
    (disk,) = [ln for ln in lines if ln.startswith("disk: ")]
    size, unit = disk.split()[1:3]  # two cells' best.pt, logs, configs
    assert disk.endswith(f" in {sweep_dir}") and float(size) > 0 and unit in ("KB", "MB"), disk
    for _ in range(2):  # idempotent
        done = cli("collect", sweep_dir)
        assert done.returncode == 0 and "all completed" in done.stdout, done.stdout + done.stderr
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "smoke", include_sweeps=True)
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3
    assert cli("status", str(tmp_path)).returncode == 2  # not a sweep folder: one clear error
