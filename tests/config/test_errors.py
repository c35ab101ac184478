"""Every command turns bad input into one clear message naming the culprit and a non-zero exit,
never a Python traceback; `--debug` shows the traceback."""

from __future__ import annotations

import sys

import pytest
from conftest import free_port

from seg58 import cli
from seg58.base.errors import DataError
from seg58.tracking.store import ensure_store

SMOKE = ["experiment=smoke"]


def run_plain(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    """A plain command through the real entry point, in this process."""
    monkeypatch.setattr(sys, "argv", ["seg58", *argv])
    with pytest.raises(SystemExit) as done:
        cli.main()
    captured = capsys.readouterr()
    return done.value.code, captured.out + captured.err


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An existing, empty MLflow store in the working folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_store(uri)
    return uri


@pytest.mark.parametrize(("argv", "expected"), [
    (["report", "{tmp}/nowhere/2026-01-01"], "{tmp}/nowhere/2026-01-01: no such folder"),
    (["report", "{tmp}"], "{tmp}: no sweep_summary.json there"),
    (["report", "4f1c0ffee"], "no MLflow run '4f1c0ffee'"),
    (["rerun", "4f1c0ffee"], "no MLflow run '4f1c0ffee'"),
    (["import-artefact", "--source", "{tmp}/shards", "--out", "{tmp}/out"], "--source {tmp}/shards: no such parquet"),
    (["import-artefact", "--source", "{tmp}/mlflow.db", "--out", "{tmp}/out"], "not a readable parquet file"),
    (["augment-artefact", "--source", "{tmp}/artefact", "--out", "{tmp}/aug"], "missing folder: {tmp}/artefact"),
], ids=["report-no-folder", "report-foreign-folder", "report-unknown-run", "rerun-unknown-run",
        "import-no-source", "import-not-parquet", "augment-no-source"])
def test_plain_commands_report_bad_input_without_traceback(monkeypatch, capsys, tmp_path, store, argv, expected):
    code, out = run_plain(monkeypatch, capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    assert expected.format(tmp=tmp_path) in out, out
    assert "Traceback" not in out
    assert not (tmp_path / "out").exists() and not (tmp_path / "aug").exists()  # nothing half-written


def test_report_without_a_store_does_not_create_one(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, out = run_plain(monkeypatch, capsys, "report", "4f1c0ffee")
    assert code == 2 and f"no MLflow store at {tmp_path / 'mlflow.db'}" in out
    assert not (tmp_path / "mlflow.db").exists()


def test_report_against_an_unreachable_server_fails_fast(monkeypatch, capsys, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    code, out = run_plain(monkeypatch, capsys, "report", "4f1c0ffee", "--tracking-uri", uri)
    assert code == 2 and f"MLflow tracking store {uri} is not reachable" in out and "Traceback" not in out


def test_debug_flag_shows_the_traceback(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["seg58", "--debug", "augment-artefact", "--source", str(tmp_path / "x"),
                                      "--out", str(tmp_path / "y")])
    for var in ("SEG58_DEBUG", "HYDRA_FULL_ERROR"):  # main() sets both; restored after the test
        monkeypatch.setenv(var, "0")
        monkeypatch.delenv(var)
    with pytest.raises(DataError, match="missing folder"):
        cli.main()


@pytest.mark.parametrize(("args", "expected"), [
    (["check-data", "{tmp}/no/such/scans"], "missing folder: {tmp}/no/such/scans"),
    (["bench", *SMOKE, "trainer.nonfinite=halt"], "expected one of [skip, stop]"),
    (["evaluate", *SMOKE, "infer.run_id=4f1c0ffee"], "no MLflow run '4f1c0ffee'"),
    (["evaluate", *SMOKE, "infer.checkpoint={tmp}/gone/best.pt"], "checkpoint not found: {tmp}/gone/best.pt"),
    (["predict", *SMOKE, "infer.checkpoint={tmp}/best.pt", "infer.input={tmp}/scans"], "no such image: {tmp}/scans"),
], ids=["check-data-bare-path", "bench-bad-value", "evaluate-unknown-run", "evaluate-missing-checkpoint",
        "predict-missing-input"])
def test_config_commands_report_bad_input_without_traceback(cli, tmp_path, args, expected):
    ensure_store(f"sqlite:///{tmp_path / 'mlflow.db'}")  # the cli fixture's store exists, but is empty
    res = cli(*[a.format(tmp=tmp_path) for a in args])
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert expected.format(tmp=tmp_path) in out, out[-2000:]
    assert "Traceback" not in out


def test_check_data_takes_a_bare_folder(cli, tmp_path, cache_dir):
    from seg58.data.synthetic import ensure_synthetic

    folder = ensure_synthetic(cache_dir, n_images=12, size=80, seed=0)
    res = cli("check-data", str(folder))
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"dataset {folder}: OK" in res.stdout and "12 image/mask pairs" in res.stdout


def test_bad_sweep_settings_exit_2_in_one_message(cli):
    """seg58's Hydra commands exit 2 on bad input, whether our checks or Hydra's composition found it."""
    res = cli("-m", "experiment=smoke", "+hydra.sweeper.n_trial=3")
    assert res.returncode == 2 and "did you mean n_trials?" in res.stderr and "Traceback" not in res.stderr
    res = cli("-m", "experiment=smoke", "hydra.sweeper.n_trial=3")  # Hydra's own schema check
    assert res.returncode == 2 and "n_trial" in res.stderr and "Traceback" not in res.stderr


def test_an_unreachable_search_storage_is_one_line_before_any_trial(cli, tmp_path):
    res = cli("-m", "experiment=smoke", "search=smoke", "hydra.sweeper.n_trials=1",
              "hydra.sweeper.storage=postgresql://someone@127.0.0.1:9/optuna")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "hydra.sweeper.storage: cannot use postgresql+psycopg2://someone@127.0.0.1:9/optuna" in res.stderr
    assert "Traceback" not in res.stderr and "HYDRA_FULL_ERROR" not in res.stderr
    assert not list(tmp_path.rglob("last.pt"))


def test_a_plain_postgresql_uri_gets_the_installed_driver():
    from seg58.base.db_uri import with_installed_driver

    assert with_installed_driver("postgresql://u@h/db", "k") == "postgresql+psycopg2://u@h/db"  # psycopg2 here
    assert with_installed_driver("postgres://u@h/db", "k") == "postgresql+psycopg2://u@h/db"
    for other in ("postgresql+psycopg2://u@h/db", "sqlite:///x.db", "http://h:5000"):
        assert with_installed_driver(other, "k") == other
