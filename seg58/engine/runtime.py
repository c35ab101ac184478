"""Where and how a run executes: device, CPU threads, loader workers, seeds, memory peaks."""

from __future__ import annotations

import logging
import os
import random
import resource
from functools import cache

import numpy as np
import torch

from seg58.base.choices import CpuAmp
from seg58.base.names import CONCURRENT_JOBS_ENV

log = logging.getLogger(__name__)


@cache
def cpu_has_native_bf16() -> bool:
    """oneDNN's own test: AVX512 (BF16) or AMX. Without it bf16 kernels are emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # no oneDNN in this build
        return False


def autocast_dtype(device: torch.device, amp: bool, cpu_amp: CpuAmp | str = CpuAmp.auto) -> torch.dtype | None:
    """What mixed precision runs in, or None for fp32: fp16 (+ GradScaler) on CUDA; bf16 on a CPU
    that computes it natively. On AVX2-only CPUs oneDNN emulates bf16 (measured: a Unet step
    20x slower than fp32), so `auto` trains those in fp32 and says so once."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    cpu_amp = CpuAmp(cpu_amp)
    if cpu_amp is CpuAmp.bf16 or (cpu_amp is CpuAmp.auto and cpu_has_native_bf16()):
        return torch.bfloat16
    if cpu_amp is CpuAmp.auto:
        _warn_no_bf16()
    return None


@cache
def _warn_no_bf16() -> None:
    log.warning("this CPU (%s) has no native bf16: training in fp32, which is far faster here than "
                "emulated bf16 (trainer.cpu_amp=bf16 forces bf16)", torch.backends.cpu.get_cpu_capability())


def precision_name(dtype: torch.dtype | None) -> str:
    return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"trainer.device={device} but CUDA is not available; use trainer.device=auto or cpu")
    return torch.device(device)


def available_cpus() -> int:
    """CPUs this process may use: SLURM's grant and the affinity mask, not the node's total."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        affinity = os.cpu_count() or 1
    return min(int(slurm), affinity) if slurm else affinity


def cpu_share() -> int:
    """The CPUs granted, shared evenly by the local jobs the sweeper started side by side."""
    jobs = int(os.environ.get(CONCURRENT_JOBS_ENV, "1"))
    return max(1, available_cpus() // max(1, jobs))


def resolve_threads(threads: int | str) -> int:
    """auto: this job's share of the CPUs."""
    return cpu_share() if threads == "auto" else int(threads)


def resolve_workers(workers: int | str, device: torch.device) -> int:
    """auto: on GPU, all of this job's CPUs but one feed the loader; on CPU the model needs the cores."""
    if workers != "auto":
        return int(workers)
    return min(8, max(0, cpu_share() - 1)) if device.type == "cuda" else 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux >= 4.0: "5" resets the VmHWM peak-RSS watermark of this process
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def peak_memory_mb(device: torch.device) -> float:
    """Peak since the last reset: max_memory_allocated on GPU, the process peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
