"""Errors that mean "bad input", not "bug": every command reports them as one message.

Plain Python (no Hydra, no MLflow) so the core can raise them; the entry points turn them into
a message and a non-zero exit (seg58/user_errors.py).
"""

from __future__ import annotations


class Seg58Error(Exception):
    """Bad input from the user: config, data, paths, checkpoints, weights, tracking store."""


class ConfigError(Seg58Error, ValueError):
    """A config that cannot run; every problem names its key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n  - ".join(["Invalid configuration:", *problems]))


class UsageError(Seg58Error):
    """A command-line argument that names nothing usable (a folder, a run id)."""
