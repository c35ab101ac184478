"""Trained once, read by many: a real single training run and a real 2-cell sweep, each made once
per test session (registered in tests/conftest.py's pytest_plugins). On 2 cores a smoke training
costs 10-40 s; the tests that only read a run (evaluate, predict, export, report, the registry,
visuals, status) share these instead of training their own.

They are read-only. A test that writes (evaluate logs into the run, collect rewrites the summary,
a registry test adds versions) works on `writable_copy(...)`: the folder copied to its tmp_path,
with the absolute paths that MLflow's SQLite store and the sweep's files hold rewritten to the copy."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]
SWEEP_ENCODERS = ["tu-test_resnet", "tu-test_convnext"]  # the shared sweep's cells, in order
SWEEP_MODEL = "seg58-test"  # the registered model name of the shared sweep's best run
SERVER_EXPERIMENT = "server-sweep"  # the experiment of the sweep on the session's mlflow server


@dataclass(frozen=True)
class Trained:
    """A folder where `seg58 ...` ran: its SQLite store, the output it printed, its runs."""

    root: Path
    output: str
    run_ids: list[str] = field(default_factory=list)  # the training runs, in cell order
    sweep_dir: Path | None = None  # multirun/<date>/<time> of a sweep
    parent: str | None = None  # a sweep's MLflow parent run

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def run_id(self) -> str:
        (run_id,) = self.run_ids
        return run_id


def _text_files(root: Path):
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".yaml", ".yml", ".txt", ".log", ".md", ".csv", ""} \
                and path.stat().st_size < 2_000_000:
            yield path


def writable_copy(trained: Trained, dest: Path) -> Trained:
    """`trained`'s folder at `dest`, every absolute path in its store and text files pointing there."""
    old, new = str(trained.root), str(dest)
    shutil.copytree(trained.root, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.lock"))
    with sqlite3.connect(dest / "mlflow.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in db.execute(f"PRAGMA table_info('{table}')").fetchall():
                name, kind = column[1], (column[2] or "").upper()
                if "CHAR" in kind or "TEXT" in kind or kind == "":
                    db.execute(f"UPDATE '{table}' SET \"{name}\" = replace(\"{name}\", ?, ?) "
                               f"WHERE \"{name}\" LIKE ?", (old, new, f"%{old}%"))
    for path in _text_files(dest):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if old in text:
            path.write_text(text.replace(old, new))
    from mlflow.tracking._tracking_service import utils as tracking_utils

    tracking_utils._artifact_repos_cache.clear()  # MLflow caches artifact folders by run id: the copy has the same ids
    sweep_dir = dest / trained.sweep_dir.relative_to(trained.root) if trained.sweep_dir else None
    return replace(trained, root=dest, sweep_dir=sweep_dir)


def _once_per_run(tmp_path_factory, name: str, make) -> Trained:
    """make(root) once for the whole test run: with pytest-xdist, the first worker to ask makes it
    (under a file lock) and the others read what it recorded; a plain run just makes it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return make(tmp_path_factory.mktemp(name))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # the same folder for every worker of this run
    record = shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if record.is_file():
            data = json.loads(record.read_text())
            return Trained(Path(data["root"]), data["output"], data["run_ids"],
                           Path(data["sweep_dir"]) if data["sweep_dir"] else None, data["parent"])
        root = shared / name
        root.mkdir()
        trained = make(root)
        record.write_text(json.dumps({"root": str(trained.root), "output": trained.output,
                                      "run_ids": trained.run_ids, "parent": trained.parent,
                                      "sweep_dir": str(trained.sweep_dir) if trained.sweep_dir else None}))
        return trained


def _env(root: Path, cache_dir: Path) -> dict[str, str]:
    return {"SEG58_CACHE_DIR": str(cache_dir), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "PYTHONUNBUFFERED": "1"}


def _training_runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    return [r for r in runs if r.data.tags.get("seg58.sweep") != "true"]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, cache_dir) -> Trained:
    """One smoke training of 2 epochs at lr 3e-3 with every batch, by a real `python -m seg58`
    process (the suite's canary that the installed command trains end to end)."""

    def make(root: Path) -> Trained:
        res = subprocess.run([sys.executable, "-m", "seg58", *SMOKE, "trainer.epochs=2", "optim.lr=3e-3"], cwd=root,
                             env={**os.environ, **_env(root, cache_dir)}, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        (run,) = _training_runs(f"sqlite:///{root / 'mlflow.db'}")
        return Trained(root, res.stdout + res.stderr, [run.info.run_id])

    return _once_per_run(tmp_path_factory, "smoke_run", make)


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory, cache_dir) -> Trained:
    """A 2-cell grid over the encoder (the card's sweep, tiny), whose best run the sweep registers as
    seg58-test@champion; its parent run, summary and leaderboard."""
    from inproc import run_seg58

    def make(root: Path) -> Trained:
        res = run_seg58(["-m", *SMOKE, f"encoder.name={','.join(SWEEP_ENCODERS)}", "trainer.visuals=0",
                         "data.synthetic.n_images=20",  # >= 3 validation images: intervals (report --compare)
                         f"tracking.register={SWEEP_MODEL}"], root, _env(root, cache_dir))
        assert res.returncode == 0, res.stderr[-3000:]
        (summary,) = root.glob("multirun/*/*/sweep_summary.json")
        parent = json.loads(summary.read_text())["mlflow_parent_run_id"]
        runs = sorted(_training_runs(f"sqlite:///{root / 'mlflow.db'}"),
                      key=lambda r: SWEEP_ENCODERS.index(r.data.params["encoder.name"]))
        return Trained(root, res.stdout + res.stderr, [r.info.run_id for r in runs], summary.parent, parent)

    return _once_per_run(tmp_path_factory, "smoke_sweep", make)


@pytest.fixture(scope="session")
def server_sweep(mlflow_server, tmp_path_factory, cache_dir) -> Trained:
    """The same 2-cell grid over the encoder, tracked by the session's `mlflow server` (experiment
    `server-sweep`): for what only a server shows (its UI, runs read back over HTTP)."""
    from inproc import run_seg58

    root = tmp_path_factory.mktemp("server_sweep")
    res = run_seg58(["-m", *SMOKE, f"encoder.name={','.join(SWEEP_ENCODERS)}",
                     f"tracking.experiment_name={SERVER_EXPERIMENT}"],
                    root, {**_env(root, cache_dir), "MLFLOW_TRACKING_URI": mlflow_server})
    assert res.returncode == 0, res.stderr[-3000:]
    (summary,) = root.glob("multirun/*/*/sweep_summary.json")
    return Trained(root, res.stdout + res.stderr, [], summary.parent,
                   json.loads(summary.read_text())["mlflow_parent_run_id"])
