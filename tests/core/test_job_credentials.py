"""The passwords a submitted job needs travel in a file of the user's (mode 600), not in the
environment SLURM stores with the job (seg58/base/job_credentials.py; on a real cluster:
tests/sweep/test_slurm_credentials.py). A job's process is a subprocess here: it reads the file as
a SLURM job does, and the file goes when the process that owns it ends."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from seg58.base.errors import TrackingError
from seg58.base.job_credentials import CREDENTIALS_ENV, kept_out_of_jobs, load_job_credentials

JOB = ("import json, os, sys; from seg58.base.job_credentials import load_job_credentials; "
       "names = load_job_credentials(own=sys.argv[1] == 'own'); "
       "print(json.dumps({n: os.environ[n] for n in names}))")


def job(env: dict[str, str], own: bool = False) -> dict[str, str]:
    """What a job started with `env` finds in its environment once it has read the file."""
    res = subprocess.run([sys.executable, "-c", JOB, "own" if own else "-"], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(res.stdout)


def test_a_job_gets_the_passwords_from_a_private_file_and_its_environment_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv("SEG58_CREDENTIALS_DIR", str(tmp_path / "credentials"))
    environ = {**os.environ, "PGPASSWORD": "pg-pw", "MLFLOW_TRACKING_PASSWORD": "ml-pw",
               "MLFLOW_TRACKING_USERNAME": "alice"}
    environ.pop("MLFLOW_TRACKING_TOKEN", None)
    with kept_out_of_jobs(environ) as path:
        submitted = dict(environ)  # what sbatch would copy into the job
    with kept_out_of_jobs(environ) as again:  # the next submission: one file per set of passwords
        assert again == path
    assert "pg-pw" not in json.dumps(submitted) and "ml-pw" not in json.dumps(submitted)
    assert submitted[CREDENTIALS_ENV] == str(path) and submitted["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert environ["PGPASSWORD"] == "pg-pw" and CREDENTIALS_ENV not in environ  # this process: as it was
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert job(submitted) == {"MLFLOW_TRACKING_PASSWORD": "ml-pw", "PGPASSWORD": "pg-pw"}
    assert path.is_file()  # a job never removes it: its siblings, and requeued jobs, read it too
    job(submitted, own=True)  # a sweep's driver owns it: gone when it ends
    assert not path.exists()
    with pytest.raises(TrackingError, match="cannot be read"):
        load_job_credentials(dict(submitted))


def test_nothing_to_keep_out_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SEG58_CREDENTIALS_DIR", str(tmp_path / "credentials"))
    environ = {"MLFLOW_TRACKING_USERNAME": "alice", "PGPASSWORD": ""}
    with kept_out_of_jobs(environ) as path:
        assert path is None and CREDENTIALS_ENV not in environ
    assert not (tmp_path / "credentials").exists() and load_job_credentials(environ) == []


def test_a_file_handed_to_a_driver_outlives_the_process_that_wrote_it(tmp_path):
    env = {**os.environ, "SEG58_CREDENTIALS_DIR": str(tmp_path), "PGPASSWORD": "pg-pw"}
    code = ("import os; from seg58.base.job_credentials import kept_out_of_jobs\n"
            "with kept_out_of_jobs(handover=True) as a: print(a)\n"
            "with kept_out_of_jobs() as b: print(b)\n")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         check=True)
    handed, owned = res.stdout.split()
    assert handed == owned and os.path.isfile(handed)  # handed over, so kept at exit


def test_a_second_set_of_passwords_gets_its_own_file_removed_at_exit(tmp_path):
    env = {**os.environ, "SEG58_CREDENTIALS_DIR": str(tmp_path), "PGPASSWORD": "pg-pw"}
    code = ("import os; from seg58.base.job_credentials import kept_out_of_jobs\n"
            "with kept_out_of_jobs() as a: print(a)\n"
            "os.environ['PGPASSWORD'] = 'other'\n"
            "with kept_out_of_jobs() as b: print(b)\n")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         check=True)
    first, second = res.stdout.split()
    assert first != second and list(tmp_path.iterdir()) == []


def test_a_killed_owners_file_is_removed_by_the_next_seg58_on_its_host(tmp_path):
    """An owner killed before its atexit (SIGKILL, simulated by os._exit) leaves its file; the next
    process that writes one on that host removes it. A handed-over file (a driver job's, perhaps still
    queued), a live process's and another host's are left alone."""
    env = {**os.environ, "SEG58_CREDENTIALS_DIR": str(tmp_path), "PGPASSWORD": "pg-pw"}
    code = ("import os, sys; from seg58.base.job_credentials import kept_out_of_jobs\n"
            "with kept_out_of_jobs(handover=sys.argv[1] == 'handover') as a: print(a, flush=True)\n"
            "os._exit(0)\n")

    def write(how: str) -> str:
        res = subprocess.run([sys.executable, "-c", code, how], env=env, capture_output=True, text=True, timeout=60,
                             check=True)
        return res.stdout.strip()

    orphan = write("own")
    assert os.path.basename(orphan).startswith(f"{socket.gethostname()}-") and os.path.isfile(orphan)
    handed = write("handover")  # the next process that writes a file (here, one to hand over)
    assert not os.path.exists(orphan) and os.path.isfile(handed)
    elsewhere = tmp_path / "some-other-host-1-0123456789abcdef.json"
    elsewhere.write_text("{}")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = tmp_path / f"{socket.gethostname()}-{live.pid}-0123456789abcdef.json"
        mine.write_text("{}")
        again = write("own")
        assert sorted(tmp_path.iterdir()) == sorted(map(Path, [again, handed, elsewhere, mine]))
    finally:
        live.kill()
        live.wait()
