"""One job per GPU for launcher=local_parallel: the assignment logic with given GPU counts (no
GPU on this machine; the CLI test in test_cluster_day.py runs it end to end with GPU ids)."""

from __future__ import annotations

import pytest

from seg58.base.errors import ConfigError
from seg58.sweep.gpus import GpuSlots, visible_gpus


@pytest.mark.parametrize(("setting", "environ", "count", "expected"), [
    ("auto", {}, 4, [0, 1, 2, 3]),
    ("auto", {}, 0, []),
    ("auto", {"CUDA_VISIBLE_DEVICES": "2,3"}, 8, [2, 3]),  # what SLURM/the user granted this process
    ("auto", {"CUDA_VISIBLE_DEVICES": ""}, 8, []),
    ([1, 3], {}, 0, [1, 3]),
    ([], {}, 4, []),
    (None, {}, 4, []),
])
def test_visible_gpus(setting, environ, count, expected):
    assert visible_gpus(setting, environ, count) == expected


def test_visible_gpus_refuses_what_it_cannot_hand_out():
    with pytest.raises(ConfigError, match=r"hydra\.launcher\.gpus"):
        visible_gpus("auto", {"CUDA_VISIBLE_DEVICES": "GPU-5f1c,GPU-77aa"}, 2)
    with pytest.raises(ConfigError, match=r"hydra\.launcher\.gpus"):
        visible_gpus(["a"], {}, 2)


def test_each_running_job_holds_its_own_gpus():
    slots = GpuSlots([0, 1, 2, 3], per_job=1)
    assert slots.capacity == 4
    held = [slots.acquire(f"job{i}") for i in range(4)]
    assert sorted(g for ids in held for g in ids) == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="no free GPU"):
        slots.acquire("job4")
    slots.release("job2")
    assert slots.acquire("job4") == held[2]  # the freed GPU, no other


def test_multi_gpu_jobs_and_odd_counts():
    slots = GpuSlots([4, 5, 6], per_job=2)
    assert slots.capacity == 1  # 3 GPUs, 2 per job: one job at a time, GPU 6 idle
    assert slots.acquire("a") == [4, 5]
    with pytest.raises(RuntimeError):
        slots.acquire("b")
    slots.release("a")
    assert slots.acquire("b") == [4, 5]
    with pytest.raises(ConfigError, match="gpus_per_node=4"):
        GpuSlots([0, 1], per_job=4)


def test_without_gpus_the_cpus_are_shared_instead():
    assert GpuSlots([], per_job=1).capacity is None


def test_jobs_side_by_side_split_threads_and_loader_workers(monkeypatch):
    import torch

    from seg58.base.names import CONCURRENT_JOBS_ENV
    from seg58.engine.runtime import available_cpus, resolve_threads, resolve_workers

    gpu = torch.device("cuda", 0)  # only its type matters: the loader sizing of a GPU job
    monkeypatch.setenv(CONCURRENT_JOBS_ENV, "1")
    assert resolve_threads("auto") == available_cpus()
    assert resolve_workers("auto", gpu) == min(8, available_cpus() - 1)
    monkeypatch.setenv(CONCURRENT_JOBS_ENV, str(available_cpus()))  # as many jobs as CPUs
    assert resolve_threads("auto") == 1
    assert resolve_workers("auto", gpu) == 0
    assert resolve_workers(3, gpu) == 3  # an explicit setting stands
