"""System metrics of one MLflow run through MLflow's own monitor, restricted to the job's own GPUs.

MLflow's SystemMetricsMonitor samples CPU/RAM/disk/network (psutil) and, with NVML (nvidia-ml-py),
GPUs in a daemon thread and logs them as `system/*` metrics to a given run and tracking URI. Its
GPUMonitor walks every GPU of the node (mlflow#13398): on a SLURM node shared by several jobs
that reports the neighbours' GPUs. JobGPUMonitor watches only those in CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0  # a preempted job has a short grace period; never wait longer on the sampler


def visible_gpu_indices(cuda_visible_devices: str | None, uuids: Sequence[str]) -> list[int]:
    """NVML indices of the GPUs this process may use, in CUDA's order (so gpu_0 is cuda:0).

    `uuids` are the NVML devices' UUIDs, index order (their count is the device count). Follows
    CUDA's reading of CUDA_VISIBLE_DEVICES: unset means every device, "" none; entries are indices
    or (unique prefixes of) "GPU-..." UUIDs, and the first invalid entry ends the list. MIG slices
    ("MIG-...") are not watched: NVML has no utilisation for them and the parent GPU is shared.
    """
    if cuda_visible_devices is None:
        return list(range(len(uuids)))
    out: list[int] = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        if entry.upper().startswith("MIG-"):
            continue
        if entry.isdigit():
            index = int(entry)
            if index >= len(uuids):
                break
        elif entry.upper().startswith("GPU-"):
            matches = [i for i, u in enumerate(uuids) if u.lower().startswith(entry.lower())]
            if len(matches) != 1:  # unknown or ambiguous
                break
            index = matches[0]
        else:
            break
        if index not in out:
            out.append(index)
    return out


class JobGPUMonitor(GPUMonitor):
    """MLflow's GPUMonitor over the job's own GPUs only; metric names keep MLflow's gpu_<i>_*,
    with i the job's CUDA index."""

    def __init__(self, cuda_visible_devices: str | None = None):
        super().__init__()  # raises without nvidia-ml-py or NVML (no driver, no GPU)
        import pynvml

        uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in self.gpu_handles]
        self.nvml_indices = visible_gpu_indices(cuda_visible_devices, uuids)
        self.uuids = [uuids[i] for i in self.nvml_indices]
        self.gpu_handles = [self.gpu_handles[i] for i in self.nvml_indices]
        self.num_gpus = len(self.gpu_handles)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class JobSystemMetricsMonitor(SystemMetricsMonitor):
    """MLflow's monitor with JobGPUMonitor plugged in, and a stop that cannot hang a job."""

    def _initialize_gpu_monitor(self) -> JobGPUMonitor | None:
        # No ROCm fallback: MLflow's ROCMMonitor would report every AMD GPU of the node again.
        try:
            gpus = JobGPUMonitor(os.environ.get("CUDA_VISIBLE_DEVICES"))
        except Exception as e:
            log.debug("system metrics: no GPU metrics (%s: %s)", type(e).__name__, e)
            return None
        return gpus if gpus.gpu_handles else None

    @property
    def gpu_uuids(self) -> list[str]:
        return [u for m in self.monitors if isinstance(m, JobGPUMonitor) for u in m.uuids]

    def finish(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """MLflow's finish() joins the sampler without a limit; one stuck on retries to a down
        server must not hold a failing or preempted job, so give up after `timeout`."""
        if self._process is not None:
            self._shutdown_event.set()
            self._process.join(timeout)
            if self._process.is_alive():
                log.warning("system metrics: sampler still busy after %.0f s; left behind", timeout)
                self._process = None
                return
        super().finish()


def start_monitor(run_id: str, tracking_uri: str, interval_s: float, resume: bool) -> JobSystemMetricsMonitor:
    """Start sampling for `run_id` at `tracking_uri` (no fluent run needed); `resume` continues the
    step count of a restarted run. MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL, if set, wins over interval_s."""
    monitor = JobSystemMetricsMonitor(run_id, sampling_interval=interval_s, resume_logging=resume,
                                      tracking_uri=tracking_uri)
    monitor.start()
    return monitor
