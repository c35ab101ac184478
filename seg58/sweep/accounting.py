"""What SLURM billed a cell: its job's allocated TRES (`cpu=`, `gres/gpu=`) times its elapsed
time, every attempt of a requeued job included, from `sacct` where the cluster keeps accounting.
These are the job's own devices, not the node's (mlflow#13398). The sweep records them as the
cell's `cost/gpu_hours` and `cost/cpu_hours` (`cost_source: sacct`) over the run's own estimate."""

from __future__ import annotations

import logging
import subprocess
import time

log = logging.getLogger(__name__)

ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUE_HOLD", "RESIZING"}  # not ended
WAIT_S = 10.0  # slurmctld sends a job's end to slurmdbd asynchronously: sacct may lag the job's result


def tres_count(tres: str, name: str) -> int:
    """`billing=2,cpu=2,gres/gpu=1,gres/gpu:v100=1,mem=4G,node=1` -> 1 for gres/gpu (SLURM lists a
    typed GPU twice: the plain key is the total)."""
    for item in tres.split(","):
        key, _, value = item.partition("=")
        if key == name and value.isdigit():
            return int(value)
    return 0


def parse_sacct(out: str) -> dict[str, float] | None:
    """{cost/cpu_hours, cost/gpu_hours} of `sacct -D -X -n -P -o State,AllocTRES,ElapsedRaw` lines;
    None while a record has not ended."""
    cpu_s = gpu_s = 0.0
    lines = [line.split("|") for line in out.splitlines() if line.strip()]
    if not lines:
        return None
    for state, tres, elapsed in lines:
        if state.split()[0] in ACTIVE:
            return None
        seconds = float(elapsed or 0)
        cpu_s += tres_count(tres, "cpu") * seconds
        gpu_s += tres_count(tres, "gres/gpu") * seconds
    return {"cost/cpu_hours": cpu_s / 3600, "cost/gpu_hours": gpu_s / 3600}


def billed_hours(job_id: str, wait_s: float = WAIT_S) -> dict[str, object]:
    """The job's billed hours once accounting has its end (waiting up to wait_s); {} without
    accounting, or when it does not say in time (the run's own figures stand)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            out = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-j", job_id, "-o", "State,AllocTRES,ElapsedRaw"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
            hours = parse_sacct(out)
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            log.debug("sacct for job %s: %s", job_id, e)
            return {}
        if hours is not None:
            return {**hours, "cost_source": "sacct"}
        if time.monotonic() >= deadline:
            return {}
        time.sleep(0.5)
