"""A shared `mlflow server` on PostgreSQL, the set-up for many concurrent jobs: a real
local_parallel sweep and independent writer processes log to it at the same time, and not one
metric point is lost. PostgreSQL (the Debian package) is started by the test itself; CI installs it
and sets SEG58_REQUIRE_POSTGRES=1, so there this test runs or fails, never skips."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import PG_SECRET, free_port, mlflow_runs, start_mlflow_server, stop_mlflow_server
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]
EPOCHS = 2
LRS = ["1e-3", "2e-3", "3e-3", "4e-3"]
WRITERS, STEPS, BATCH = 6, 300, 50
SERVER_WORKERS = 2  # several server processes sharing one PostgreSQL database (one per core here)


@pytest.fixture
def postgres(postgres_with_password, monkeypatch):
    """The session's PostgreSQL (fresh databases); the password reaches the server and the writers
    through $PGPASSWORD, which libpq reads."""
    monkeypatch.setenv("PGPASSWORD", PG_SECRET)
    return postgres_with_password


@pytest.fixture
def pg_mlflow_server(postgres, tmp_path, monkeypatch):
    """`mlflow server` with its backend store in a fresh PostgreSQL database; yields its URI."""
    # no background job runner (GenAI evaluation jobs): one process less to start and stop
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    port = free_port()
    log = tmp_path / "mlflow-server.log"
    proc = start_mlflow_server(port, tmp_path / "server", backend_uri=postgres.uri("mlflow"),
                               workers=SERVER_WORKERS, log=log, startup_timeout=120)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_mlflow_server(proc)


# One run per process, created as soon as the process is up; the points are logged once the
# go-file exists: "loss" one request per point (the worst case for the server), "acc" in batches,
# as seg58 logs an epoch. Prints the time span of its logging.
WRITER = textwrap.dedent("""
    import os, sys, time
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    uri, experiment_id, name, go = sys.argv[1:5]
    steps, batch = int(sys.argv[5]), int(sys.argv[6])
    client = MlflowClient(uri)
    run_id = client.create_run(experiment_id, run_name=name).info.run_id
    while not os.path.exists(go):
        time.sleep(0.02)
    t0 = time.time()
    for step in range(steps):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    for first in range(0, steps, batch):
        now = int(time.time() * 1000)
        points = [Metric("acc", s / steps, now, s) for s in range(first, min(first + batch, steps))]
        client.log_batch(run_id, metrics=points)
    client.set_terminated(run_id)
    print("WINDOW", t0, time.time())
