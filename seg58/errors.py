"""How user errors reach the terminal: the message alone, no traceback (they are not bugs)."""

from hydra.errors import CompactHydraException


class UserFacingError(CompactHydraException):
    """Bad input (config, data): Hydra prints just this message and exits non-zero."""
