"""The launcher classes Hydra discovers (`hydra/launcher=seg58_slurm|seg58_local`):
hydra-submitit-launcher's, with seg58.sweep.launchers' job handling mixed in."""

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
from seg58.sweep.launchers import LocalGpuJobs, SlurmDriverJobs


class Seg58SlurmLauncher(SlurmDriverJobs, SlurmLauncher):
    """One SLURM job per cell, submitted without waiting; optionally the sweep as a driver job."""


class Seg58LocalLauncher(LocalGpuJobs, LocalLauncher):
    """Local subprocesses side by side, one per GPU when there are GPUs."""
