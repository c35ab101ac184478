"""How bad input reaches the terminal: one message naming the culprit (any URI password in it
masked) and a non-zero exit, no traceback (it is not a bug). `--debug` or SEG58_DEBUG=1 shows the
traceback as well."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hydra.errors import CompactHydraException

from seg58.base.errors import Seg58Error
from seg58.base.secrets import mask

DEBUG_ENV = "SEG58_DEBUG"
USER_ERROR_EXIT = 2

log = logging.getLogger("seg58")


class UserFacingError(CompactHydraException):
    """Bad input (config, data): Hydra prints just this message and exits non-zero."""


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


def user_message(error: BaseException) -> str | None:
    """The message to show for an error caused by the user's input; None for a bug."""
    if isinstance(error, Seg58Error):
        return str(error)
    if type(error).__module__.startswith("mlflow") and hasattr(error, "message"):
        return f"MLflow: {error.message}"  # unknown run ids, unreachable or foreign stores
    if type(error).__module__.startswith(("hydra.", "omegaconf.")):  # outside a Hydra app (rerun)
        return f"config: {error}"
    if isinstance(error, OSError) and error.filename:
        return f"{error.strerror or type(error).__name__}: {error.filename}"
    return None


@contextmanager
def reported_as_user_errors() -> Iterator[None]:
    """Inside Hydra apps: bad-input errors become a UserFacingError (message only)."""
    try:
        yield
    except Exception as e:
        message = user_message(e)
        if message is None or debug_enabled():
            raise
        raise UserFacingError(mask(message)) from None


def run_plain_command(prog: str, main: Callable[[list[str]], int], argv: list[str]) -> int:
    """Commands with ordinary arguments: the same translation, printed as `prog: message`."""
    try:
        return main(argv)
    except Exception as e:
        message = user_message(e)
        if message is None or debug_enabled():
            raise
        print(f"{prog}: error: {mask(message)}", file=sys.stderr)
        return USER_ERROR_EXIT


HYDRA_HINT = "\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n"


class _HintHeld:
    """stderr, except Hydra's HYDRA_FULL_ERROR hint, which is held back: Hydra prints it after every
    error it reports, a refused config as much as a crash, and after a refusal it reads as a crash."""

    def __init__(self, stream: Any):
        self._stream, self.held = stream, False

    def write(self, text: str) -> int:
        if text == HYDRA_HINT:
            self.held = True
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def hydra_hint_only_for_crashes() -> Iterator[None]:
    """Around a Hydra app: its HYDRA_FULL_ERROR hint reaches stderr only when the app ended in a
    bug, not in a user error (a CompactHydraException, which Hydra reports as one message)."""
    real = sys.stderr
    held = _HintHeld(real)
    sys.stderr = held
    try:
        yield
    except SystemExit as e:
        if held.held and not isinstance(e.__context__, CompactHydraException):
            real.write(HYDRA_HINT)
        raise
    finally:
        sys.stderr = real
