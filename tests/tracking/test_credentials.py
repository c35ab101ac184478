"""No password is ever written or printed (issue #21, first part): given in a tracking or storage
URI, it is in no output and no file a run or a sweep writes, nor in the tracking store itself; the
runs still authenticate, from the environment (a real PostgreSQL that checks passwords)."""

from __future__ import annotations

from pathlib import Path

from conftest import PG_SECRET as SECRET
from conftest import mlflow_runs


def files_holding(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_a_password_in_an_unreachable_uri_is_nowhere(cli, tmp_path):
    r = cli("experiment=smoke", f"tracking.uri=postgresql://u:{SECRET}@127.0.0.1:9/db")
    assert r.returncode == 2
    out = r.stdout + r.stderr
    assert SECRET not in out and "postgresql://u@127.0.0.1:9/db" in out
    assert "the password is kept out of every file and log, in $PGPASSWORD" in out
    r = cli("experiment=smoke", env={"MLFLOW_TRACKING_URI": f"http://alice:{SECRET}@127.0.0.1:9"})
    assert r.returncode == 2 and SECRET not in r.stdout + r.stderr and "$MLFLOW_TRACKING_PASSWORD" in r.stderr
    assert files_holding(tmp_path, SECRET) == []


def test_a_grid_and_a_search_on_a_password_protected_postgres_write_it_nowhere(cli, tmp_path, postgres_with_password):
    server = postgres_with_password
    uri = server.uri("mlflow", SECRET, scheme="postgresql")  # plain, as users write it: the driver is seg58's choice
    env = {"PGPASSWORD": ""}  # nothing but the URI gives it
    wrong = cli("experiment=smoke", f"tracking.uri={server.uri('mlflow', 'wrong')}", env=env)
    assert wrong.returncode == 2 and "password authentication failed" in wrong.stderr  # it is checked
    grid = cli("-m", "experiment=smoke", "seed=1,2", f"tracking.uri={uri}", env=env)
    assert grid.returncode == 0, grid.stderr[-3000:]
    search = cli("-m", "experiment=smoke", "search=smoke", "hydra.sweeper.n_trials=2", f"tracking.uri={uri}",
                 f"hydra.sweeper.storage={server.uri('optuna', SECRET, scheme='postgresql')}", env=env)
    assert search.returncode == 0, search.stderr[-3000:]
    for r in (wrong, grid, search):
        assert SECRET not in r.stdout + r.stderr
    assert files_holding(tmp_path, SECRET) == []
    for database, stored in (("mlflow", "tracking.uri"), ("optuna", "optim.lr")):  # every param, tag, trial
        dump = server.client("pg_dump", database)
        assert dump.returncode == 0 and stored in dump.stdout and SECRET not in dump.stdout


def test_a_password_written_in_a_config_file_leaves_the_config_before_anything_is_saved(
        cli, tmp_path, tmp_path_factory, postgres_with_password):
    """tracking.uri with the password in a YAML of --config-dir (as in conf/): a run and a grid
    authenticate, and the password is in no output, no file of theirs and not in the database."""
    server = postgres_with_password
    conf = tmp_path_factory.mktemp("conf")  # outside the folder searched for the password below
    (conf / "tracking").mkdir()
    (conf / "tracking" / "team.yaml").write_text(f"uri: {server.uri('mlflow', SECRET)}\n")
    (conf / "tracking" / "wrong.yaml").write_text(f"uri: {server.uri('mlflow', 'wrong-pw')}\n")
    env = {"PGPASSWORD": ""}
    wrong = cli("--config-dir", str(conf), "experiment=smoke", "tracking=wrong", env=env)
    assert wrong.returncode == 2 and "password authentication failed" in wrong.stderr
    assert "wrong-pw" not in wrong.stdout + wrong.stderr
    run = cli("--config-dir", str(conf), "experiment=smoke", "tracking=team", env=env)
    grid = cli("-m", "--config-dir", str(conf), "experiment=smoke", "tracking=team", "seed=1,2", env=env)
    for r in (run, grid):
        assert r.returncode == 0, r.stderr[-3000:]
        assert "seg58: tracking.uri, written in a config file: the password is kept out of every file" in r.stderr
        assert SECRET not in r.stdout + r.stderr
    assert files_holding(tmp_path, SECRET) == []
    # wrong's and run's folders, grid's two jobs (and the grid's multirun.yaml: no password, checked above)
    saved = [*tmp_path.glob("outputs/*/*/.hydra/config.yaml"), *tmp_path.glob("multirun/*/*/*/.hydra/config.yaml")]
    assert len(saved) >= 3 and all(f"uri: {server.uri('mlflow')}\n" in p.read_text() for p in saved)  # no password
    runs = mlflow_runs(server.uri("mlflow", SECRET), "smoke")
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    dump = server.client("pg_dump", "mlflow")
    assert dump.returncode == 0 and SECRET not in dump.stdout
