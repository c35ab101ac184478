"""How user errors reach the terminal: the message alone, no traceback (they are not bugs)."""

from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import CompactHydraException


class UserFacingError(CompactHydraException):
    """Bad input (config, data): Hydra prints just this message and exits non-zero."""


@contextmanager
def reported_as_user_errors() -> Iterator[None]:
    """Every command's one translation of bad-input errors into a plain message."""
    from seg58.checkpoints import CheckpointError
    from seg58.checks import ConfigError
    from seg58.data.folder import DataError
    from seg58.mlflow_store import TrackingError
    from seg58.trainer import NonFiniteLossError

    try:
        yield
    except (ConfigError, DataError, TrackingError, CheckpointError, NonFiniteLossError) as e:
        raise UserFacingError(str(e)) from None
