"""What SLURM billed a job, read from sacct's records (the SLURM tests check it against a real
cluster's accounting: tests/sweep/test_slurm.py)."""

from __future__ import annotations

import pytest

from seg58.sweep.accounting import parse_sacct, tres_count


def test_billed_hours_are_the_jobs_own_devices_times_every_attempts_time():
    # a requeued job: two records; two GPUs of a typed gres (listed twice: the plain key is the total)
    out = ("REQUEUED|billing=8,cpu=8,gres/gpu=2,gres/gpu:v100=2,mem=64G,node=1|1800\n"
           "COMPLETED|billing=8,cpu=8,gres/gpu=2,gres/gpu:v100=2,mem=64G,node=1|5400\n")
    assert parse_sacct(out) == {"cost/cpu_hours": pytest.approx(16.0), "cost/gpu_hours": pytest.approx(4.0)}
    assert parse_sacct("COMPLETED|billing=1,cpu=1,mem=1G,node=1|36\n") == {"cost/cpu_hours": 0.01,
                                                                           "cost/gpu_hours": 0.0}
    assert parse_sacct("RUNNING|cpu=1|10\n") is None and parse_sacct("") is None  # not ended: no figure yet
    assert tres_count("cpu=4,gres/gpu:a100=1,gres/gpu=1", "gres/gpu") == 1 and tres_count("cpu=4", "gres/gpu") == 0
