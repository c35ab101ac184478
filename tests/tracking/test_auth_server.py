"""A tracking server with users (issue #21): `mlflow server --app-name basic-auth` on a PostgreSQL
that checks passwords. A user with EDIT on the experiment sweeps, authenticating from the URI (its
password moved to the environment) or from $MLFLOW_TRACKING_USERNAME/PASSWORD; a wrong password and a
read-only user are refused in one line, exit 2, before any job starts (the server: fixture
`auth_server`, tests/cluster_fixtures.py; from SLURM jobs: tests/sweep/test_slurm_credentials.py)."""

from __future__ import annotations

from pathlib import Path

from cluster_fixtures import ALICE, BOB, server_runs
from conftest import PG_SECRET


def test_users_with_and_without_permission_and_a_wrong_password(cli, tmp_path, auth_server):
    uri, experiment = auth_server
    host = uri.removeprefix("http://")
    # one cell proves the sweep's jobs get the credentials; the model is not what is tested here
    ok = cli("-m", "experiment=smoke", "seed=1", "tracking.log_model=false",
             f"tracking.uri=http://{ALICE[0]}:{ALICE[1]}@{host}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    runs = server_runs(uri, experiment)
    trained = [r for r in runs if r.data.tags.get("seg58.sweep") != "true"]
    assert len(trained) == 1 and all(r.info.status == "FINISHED" for r in trained)
    for who, password, refusal in ((ALICE[0], "wrong-pw", "refused the credentials of user alice (401"),
                                   (BOB[0], BOB[1], "user bob may not write to experiment 'smoke'")):
        r = cli("-m", "experiment=smoke", "seed=1,2", f"tracking.uri={uri}",
                env={"MLFLOW_TRACKING_USERNAME": who, "MLFLOW_TRACKING_PASSWORD": password})
        assert r.returncode == 2 and refusal in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert len(server_runs(uri, experiment)) == len(runs)  # refused before any job or run started
    for secret in (ALICE[1], BOB[1], PG_SECRET):
        assert not [p for p in Path(tmp_path).rglob("*") if p.is_file() and p.name != "auth.ini"
                    and secret.encode() in p.read_bytes()]
