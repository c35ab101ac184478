"""SLURM jobs authenticate to a tracking server with users (issue #21) from the environment of the
command that submitted them, yet the password is in no file of the sweep (job scripts, submitit
pickles, logs, .hydra/) and nowhere SLURM keeps the job: slurmctld's state, the accounting
database (`sacct --env-vars` prints the environment it stored), its logs. seg58 hands it to the
jobs in a file of the user's (mode 600, outside the sweep folder), removed when the sweep ends.
The server: `mlflow server --app-name basic-auth` on a PostgreSQL that checks passwords."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_fixtures import ADMIN, ALICE, server_runs
from conftest import PG_SECRET
from test_slurm import SMOKE, ended_states, sacct_states, slurm_cmd, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]  # pytest-xdist: one worker, one cluster

SECRETS = (ALICE[1], ADMIN[1], PG_SECRET)


def files_holding(root: Path, secrets: tuple[str, ...]) -> list[str]:
    return [f"{p} ({s})" for p in root.rglob("*") if p.is_file() for s in secrets if s.encode() in p.read_bytes()]


# An attached grid adds nothing here: the attached search writes the credentials file the same way, and
# the detached grid's cells get it through a driver job as well.
@pytest.mark.parametrize("mode", ["detached", "search"])
def test_slurm_jobs_authenticate_without_the_password_in_any_file_or_environment_dump(
        slurm, auth_server, postgres_with_password, slurm_conf, tmp_path, mode):
    """A detached grid of two seeds; an attached search of two trials whose study is on the
    password-checking PostgreSQL, the password in its URI (moved out of it before Hydra), so that
    each trial on its SLURM node needs two passwords: the tracking server's and the study's."""
    env, run, _ = slurm
    uri, experiment = auth_server
    detach = mode == "detached"
    credentials = tmp_path / "home" / "credentials"
    env.update(MLFLOW_TRACKING_URI=uri, MLFLOW_TRACKING_USERNAME=ALICE[0], MLFLOW_TRACKING_PASSWORD=ALICE[1],
               SEG58_CREDENTIALS_DIR=str(credentials))
    cells_of = {"detached": ["seed=1,2", "hydra.launcher.detach=true"],
                "search": ["search=smoke", "hydra.sweeper.n_trials=2", "trainer.epochs=1",
                           f"hydra.sweeper.storage={postgres_with_password.uri('optuna', PG_SECRET)}"]}[mode]
    rc, out = run(*SMOKE, "trainer.visuals=0", *cells_of, timeout=600)  # two jobs, each logging a model
    assert rc == 0, out[-3000:]
    (sweep_dir,) = tmp_path.glob("multirun/*/*")
    if detach:  # the driver job holds the file (mode 600) while it runs, and removes it when it ends
        driver = json.loads((sweep_dir / "driver.json").read_text())["job_id"]
        (held,) = wait_for(lambda: list(credentials.glob("*.json")), 60, "the driver's credentials file")
        assert stat.S_IMODE(held.stat().st_mode) == 0o600 and stat.S_IMODE(credentials.stat().st_mode) == 0o700
        done = subprocess.run([sys.executable, "-m", "seg58", "collect", str(sweep_dir), "--wait"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        out += done.stdout + done.stderr
        wait_for(lambda: sacct_states(env, driver) == ["COMPLETED"], 60, "the driver's accounting")
    cells = json.loads((sweep_dir / "sweep_summary.json").read_text())["cells"]
    assert [c["status"] for c in cells] == ["COMPLETED", "COMPLETED"]
    jobs = [c["job_id"] for c in cells] + ([driver] if detach else [])
    for job in jobs[:2]:
        assert ended_states(env, job) == ["COMPLETED"]
    trained = [r for r in server_runs(uri, experiment) if r.data.tags.get("seg58.sweep") != "true"]
    assert len(trained) == 2 and (mode == "search" or sorted(r.data.params["seed"] for r in trained) == ["1", "2"])
    if mode == "search":  # the study's trials, told by the driver from the trials' reports on the database
        dump = postgres_with_password.client("pg_dump", "optuna")
        assert dump.returncode == 0 and "optim.lr" in dump.stdout and PG_SECRET not in dump.stdout
    assert all(r.info.status == "FINISHED" for r in trained)

    assert list(credentials.glob("*")) == []  # removed by the sweep (the driver) that owned it
    assert any(sweep_dir.glob(".submitit/**/*.sh")) and any(sweep_dir.glob(".submitit/**/*.pkl"))
    assert files_holding(tmp_path, SECRETS) == []  # sweep folder (job scripts, pickles, logs, .hydra), store
    assert ALICE[1] not in out
    for job in jobs:  # SLURM's own copy of each job's environment and script: the file's name, not the password
        dump = slurm_cmd(env, "sacct", "-j", job, "--env-vars") + slurm_cmd(env, "sacct", "-j", job, "--batch-script")
        assert "SEG58_CREDENTIALS_FILE=" in dump and "MLFLOW_TRACKING_USERNAME=alice" in dump
        assert not [s for s in SECRETS if s in dump] and not re.search(r"MLFLOW_TRACKING_PASSWORD=", dump)
    cluster = Path(slurm_conf).parents[1]  # state, spool, logs and the accounting database's files
    assert files_holding(cluster, SECRETS) == []
