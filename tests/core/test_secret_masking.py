"""Passwords in URIs: moved to the environment their client reads, masked wherever text shows them."""

from __future__ import annotations

import logging
import os

import pytest

from seg58.base.secrets import mask, mask_log_records, move_passwords


def test_mask_hides_every_uri_password_and_nothing_else():
    text = "postgresql+psycopg2://u:s3cret@db:5432/x mysql://a:b@c/d http://127.0.0.1:5000 sqlite:////t/a@b:c"
    assert mask(text) == "postgresql+psycopg2://u:***@db:5432/x mysql://a:***@c/d http://127.0.0.1:5000 " \
                         "sqlite:////t/a@b:c"


def test_passwords_move_from_the_command_line_and_the_tracking_uri_into_the_environment():
    env = {"MLFLOW_TRACKING_URI": "https://alice:p%40ss@mlflow.lab:443", "PGPASSWORD": "old"}
    argv, notes = move_passwords(["-m", "tracking.uri=postgresql://u:s3cret@db/x", "seed=1,2",
                                  "hydra.sweeper.storage=postgresql://u:s3cret@db/optuna"], env)
    assert argv == ["-m", "tracking.uri=postgresql://u@db/x", "seed=1,2", "hydra.sweeper.storage=postgresql://u@db/optuna"]
    assert env == {"MLFLOW_TRACKING_URI": "https://mlflow.lab:443", "PGPASSWORD": "s3cret",
                   "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "p@ss"}
    assert len(notes) == 3 and notes[0].startswith("tracking.uri: the password is kept out")
    assert "s3cret" not in "".join(notes)
    with pytest.raises(ValueError, match="a second, different password for \\$PGPASSWORD"):
        move_passwords(["tracking.uri=postgresql://u:one@db/x", "hydra.sweeper.storage=postgresql://u:two@db/y"], {})
    argv, notes = move_passwords(["tracking.uri=mysql://u:pw@db/x"], {})  # no standard place: left, said
    assert argv == ["tracking.uri=mysql://u:pw@db/x"] and "cannot be kept out" in notes[0]


def test_log_records_are_masked_whatever_handler_writes_them(caplog):
    mask_log_records()
    mask_log_records()  # idempotent
    with caplog.at_level(logging.INFO):
        logging.getLogger("seg58.test").info("store %s not reachable", "postgresql://u:s3cret@db/x")
    assert caplog.records[-1].getMessage() == "store postgresql://u:***@db/x not reachable"
    assert "s3cret" not in caplog.text


def test_a_malformed_log_record_still_fails_only_in_the_handler():
    mask_log_records()
    record = logging.getLogger("seg58.test").makeRecord("seg58.test", logging.INFO, __file__, 1,
                                                         "%d items", ("not a number",), None)
    with pytest.raises(TypeError):  # raised where logging always raised it (Handler.emit), not at creation
        record.getMessage()


def test_a_config_file_password_leaves_the_composed_config_and_becomes_every_jobs_override(monkeypatch):
    """What the Hydra callback does to a composed config before Hydra saves it (end to end against a
    PostgreSQL: tests/tracking/test_credentials.py)."""
    from conftest import make

    from seg58.config.config_secrets import move_config_passwords

    for key in ("PGPASSWORD", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "OPTUNA_PW"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPTUNA_PW", "s3cret")  # interpolated: moved as it resolves
    cfg = make("tracking.uri='https://alice:p%40ss@mlflow.lab/?a=b'", hydra=True)
    cfg.hydra.sweeper.storage = "postgresql://u:${oc.env:OPTUNA_PW}@db/optuna"
    notes = move_config_passwords(cfg, sweep=True)
    assert cfg.tracking.uri == "https://mlflow.lab/?a=b" and cfg.hydra.sweeper.storage == "postgresql://u@db/optuna"
    assert cfg.hydra.overrides.task[-1] == "tracking.uri='https://mlflow.lab/?a=b'"  # quoted: "=" in it
    assert cfg.hydra.overrides.hydra[-1] == "hydra.sweeper.storage=postgresql://u@db/optuna"
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("alice", "p@ss")
    assert os.environ["PGPASSWORD"] == "s3cret" and len(notes) == 2
    assert notes[0].startswith("hydra.sweeper.storage, written in a config file: the password is kept out")
    run = make("tracking.uri=postgresql://u:s3cret@db/x", hydra=True)
    assert move_config_passwords(run, sweep=False) and run.tracking.uri == "postgresql://u@db/x"
    assert len(run.hydra.overrides.task) == 1  # nothing appended: a single run composes nothing again
    assert move_config_passwords(make(hydra=True), sweep=True) == []


def test_user_error_messages_are_masked():
    from seg58.base.errors import TrackingError
    from seg58.config.user_errors import UserFacingError, reported_as_user_errors

    with pytest.raises(UserFacingError, match=r"^store postgresql://u:\*\*\*@db/x is down$"):
        with reported_as_user_errors():
            raise TrackingError("store postgresql://u:s3cret@db/x is down")
