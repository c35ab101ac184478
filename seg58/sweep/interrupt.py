"""Ctrl-C on an attached sweep. The first SIGINT asks the sweep to stop: it launches nothing more
and, at its next safe point (never halfway through a submission or a summary write), interrupts its
running cells, records them INTERRUPTED, closes their runs and its own as KILLED, writes the summary,
logs one line saying how to continue and raises SweepInterrupted (exit 130 at the edge). A cell
trained in this very process is interrupted at once (KeyboardInterrupt in its training, which closes
its run). A second Ctrl-C during that tidy-up exits at once."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C


class SweepInterrupted(Exception):
    """The sweep stopped at Ctrl-C, tidily (its summary written, its one-line message logged).
    The edge turns it into INTERRUPTED_EXIT: the Hydra plugin's sweeper, for any app."""

    exit_code = INTERRUPTED_EXIT


class Interruption:
    def __init__(self) -> None:
        self.requested = False
        self._in_process = False
        self._previous: Any = None

    def __enter__(self) -> Interruption:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    @contextmanager
    def in_process(self) -> Iterator[None]:
        """While a cell trains in this process, Ctrl-C interrupts it at once."""
        self._in_process = True
        try:
            yield
        finally:
            self._in_process = False

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: no more tidying up
            os.write(2, b"\nsecond Ctrl-C: exiting without tidying up (seg58 collect <sweep dir> closes the rest)\n")
            os._exit(INTERRUPTED_EXIT)
        self.requested = True
        os.write(2, b"\nCtrl-C: stopping the sweep (no new cells; interrupting the running ones; "
                    b"Ctrl-C again to exit at once)\n")
        if self._in_process:
            raise KeyboardInterrupt
