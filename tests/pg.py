"""A throwaway PostgreSQL server for tests, from the Debian package's binaries
(/usr/lib/postgresql/<version>/bin): a cluster in a temporary folder, one postmaster started
here and stopped by its PID, the folder removed afterwards.

PostgreSQL refuses to run as root, and CI runs the tests as root: there the cluster belongs to
the `postgres` system user (created by the Debian package) and initdb/postgres run as that user
through `setpriv`, which execs, so the PID held here is the postmaster's own."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")
PG_USER = "postgres"


def _version(bindir: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", bindir.parent.name))


def pg_bindir() -> Path | None:
    """The newest installed /usr/lib/postgresql/<version>/bin with initdb and postgres, or None."""
    found = [p.parent for p in PG_ROOT.glob("*/bin/postgres") if (p.parent / "initdb").is_file()]
    return max(found, key=_version, default=None)


def missing() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None when it can."""
    if pg_bindir() is None:
        return f"PostgreSQL binaries not found ({PG_ROOT}/*/bin/postgres; apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"running as root and no `{PG_USER}` system user to run PostgreSQL as"
        if shutil.which("setpriv") is None:
            return "running as root and no `setpriv` (util-linux) to drop to the postgres user"
    return None


def _as_owner() -> list[str]:
    """Command prefix that runs a server binary as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={PG_USER}", f"--regid={PG_USER}", "--init-groups", "--reset-env"]


@dataclass
class Postgres:
    bindir: Path
    base: Path  # cluster folder: data/, the Unix socket, postgres.log
    port: int
    proc: subprocess.Popen
    password: str | None = None  # None: trust authentication; else scram-sha-256 with this password

    def uri(self, database: str, password: str | None = None, scheme: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URI for MLflow (TCP on 127.0.0.1), with `password` in it when given; `scheme`
        "postgresql": as users write it, the driver left to seg58."""
        user = f"{PG_USER}:{password}" if password else PG_USER
        return f"{scheme}://{user}@127.0.0.1:{self.port}/{database}"

    def log_tail(self, chars: int = 3000) -> str:
        log = self.base / "postgres.log"
        return log.read_text(errors="replace")[-chars:] if log.is_file() else ""

    def client(self, *args: str) -> subprocess.CompletedProcess:
        """Run a client program (createdb, psql, ...) against this server."""
        env = {**os.environ, "PGPASSWORD": self.password} if self.password else None
        return subprocess.run([str(self.bindir / args[0]), "-h", "127.0.0.1", "-p", str(self.port),
                               "-U", PG_USER, *args[1:]], capture_output=True, text=True, timeout=60, env=env)

    def recreate_database(self, name: str) -> None:
        """An empty database `name`, whatever an earlier test left in it (connections closed)."""
        res = self.client("dropdb", "--if-exists", "--force", name)
        if res.returncode != 0:
            raise RuntimeError(f"dropdb {name} failed: {res.stderr}")
        self.create_database(name)

    def create_database(self, name: str) -> None:
        res = self.client("createdb", name)
        if res.returncode != 0:
            raise RuntimeError(f"createdb {name} failed: {res.stderr}")


def _stop(proc: subprocess.Popen) -> None:
    """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL: by the postmaster's PID."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


@contextlib.contextmanager
def postgres_server(port: int, timeout: float = 60, password: str | None = None) -> Iterator[Postgres]:
    """initdb into a new temporary folder, start `postgres` on 127.0.0.1:<port>, yield it; stop
    it and remove the folder on the way out, whatever happened. With `password`, TCP clients
    must give it (scram-sha-256)."""
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError(missing())
    # Not under pytest's tmp_path: that is private to root, and the server runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="seg58-pg-"))
    proc = None
    try:
        auth = ["-A", "trust"]
        if password:
            (base / "pwfile").write_text(password + "\n")
            auth = ["--auth-host=scram-sha-256", "--auth-local=trust", f"--pwfile={base / 'pwfile'}"]
        if os.geteuid() == 0:
            for path in (base, *base.iterdir()):
                shutil.chown(path, PG_USER, PG_USER)
        init = subprocess.run(
            [*_as_owner(), str(bindir / "initdb"), "-D", str(base / "data"), "-U", PG_USER, *auth,
             "-E", "UTF8", "--locale=C", "--no-sync"],
            cwd=base, capture_output=True, text=True, timeout=120)
        (base / "pwfile").unlink(missing_ok=True)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}")
        with open(base / "postgres.log", "wb") as log:
            proc = subprocess.Popen(
                [*_as_owner(), str(bindir / "postgres"), "-D", str(base / "data"), "-k", str(base),
                 "-p", str(port), "-h", "127.0.0.1", "-c", "max_connections=200"],
                cwd=base, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)  # a service: tests/reaper.py leaves other sessions alone
        server = Postgres(bindir, base, port, proc, password)
        deadline = time.time() + timeout
        while server.client("pg_isready", "-q").returncode != 0:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"postgres did not start (exit {proc.poll()}):\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(base, ignore_errors=True)
