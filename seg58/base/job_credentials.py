"""Passwords for SLURM jobs, kept out of SLURM's copy of their environment.

sbatch hands the submitting shell's whole environment to slurmctld, which stores it with the job
(its state folder, and the accounting database where AccountingStoreFlags=job_env: `sacct
--env-vars` prints it). So while seg58 submits a job, the passwords it knows ($PGPASSWORD,
$MLFLOW_TRACKING_PASSWORD, $MLFLOW_TRACKING_TOKEN) leave the environment sbatch copies and go to a
file only the user can read (mode 600, in ~/.seg58/credentials/ or $SEG58_CREDENTIALS_DIR: on the
shared filesystem, outside every sweep folder); the job gets its path ($SEG58_CREDENTIALS_FILE) and
puts them back into its own environment before it does anything else. The file goes when the
process that owns it ends: the sweep on the login node, or a detached sweep's driver job. A file
whose owner was killed (SIGKILL, a lost node) is named after its host and pid, so the next seg58
that writes one on that host removes it; a file handed to a driver job waits for that job."""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import secrets
import socket
from collections.abc import Iterator, MutableMapping
from pathlib import Path

from seg58.base.errors import TrackingError

CREDENTIALS_ENV = "SEG58_CREDENTIALS_FILE"  # the file a job reads (a path: no secret in it)
CREDENTIALS_DIR_ENV = "SEG58_CREDENTIALS_DIR"
SECRET_VARS = ("PGPASSWORD", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")

_files: dict[str, Path] = {}  # the credentials (as JSON) -> their file, one per set in this process
_owned: set[Path] = set()  # the files this process removes when it ends


def credentials_dir() -> Path:
    return Path(os.environ.get(CREDENTIALS_DIR_ENV) or Path.home() / ".seg58" / "credentials")


@atexit.register
def _remove_owned() -> None:
    for path in list(_owned):
        with contextlib.suppress(OSError):
            path.unlink()
        _owned.discard(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


def _remove_orphans(folder: Path) -> None:
    """The files of processes on this host that died without removing theirs (`<host>-<pid>-<token>`)."""
    host = socket.gethostname()
    for path in folder.glob(f"{glob.escape(host)}-*-*.json"):
        name, pid, _ = path.stem.rsplit("-", 2)
        if name == host and pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                path.unlink()


def _file_for(values: dict[str, str], owned: bool) -> Path:
    key = json.dumps(values, sort_keys=True)
    path = _files.get(key)
    if path is None or not path.is_file() or (not owned and path in _owned):
        folder = credentials_dir()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.chmod(0o700)
        _remove_orphans(folder)
        owner = f"{socket.gethostname()}-{os.getpid()}" if owned else "handover"  # handover: the driver's
        path = folder / f"{owner}-{secrets.token_hex(8)}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        _files[key] = path
        if owned:
            _owned.add(path)
    return path


@contextlib.contextmanager
def kept_out_of_jobs(environ: MutableMapping[str, str] = os.environ, handover: bool = False
                     ) -> Iterator[Path | None]:
    """While jobs are submitted: the passwords out of `environ`, in a file named by
    $SEG58_CREDENTIALS_FILE (removed when this process ends unless `handover`); yields the file."""
    values = {k: environ[k] for k in SECRET_VARS if environ.get(k)}
    if not values:
        yield None
        return
    path = _file_for(values, owned=not handover)
    before = environ.get(CREDENTIALS_ENV)
    for key in values:
        del environ[key]
    environ[CREDENTIALS_ENV] = str(path)
    try:
        yield path
    finally:
        environ.update(values)
        if before is None:
            environ.pop(CREDENTIALS_ENV, None)
        else:
            environ[CREDENTIALS_ENV] = before


def load_job_credentials(environ: MutableMapping[str, str] = os.environ, own: bool = False) -> list[str]:
    """In a job seg58 submitted: the passwords from its file back into `environ` (the names set);
    `own`: this process (a sweep's driver) removes the file when it ends."""
    name = environ.get(CREDENTIALS_ENV)
    if not name:
        return []
    path = Path(name)
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise TrackingError(f"${CREDENTIALS_ENV}={path}: the credentials seg58 wrote for this job cannot be read "
                            f"({type(e).__name__}; removed when the sweep that submitted the job ended?)") from None
    environ.update(values)
    _files.setdefault(json.dumps(values, sort_keys=True), path)
    if own:
        _owned.add(path)
    return sorted(values)
