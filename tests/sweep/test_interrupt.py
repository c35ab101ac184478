"""Ctrl-C, and one driver per sweep folder (issue #18): the first Ctrl-C stops launching,
interrupts the running cells (in this process, local jobs), records them INTERRUPTED, closes the
runs KILLED, writes the summary and exits 130 with the command that continues the sweep in the same
folder; while a sweep runs, nothing else may drive its folder; a dead driver's folder is taken over."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, mlflow_runs, wait_for
from inproc import run_seg58

TOY = REPO / "tests/apps/toy"


def cells_of(sweep_dir: Path) -> list[dict]:
    """The cells as `seg58 status` sees them (summary + the events after it)."""
    from seg58.sweep.ledger import Ledger

    return Ledger.read(sweep_dir)[0].cells if (sweep_dir / "sweep_summary.json").is_file() else []


@pytest.fixture
def toy(tmp_path):
    """(start(*args) -> Popen, run(*args) -> CompletedProcess) of the toy Hydra app in tmp_path."""
    folder = tmp_path / "toy"
    shutil.copytree(TOY, folder)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "app.py", "-m", *args], cwd=folder, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "app.py", "-m", *args], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=120)

    return folder, start, run


def test_a_live_driver_keeps_its_folder_and_a_dead_ones_folder_is_taken_over(toy, tmp_path):
    folder, start, run = toy
    hold = tmp_path / "hold"
    hold.touch()
    proc = start("x=0,1,2", f"hold_while={hold}", "hydra.sweep.dir=multirun/sweep")
    sweep_dir = folder / "multirun/sweep"
    wait_for(lambda: [c["status"] for c in cells_of(sweep_dir)][:1] == ["RUNNING"], 60, "cell 0 RUNNING")
    status = run_seg58(["status", str(sweep_dir)], tmp_path, {})
    assert "RUNNING" in status.stdout and "PENDING" in status.stdout, status.stdout + status.stderr
    second = run(f"hydra.sweeper.resume={sweep_dir}")  # a second driver of the same folder
    out = second.stdout + second.stderr
    assert second.returncode != 0 and f"is being driven by a live sweep (pid {proc.pid} on " in out, out[-2000:]
    assert "Traceback" not in out
    collect = run_seg58(["collect", str(sweep_dir)], tmp_path, {})
    assert collect.returncode == 2 and f"pid {proc.pid}" in collect.stderr, collect.stdout + collect.stderr
    proc.kill()  # the driver dies without a word (kill -9, a node going down)
    proc.communicate(timeout=30)
    hold.unlink()
    resumed = run(f"hydra.sweeper.resume={sweep_dir}")
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-3000:]
    assert f"its previous driver (pid {proc.pid} on" in out and "takes over" in out
    assert "resuming grid" in out and "3 of its 3 cell(s) did not complete" in out
    assert [c["status"] for c in cells_of(sweep_dir)] == ["COMPLETED"] * 3
    assert [p.name for p in (folder / "multirun").iterdir()] == ["sweep"]  # the same folder, no new one


def test_ctrl_c_in_process_is_tidy_and_the_grid_continues_in_its_folder(toy, tmp_path):
    folder, start, run = toy
    hold = tmp_path / "hold"
    hold.touch()
    proc = start("x=0,1,2", f"hold_while={hold}", "hydra.sweep.dir=multirun/sweep", "y=0")
    sweep_dir = folder / "multirun/sweep"
    wait_for(lambda: [c["status"] for c in cells_of(sweep_dir)][:1] == ["RUNNING"], 60, "cell 0 RUNNING")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    assert "continue it in the same folder: " in out and f"hydra.sweeper.resume={sweep_dir}" in out
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert [c["status"] for c in summary["cells"]] == ["INTERRUPTED", "PENDING", "PENDING"]
    assert "1 running cell(s) stopped, 2 not started" in summary["interrupted"]
    hold.unlink()
    resumed = run(f"hydra.sweeper.resume={sweep_dir}")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert [c["status"] for c in cells_of(sweep_dir)] == ["COMPLETED"] * 3
    assert "interrupted" not in json.loads((sweep_dir / "sweep_summary.json").read_text())


@pytest.mark.slow
def test_ctrl_c_interrupts_local_jobs_and_closes_every_run_killed(tmp_path, cache_dir):
    """seg58's own training in two local jobs side by side: Ctrl-C interrupts both, their MLflow
    runs and the sweep's are KILLED, and nothing of the sweep is left running."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "SEG58_CACHE_DIR": str(cache_dir), "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1"}
    args = ["launcher=local_parallel", "experiment=smoke", "trainer.epochs=200", "trainer.patience=null",
            "seed=1,2", "hydra.sweep.dir=multirun/sweep"]
    proc = subprocess.Popen([sys.executable, "-m", "seg58", "-m", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sweep_dir = tmp_path / "multirun/sweep"
    wait_for(lambda: len(list(sweep_dir.glob("[01]/checkpoints/last.pt"))) == 2, 300, "both jobs training")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out and "hydra.sweeper.resume=" in out
    assert [c["status"] for c in cells_of(sweep_dir)] == ["INTERRUPTED", "INTERRUPTED"]
    runs = mlflow_runs(uri, "smoke", include_sweeps=True)
    assert sorted(r.info.status for r in runs) == ["KILLED"] * 3, [(r.info.run_name, r.info.status) for r in runs]
    assert not any(p.is_alive() for p in _children_of(proc.pid))
    (parent,) = [r for r in runs if r.data.tags.get("seg58.sweep") == "true"]
    assert "interrupted (Ctrl-C)" in parent.data.tags["stop_reason"]
    status = run_seg58(["status", str(sweep_dir)], tmp_path, env)
    assert "2 INTERRUPTED" in status.stdout, status.stdout + status.stderr


def _children_of(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def test_ctrl_c_fails_a_searchs_running_trial_and_the_search_resumes(toy, tmp_path):
    folder, start, run = toy
    hold = tmp_path / "hold"
    hold.touch()
    proc = start("hydra.sweeper.n_trials=3", "x=interval(0,2)", f"hold_while={hold}", "hydra.sweep.dir=multirun/s")
    sweep_dir = folder / "multirun/s"
    wait_for(lambda: [c["status"] for c in cells_of(sweep_dir)] == ["RUNNING"], 60, "trial 0 RUNNING")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in out, out[-3000:]
    from seg58.sweep.study import StudySpec

    study = StudySpec(**json.loads((sweep_dir / "search.json").read_text())["study"]).load()
    assert [t.state.name for t in study.trials] == ["FAIL", "WAITING"]  # retried on resume
    assert [c["status"] for c in cells_of(sweep_dir)] == ["INTERRUPTED"]
    hold.unlink()
    resumed = run(f"hydra.sweeper.resume={sweep_dir}")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    study = StudySpec(**json.loads((sweep_dir / "search.json").read_text())["study"]).load()
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE"] * 3 + ["FAIL"]


def test_an_interrupted_sweep_exits_130_at_the_plugins_edge_only(monkeypatch):
    """seg58.sweep raises SweepInterrupted (no sys.exit below the edge); the Hydra plugin's sweeper,
    which every app goes through, turns it into exit 130."""
    from hydra_plugins.seg58_sweeper.sweeper import Seg58Sweeper
    from seg58.sweep.interrupt import INTERRUPTED_EXIT, SweepInterrupted
    from seg58.sweep.sweeper import GridOrSearchSweeper

    def interrupted(self, arguments):
        raise KeyboardInterrupt  # Ctrl-C before any cell started

    monkeypatch.setattr(GridOrSearchSweeper, "_sweep", interrupted)
    monkeypatch.setattr("seg58.sweep.sweeper.load_job_credentials", lambda own: None)
    with pytest.raises(SweepInterrupted):
        GridOrSearchSweeper().sweep([])
    with pytest.raises(SystemExit) as exit_:
        Seg58Sweeper().sweep([])
    assert exit_.value.code == INTERRUPTED_EXIT
