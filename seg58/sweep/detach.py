"""Submit-and-return (hydra#2479, #1847: login nodes kill long processes): the sweep itself runs
as a small SLURM job, the driver, which submits the cells, reports each as it ends, applies
max_failures and closes the sweep, exactly as an attached sweep would. The command that
submitted it prints where to look and exits 0; `seg58 status` / `seg58 collect` take over."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from seg58.base.names import DRIVER_FILE

log = logging.getLogger(__name__)

NOT_REPEATED = ("hydra.launcher.detach=", "hydra.sweep.dir=", "hydra.mode=")


def driver_command(config: Any, sweep_dir: Path, program: list[str]) -> list[str]:
    """The same sweep, attached, into the same (absolute) folder."""
    hc = config.hydra
    command = [*program, "-m"]
    if hc.job.config_name and hc.job.config_name != "config":
        command += ["--config-name", hc.job.config_name]
    hydra_overrides = [o for o in hc.overrides.hydra if not o.startswith(NOT_REPEATED)]
    return [*command, *hc.overrides.task, *hydra_overrides, f"hydra.sweep.dir={sweep_dir}",
            "hydra.launcher.detach=false"]


def detach(config: Any, launcher: Any, book: Any) -> list:
    sweep_dir = book.sweep_dir.resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    command = driver_command(config, sweep_dir, book.hooks.program(config))
    job = launcher.submit_driver(command, sweep_dir)
    record = {"job_id": job.job_id, "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr),
              "submitit_folder": str(job.paths.folder), "command": command, "submitted_at": time.time()}
    (sweep_dir / DRIVER_FILE).write_text(json.dumps(record, indent=2))
    print(f"submitted the sweep as SLURM job {job.job_id} (the driver; it submits the cells and closes the sweep)\n"
          f"  sweep folder: {sweep_dir}\n"
          f"  watch:        seg58 status {sweep_dir}\n"
          f"  results:      seg58 collect {sweep_dir} --wait\n"
          f"  driver log:   {job.paths.stdout}\n"
          f"  stop it:      scancel {job.job_id}   (then `seg58 collect` closes what ran)", flush=True)
    return []


def load_driver(sweep_dir: Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / DRIVER_FILE
    return json.loads(path.read_text()) if path.is_file() else None
