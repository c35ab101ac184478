"""Fixtures shared by test modules, registered once (tests/conftest.py's pytest_plugins): the
local SLURM cluster, which fixed ports allow only one of per machine, and a tracking server with
users (`mlflow server --app-name basic-auth` on a PostgreSQL that checks passwords)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import PG_SECRET, REPO, free_port, start_mlflow_server, stop_mlflow_server

ON_LOCAL_CLUSTER = [
    "launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1", "hydra.launcher.partition=debug",
]
MAX_ARRAY_SIZE = 5  # the test cluster's MaxArraySize (SLURM's default is 1001)
ADMIN, ALICE, BOB = ("admin", "admin-pw-7x9-q3"), ("alice", "alice-pw-4k2-z8"), ("bob", "bob-pw-8m1-w5x")
ADMIN_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@pytest.fixture(scope="session")
def slurm_conf(tmp_path_factory) -> str:
    """SLURM daemons on this machine for the whole session (scripts/slurm); their slurm.conf."""
    if shutil.which("slurmctld") is None:
        if os.environ.get("SEG58_REQUIRE_SLURM") == "1":
            pytest.fail("SLURM daemons not installed but SEG58_REQUIRE_SLURM=1")
        pytest.skip("SLURM not installed (apt-get install slurmctld slurmd slurm-client munge slurmdbd mariadb-server)")
    folder = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SEG58_SLURM_MAX_ARRAY_SIZE": str(MAX_ARRAY_SIZE)}  # grids of > 5 cells: several arrays
    subprocess.run([REPO / "scripts/slurm/start-local-cluster.sh", folder], check=True, timeout=120, env=env)
    yield str(folder / "etc" / "slurm.conf")
    subprocess.run([REPO / "scripts/slurm/stop-local-cluster.sh", folder], timeout=120)


@pytest.fixture
def slurm(slurm_conf, tmp_path, cache_dir):
    """(env, run_sweep, start_sweep) for seg58 sweeps submitted to the local cluster; `env` may be
    changed before a sweep starts."""
    env = {**os.environ, "SLURM_CONF": slurm_conf, "SEG58_CACHE_DIR": str(cache_dir),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "PYTHONUNBUFFERED": "1"}

    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "seg58", "-m", *ON_LOCAL_CLUSTER, *args],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def run(*args: str, timeout: float = 240) -> tuple[int, str]:
        proc = start(*args)
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out

    return env, run, start


@pytest.fixture
def auth_server(postgres_with_password, tmp_path, monkeypatch):
    """(server URI, the experiment `smoke`'s id) of a basic-auth MLflow server whose store is a
    PostgreSQL that checks passwords: alice may edit `smoke`, bob only read it. This process's
    environment holds none of the credentials afterwards."""
    from mlflow.tracking import MlflowClient

    ini = tmp_path / "auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                   f"database_uri = sqlite:///{tmp_path / 'users.db'}\nadmin_username = {ADMIN[0]}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                   "grant_default_workspace_access = true\n")
    server_env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
                  "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key", "PGPASSWORD": PG_SECRET,
                  "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    for key, value in server_env.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    proc = start_mlflow_server(port, tmp_path / "server", postgres_with_password.uri("mlflow"),
                               log=tmp_path / "server.log", app_name="basic-auth")
    for key in server_env:  # the jobs get nothing of the server's or the database's
        monkeypatch.delenv(key)
    uri = f"http://127.0.0.1:{port}"
    try:
        monkeypatch.setenv(ADMIN_ENV[0], ADMIN[0])
        monkeypatch.setenv(ADMIN_ENV[1], ADMIN[1])
        from mlflow.server import get_app_client

        users = get_app_client("basic-auth", tracking_uri=uri)
        for name, password in (ALICE, BOB):
            users.create_user(name, password)
        experiment = MlflowClient(uri).create_experiment("smoke")
        users.grant_user_permission(ALICE[0], "experiment", experiment, "EDIT")
        users.grant_user_permission(BOB[0], "experiment", experiment, "READ")
        for key in ADMIN_ENV:
            monkeypatch.delenv(key)
        yield uri, experiment
    finally:
        stop_mlflow_server(proc)


def server_runs(uri: str, experiment: str) -> list:
    """Every run of the experiment, read as the admin."""
    from mlflow.tracking import MlflowClient

    os.environ.update(dict(zip(ADMIN_ENV, ADMIN, strict=True)))
    try:
        return MlflowClient(uri).search_runs([experiment])
    finally:
        for key in ADMIN_ENV:
            os.environ.pop(key)
