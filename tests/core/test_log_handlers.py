"""A record logged by a signal handler while another is being written (submitit's handler at a
SLURM requeue) is written after it, with no `--- Logging error ---` in the job's stderr."""

from __future__ import annotations

import logging

import pytest

from seg58.base.log_handlers import SignalSafeFileHandler


class InterruptedWrites:
    """A file whose first write is interrupted by a signal handler that logs to the same handler;
    a nested write raises as a BufferedWriter does."""

    def __init__(self, handler: logging.Handler, late: logging.LogRecord):
        self.handler, self.late, self.lines, self.writing = handler, late, [], False

    def write(self, text: str) -> None:
        if self.writing:
            raise RuntimeError("reentrant call inside <_io.BufferedWriter>")
        self.writing = True
        try:
            if self.late is not None:
                late, self.late = self.late, None
                self.handler.handle(late)  # the signal arrives mid-write
            self.lines.append(text)
        finally:
            self.writing = False

    def flush(self) -> None:
        pass


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("seg58", logging.INFO, __file__, 1, message, None, None)


@pytest.mark.parametrize("handler_class", [SignalSafeFileHandler, logging.FileHandler])
def test_a_record_logged_mid_write_is_written_after_it(tmp_path, handler_class, capsys):
    handler = handler_class(tmp_path / "seg58.log", delay=True)
    handler.stream = InterruptedWrites(handler, record("submitit: requeued"))
    handler.handle(record("epoch 3/30"))
    written = "".join(handler.stream.lines)
    if handler_class is SignalSafeFileHandler:
        assert written == "epoch 3/30\nsubmitit: requeued\n"
        assert "Logging error" not in capsys.readouterr().err
    else:  # what Hydra's plain FileHandler did
        assert "Logging error" in capsys.readouterr().err
