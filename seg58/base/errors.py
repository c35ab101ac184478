"""Errors that mean "bad input", not "bug", all of them here: every command reports them as one
message naming the culprit (seg58/config/user_errors.py turns them into a non-zero exit).

Plain Python (no Hydra, no MLflow) so the core can raise them."""

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


class DataError(Seg58Error, ValueError):
    """Bad input data; the message lists every offending file."""

    def __init__(self, problems: list[str], root: object = None):
        self.problems = problems
        head = f"{len(problems)} problem(s) in dataset {root}:" if root else "Data problems:"
        super().__init__("\n  - ".join([head, *problems]))


class CheckpointError(Seg58Error, ValueError):
    """A checkpoint that cannot be loaded (corrupt, truncated, or from another model)."""


class WeightsError(Seg58Error, ValueError):
    """Encoder weights that cannot be had: a file that does not (fully) fit the encoder, or
    pretrained weights neither in the cache nor downloadable."""


class NonFiniteLossError(Seg58Error, FloatingPointError):
    """Loss became NaN/inf and trainer.nonfinite=stop."""


class ExportError(Seg58Error):
    """The export's extra packages are missing, or the ONNX model disagrees with PyTorch."""


class TrackingError(Seg58Error, RuntimeError):
    """The tracking store cannot be reached or written."""
