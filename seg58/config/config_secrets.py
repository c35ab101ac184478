"""A password written into a config file (`tracking.uri: postgresql://u:pw@host/db` in a YAML of
conf/ or of `--config-dir`) is moved out of the composed config before Hydra saves it, as one
given on the command line is before Hydra parses it (seg58/base/secrets.py): into the variable
its client reads, with one line saying so. A Hydra callback (conf/config.yaml, hydra.callbacks):
Hydra hands it the composed config before it writes .hydra/ or multirun.yaml or starts a job.
A sweep's jobs compose their config again from the files, so the cleaned values also become
overrides of every job (like a command-line override, they appear in each job's overrides).
A password interpolated into a URI (`${oc.env:...}`) is moved as it resolves."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, flag_override

from seg58.base.secrets import has_password, move_passwords
from seg58.config.user_errors import UserFacingError

PLAIN_VALUE = re.compile(r"[\w./:@+%~-]*")  # an override value Hydra's grammar reads as it is
DERIVED = ("hydra.job.", "hydra.runtime.", "hydra.overrides.")  # made from the command line, cleaned already


def passwords_in(config: DictConfig, node: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, value) of every string of a config that holds a URI password; an interpolated
    one (`postgresql://u:${oc.env:PW}@db/x`) as it resolves, since logs and MLflow see it resolved."""
    found = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        if f"{name}.".startswith(DERIVED):
            continue
        if isinstance(value, dict):
            found += passwords_in(config, value, f"{name}.")
        elif isinstance(value, str) and "://" in value:
            if "${" in value:
                try:
                    value = str(OmegaConf.select(config, name, throw_on_resolution_failure=True))
                except Exception:  # resolvable only later (hydra.runtime...): files keep the interpolation
                    continue
            if has_password(value):
                found.append((name, value))
    return found


def override(key: str, value: str) -> str:
    if PLAIN_VALUE.fullmatch(value):
        return f"{key}={value}"
    return f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def move_config_passwords(config: DictConfig, sweep: bool) -> list[str]:
    """Clean `config` in place, the passwords into os.environ; in a sweep also as overrides of every
    job. The notes, one per password."""
    found = passwords_in(config, OmegaConf.to_container(config, resolve=False))
    if not found:
        return []
    try:
        cleaned, notes = move_passwords([f"{k}={v}" for k, v in found], os.environ)
    except ValueError as e:
        raise UserFacingError(str(e)) from None
    flags = ["struct", "readonly"]
    with flag_override(config, flags, False), flag_override(config.hydra, flags, False):
        for entry in cleaned:
            key, value = entry.split("=", 1)
            OmegaConf.update(config, key, value, merge=False)
            if sweep:
                kind = "hydra" if key.startswith("hydra.") else "task"
                config.hydra.overrides[kind].append(override(key, value))
    return [note.replace(": ", ", written in a config file: ", 1) for note in notes]


class PasswordsOutOfConfig(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        for note in move_config_passwords(config, sweep=False):
            print(f"seg58: {note}", file=sys.stderr)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        for note in move_config_passwords(config, sweep=True):
            print(f"seg58: {note}", file=sys.stderr)
