"""Environment variables set for a while come back exactly as they were, errors included."""

import os

import pytest

from seg58.base.environment import environ


def test_values_and_kept_keys_are_put_back(monkeypatch):
    monkeypatch.setenv("SEG58_T_SET", "before")
    monkeypatch.delenv("SEG58_T_UNSET", raising=False)
    monkeypatch.setenv("SEG58_T_KEPT", "kept")
    with pytest.raises(RuntimeError), environ({"SEG58_T_SET": "during", "SEG58_T_UNSET": "x"}, keep=["SEG58_T_KEPT"]):
        assert os.environ["SEG58_T_SET"] == "during" and os.environ["SEG58_T_UNSET"] == "x"
        del os.environ["SEG58_T_KEPT"]  # a library deleting a variable it read
        raise RuntimeError
    assert os.environ["SEG58_T_SET"] == "before" and "SEG58_T_UNSET" not in os.environ
    assert os.environ["SEG58_T_KEPT"] == "kept"
