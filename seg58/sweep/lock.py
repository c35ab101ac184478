"""One driver per sweep folder: a second process that would write a folder whose
driver is alive (a resume, a rerun into it, a collect) is refused at once, naming the live one; a
folder left by a dead driver is taken over, and that is said.

The driver holds an OS lock (flock, through filelock) on <sweep dir>/.driver.lock for as long as
it runs: the kernel releases it when the process dies, however it dies, so a stale lock cannot
exist; on NFS the lock is the server's, so it holds across the cluster's nodes. Who holds it (host,
pid, SLURM job id) is in driver_owner.json beside it, for the message; a driver that died leaves
that file behind, which is how the next one knows it takes over."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from seg58.base.errors import UsageError
from seg58.base.names import LOCK_FILE, LOCK_OWNER_FILE

log = logging.getLogger(__name__)


def describe(owner: dict[str, Any] | None) -> str:
    if not owner:
        return "a process that has not said who it is yet"
    job = f", SLURM job {owner['slurm_job_id']}" if owner.get("slurm_job_id") else ""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("since", 0)))
    return f"pid {owner.get('pid')} on {owner.get('host')}{job}, since {since}"


class DriverLock:
    """Held while a process writes a sweep folder; released at the end, however it ends."""

    def __init__(self, sweep_dir: Path, what: str):
        self.dir, self.what = Path(sweep_dir), what
        self._lock: FileLock | None = None

    def __enter__(self) -> DriverLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.dir / LOCK_FILE))
        refuse_if_driven(self.dir, self.what)  # names the live driver
        try:
            lock.acquire(timeout=0)
        except Timeout:  # taken in between
            refuse_if_driven(self.dir, self.what)
            raise
        self._lock = lock
        stale = _read(self.dir / LOCK_OWNER_FILE)
        if stale:
            log.warning("%s: its previous driver (%s) is gone; this one takes over", self.dir, describe(stale))
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                 "since": time.time(), "what": self.what}
        tmp = self.dir / f".{LOCK_OWNER_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(owner))
        os.replace(tmp, self.dir / LOCK_OWNER_FILE)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._lock is not None:
            (self.dir / LOCK_OWNER_FILE).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None


def refuse_if_driven(sweep_dir: Path, what: str) -> None:
    """UsageError when a live process drives this folder; nothing is taken or written."""
    path = Path(sweep_dir) / LOCK_FILE
    if not path.exists():
        return
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(f"{what}: {sweep_dir} is being driven by a live sweep "
                         f"({describe(_read(Path(sweep_dir) / LOCK_OWNER_FILE))}); wait for it to end, or stop "
                         "that process first") from None
    lock.release()


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
