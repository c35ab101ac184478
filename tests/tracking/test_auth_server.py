"""A tracking server with users (issue #21): `mlflow server --app-name basic-auth` on a PostgreSQL
that checks passwords. A user with EDIT on the experiment sweeps, authenticating from the URI (its
password moved to the environment) or from $MLFLOW_TRACKING_USERNAME/PASSWORD; a wrong password and a
read-only user are refused in one line, exit 2, before any job starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import PG_SECRET, free_port, start_mlflow_server, stop_mlflow_server
from mlflow.tracking import MlflowClient

ADMIN, ALICE, BOB = ("admin", "admin-pw-7x9-q3"), ("alice", "alice-pw-4k2-z8"), ("bob", "bob-pw-8m1-w5x")


@pytest.fixture
def auth_server(postgres_with_password, tmp_path, monkeypatch):
    """(server URI, the experiment `smoke`'s id): alice may edit it, bob only read it."""
    ini = tmp_path / "auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                   f"database_uri = sqlite:///{tmp_path / 'users.db'}\nadmin_username = {ADMIN[0]}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                   "grant_default_workspace_access = true\n")
    for key, value in {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
                       "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key", "PGPASSWORD": PG_SECRET,
                       "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    proc = start_mlflow_server(port, tmp_path / "server", postgres_with_password.uri("mlflow"),
                               log=tmp_path / "server.log", app_name="basic-auth")
    monkeypatch.delenv("PGPASSWORD")  # the jobs get nothing of the database
    uri = f"http://127.0.0.1:{port}"
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
        from mlflow.server import get_app_client

        users = get_app_client("basic-auth", tracking_uri=uri)
        for name, password in (ALICE, BOB):
            users.create_user(name, password)
        experiment = MlflowClient(uri).create_experiment("smoke")
        users.grant_user_permission(ALICE[0], "experiment", experiment, "EDIT")
        users.grant_user_permission(BOB[0], "experiment", experiment, "READ")
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            monkeypatch.delenv(key)
        yield uri, experiment
    finally:
        stop_mlflow_server(proc)


def _runs(uri: str, experiment: str) -> list:
    os.environ.update(MLFLOW_TRACKING_USERNAME=ADMIN[0], MLFLOW_TRACKING_PASSWORD=ADMIN[1])
    try:
        return MlflowClient(uri).search_runs([experiment])
    finally:
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(key)


def test_users_with_and_without_permission_and_a_wrong_password(cli, tmp_path, auth_server):
    uri, experiment = auth_server
    host = uri.removeprefix("http://")
    ok = cli("-m", "experiment=smoke", "seed=1,2", f"tracking.uri=http://{ALICE[0]}:{ALICE[1]}@{host}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    runs = _runs(uri, experiment)
    trained = [r for r in runs if r.data.tags.get("seg58.sweep") != "true"]
    assert len(trained) == 2 and all(r.info.status == "FINISHED" for r in trained)
    for who, password, refusal in ((ALICE[0], "wrong-pw", "refused the credentials of user alice (401"),
                                   (BOB[0], BOB[1], "user bob may not write to experiment 'smoke'")):
        r = cli("-m", "experiment=smoke", "seed=1,2", f"tracking.uri={uri}",
                env={"MLFLOW_TRACKING_USERNAME": who, "MLFLOW_TRACKING_PASSWORD": password})
        assert r.returncode == 2 and refusal in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert len(_runs(uri, experiment)) == len(runs)  # refused before any job or run started
    for secret in (ALICE[1], BOB[1], PG_SECRET):
        assert not [p for p in Path(tmp_path).rglob("*") if p.is_file() and p.name != "auth.ini"
                    and secret.encode() in p.read_bytes()]
