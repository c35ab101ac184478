"""A log file that a signal handler may write to. At a SLURM requeue submitit's signal handler logs
while the job may be in the middle of writing a record to the same file; a buffered file refuses
the reentrant write (`RuntimeError: reentrant call inside <_io.BufferedWriter ...>`) and logging
prints a `--- Logging error ---` traceback into the job's stderr. Here such a record waits and is
written right after the one being written."""

from __future__ import annotations

import logging


class SignalSafeFileHandler(logging.FileHandler):
    """logging.FileHandler whose emit() defers a record that arrives while it is emitting."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._emitting = False
        self._waiting: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self._emitting:  # a signal handler's record, inside the write of another one
            self._waiting.append(record)
            return
        self._emitting = True
        try:
            super().emit(record)
            while self._waiting:
                super().emit(self._waiting.pop(0))
        finally:
            self._emitting = False