""")


def wait_for(predicate, timeout: float, what: str, unless):
    """predicate()'s first true value; None once unless() is true and predicate() still is not."""
    end = time.time() + timeout
    while time.time() < end:
        stop = unless()
        if value := predicate():
            return value
        if stop:
            return None
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def test_postgres_server_takes_a_parallel_sweep_and_concurrent_writers_losing_nothing(
        cli_process, tmp_path, postgres, pg_mlflow_server):
    uri = pg_mlflow_server
    client = MlflowClient(uri)
    writers_exp = client.create_experiment("pg_writers")
    go = tmp_path / "go"

    # 1. the sweep: 4 jobs at once, each a `python -m seg58` process logging to the server
    args = ["-m", "launcher=local_parallel", *SMOKE, f"trainer.epochs={EPOCHS}", "tracking.experiment_name=pg_sweep",
            f"optim.lr={','.join(LRS)}"]
    pool = ThreadPoolExecutor(1)
    t_sweep = time.time()
    # its own process: the sweep runs in a thread meanwhile (an in-process `cli` wants the main thread)
    sweep = pool.submit(cli_process, *args, timeout=400, env={"MLFLOW_TRACKING_URI": uri})
    # 2. the writers: up and waiting meanwhile, let go the moment the sweep's first job has its run
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, uri, writers_exp, f"w{i}", str(go), str(STEPS),
                                 str(BATCH)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(WRITERS)]
    windows = []
    try:
        try:
            started = wait_for(lambda: mlflow_runs(uri, "pg_sweep"), 300, "the sweep's first job run",
                               unless=sweep.done)
        finally:
            go.touch()  # never leave a writer waiting
        assert started, f"the sweep ended without a job run:\n{sweep.result().stderr[-3000:]}"
        for w in writers:
            out, err = w.communicate(timeout=300)
            assert w.returncode == 0, err[-3000:]
            (window,) = [line.split()[1:] for line in out.splitlines() if line.startswith("WINDOW ")]
            windows.append(tuple(map(float, window)))
        res = sweep.result(timeout=400)
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()
        pool.shutdown(wait=True)
    sweep_wall = time.time() - t_sweep
    assert res.returncode == 0, res.stderr[-3000:]

    # 3a. every writer point arrived, none twice: through the server, and in PostgreSQL itself
    runs = mlflow_runs(uri, "pg_writers")
    assert sorted(r.info.run_name for r in runs) == [f"w{i}" for i in range(WRITERS)]
    for r in runs:
        assert r.info.status == "FINISHED"
        for key in ("loss", "acc"):
            steps = sorted(m.step for m in client.get_metric_history(r.info.run_id, key))
            assert steps == list(range(STEPS)), (r.info.run_name, key, len(steps))
    ids = ",".join(f"'{r.info.run_id}'" for r in runs)
    rows = postgres.client("psql", "-d", "mlflow", "-Atc", f"SELECT count(*) FROM metrics WHERE run_uuid IN ({ids})")
    assert rows.returncode == 0, rows.stderr
    writer_points = WRITERS * 2 * STEPS
    assert int(rows.stdout) == writer_points

    # 3b. the sweep: one parent, one FINISHED child per cell, every epoch's metrics there
    everything = mlflow_runs(uri, "pg_sweep", include_sweeps=True)
    (parent,) = [r for r in everything if r.data.tags.get("seg58.sweep") == "true"]
    kids = [r for r in everything if r is not parent]
    assert parent.info.status == "FINISHED"
    assert len(kids) == len(LRS)
    assert all(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in kids)
    assert all(r.info.status == "FINISHED" for r in kids)
    assert sorted(float(r.data.params["optim.lr"]) for r in kids) == [float(x) for x in LRS]
    w_start, w_end = min(s for s, _ in windows), max(e for _, e in windows)
    points = {"training": 0, "system": 0}  # per-epoch and final metrics; system/* samples (timed)
    during = 0
    for r in kids:
        for key in ("train/loss", "val/miou"):
            steps = sorted(m.step for m in client.get_metric_history(r.info.run_id, key))
            assert steps == list(range(EPOCHS)), (r.info.run_name, key, steps)
        for key in r.data.metrics:
            history = client.get_metric_history(r.info.run_id, key)
            if not key.startswith("system/"):  # an epoch's (or the final) value, each exactly once
                steps = [m.step for m in history]
                assert len(set(steps)) == len(steps) and set(steps) <= set(range(EPOCHS)), (key, steps)
            points["system" if key.startswith("system/") else "training"] += len(history)
            during += sum(w_start <= m.timestamp / 1000 <= w_end for m in history)

    # the writers really wrote while the sweep's jobs were running
    k_start = min(r.info.start_time for r in kids) / 1000
    k_end = max(r.info.end_time for r in kids) / 1000
    overlap = min(w_end, k_end) - max(w_start, k_start)
    assert overlap > 0, f"writers {w_start:.1f}..{w_end:.1f}, sweep jobs {k_start:.1f}..{k_end:.1f}"

    w_wall = w_end - w_start
    requests = WRITERS * (STEPS + -(-STEPS // BATCH))
    print(f"\n[postgres] PostgreSQL {postgres.bindir.parent.name}, mlflow server --workers {SERVER_WORKERS}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end\n"
          f"[postgres] sweep: {len(kids)} jobs x {points['training'] // len(kids)} training points ({EPOCHS} epochs) "
          f"= {points['training']} (+ {points['system']} system/* samples) in {len(kids)} child runs + 1 parent; "
          f"wall {sweep_wall:.1f} s launcher to leaderboard, "
          f"job runs {k_end - k_start:.1f} s first start to last end\n"
          f"[postgres] writers: {WRITERS} processes x {2 * STEPS} points = {writer_points} points in {requests} "
          f"requests; wall {w_wall:.1f} s -> {writer_points / w_wall:.0f} points/s, {requests / w_wall:.0f} "
          f"requests/s\n"
          f"[postgres] overlap with the sweep's job runs {overlap:.1f} s, {during} sweep points logged in the "
          f"writers' window; lost 0, duplicated 0")
