"""The sweep on a real SLURM cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd on localhost),
started by the project's own scripts (fixtures `slurm_conf` and `slurm`: tests/cluster_fixtures.py).
CI installs the Debian packages and sets SEG58_REQUIRE_SLURM=1, so there these tests run or fail,
never skip."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PRUNING_SEARCH, REPO, mlflow_runs, wait_for
from inproc import run_seg58
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]  # pytest-xdist: one worker, one cluster

SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]


# the toy app (tests/apps/toy) on the local cluster: one CPU, 1 GB, no GPU each
TOY_ON_SLURM = ["hydra/launcher=seg58_slurm", "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1",
                "hydra.launcher.mem_gb=1", "hydra.launcher.gpus_per_node=0", "hydra.launcher.timeout_min=10"]


def slurm_cmd(env, *args: str) -> str:
    return subprocess.run(args, env=env, capture_output=True, text=True, check=True, timeout=30).stdout


def summary(tmp_path: Path) -> list[dict]:
    (path,) = tmp_path.glob("multirun/*/*/sweep_summary.json")
    return json.loads(path.read_text())["cells"]


def sacct_states(env, job_id: str) -> list[str]:
    out = slurm_cmd(env, "sacct", "-n", "-P", "-D", "-X", "-j", job_id, "-o", "State")
    return [line.split()[0] for line in out.splitlines() if line.strip()]  # "CANCELLED by 0" -> CANCELLED


ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUE_HOLD"}


def ended_states(env, job_id: str, timeout: float = 60) -> list[str]:
    """The job's accounting states once slurmdbd has its end: slurmctld sends it there asynchronously,
    so right after the sweep saw the job's result sacct may still say RUNNING (or nothing)."""
    def ended():
        states = sacct_states(env, job_id)
        return states if states and states[-1] not in ACTIVE else None
    try:
        return wait_for(ended, timeout, f"job {job_id}'s end in accounting")
    except AssertionError:
        return sacct_states(env, job_id)  # the caller's assertion shows what was there


def test_card_sweep_fans_out_as_one_slurm_job_per_cell(slurm, tmp_path):
    env, run, _ = slurm
    rc, out = run(*SMOKE, "encoder.name=tu-test_resnet,tu-test_convnext")
    assert rc == 0, out[-3000:]
    cells = summary(tmp_path)
    assert [c["status"] for c in cells] == ["COMPLETED"] * 2
    for c in cells:
        assert ended_states(env, c["job_id"]) == ["COMPLETED"]
    # each cell was reported as it ended, with its SLURM id, objective and time
    ended = re.findall(r"\[(\d)/2 ended\]\s+#(\d) COMPLETED\s+slurm=(\S+) objective=[\d.]+ epochs=1 in \dm\d\ds", out)
    assert sorted(n for _, n, _ in ended) == ["0", "1"] and [k for k, _, _ in ended] == ["1", "2"]
    assert {j for _, _, j in ended} == {c["job_id"] for c in cells}
    # what each cell cost is what accounting billed: its CPUs x its elapsed time
    for c in cells:
        billed = slurm_cmd(env, "sacct", "-n", "-P", "-X", "-j", c["job_id"], "-o", "AllocCPUS,ElapsedRaw")
        cpus, elapsed = billed.strip().split("|")
        assert c["cost_source"] == "sacct" and c["cost/gpu_hours"] == 0
        assert c["cost/cpu_hours"] == pytest.approx(int(cpus) * int(elapsed) / 3600)
    runs = mlflow_runs(env["MLFLOW_TRACKING_URI"], "smoke")
    assert sorted(r.data.params["encoder.name"] for r in runs) == ["tu-test_convnext", "tu-test_resnet"]
    assert all(r.info.status == "FINISHED" for r in runs)
    # each job trained with the CPUs SLURM granted (1), not the node's
    logs = [p.read_text() for p in tmp_path.glob("multirun/*/*/[01]/seg58.log")]
    assert len(logs) == 2 and all("threads=1 " in log for log in logs)


def test_a_failing_cell_does_not_lose_the_others_and_can_be_rerun_alone(slurm, tmp_path):
    env, run, _ = slurm
    # trainer.device=cuda passes the config checks (a login node may lack GPUs) but the job fails
    rc, out = run(*SMOKE, "trainer.device=cpu,cuda")
    assert rc != 0
    cells = summary(tmp_path)
    assert [(c["status"], c["overrides"][-1]) for c in cells] == [
        ("COMPLETED", "trainer.device=cpu"), ("FAILED", "trainer.device=cuda")]
    assert "1 of 2 sweep jobs did not complete" in out and "CUDA is not available" in out
    assert cells[1]["job_id"] in out and cells[1]["stderr"] in out
    (ok,) = [r for r in mlflow_runs(env["MLFLOW_TRACKING_URI"], "smoke") if r.info.status == "FINISHED"]
    assert ok.data.params["trainer.device"] == "cpu"

    (first,) = tmp_path.glob("multirun/*/*/sweep_summary.json")
    rc, out = run(f"hydra.sweeper.rerun={first.parent}")
    assert rc != 0, out[-3000:]  # the same cell fails again, and only that cell ran
    (rerun,) = [p for p in tmp_path.glob("multirun/*/*/sweep_summary.json") if p != first]
    cells = json.loads(rerun.read_text())["cells"]
    assert len(cells) == 1 and cells[0]["overrides"][-1] == "trainer.device=cuda"


def test_preempted_job_requeues_and_resumes_into_the_same_mlflow_run(slurm, tmp_path):
    env, _, start = slurm
    epochs = 12
    proc = start(*SMOKE, "data.synthetic.n_images=24", f"trainer.epochs={epochs}")
    last = wait_for(lambda: next(tmp_path.glob("multirun/*/*/0/checkpoints/last.pt"), None), 120, "a checkpoint")
    job_id = wait_for(lambda: slurm_cmd(env, "squeue", "-h", "-o", "%i").strip(), 10, "the job id")
    # what SLURM sends before preemption/timeout: submitit checkpoints and requeues the job
    slurm_cmd(env, "scancel", "--signal=USR2", job_id)
    wait_for(lambda: "PD" in slurm_cmd(env, "squeue", "-h", "-j", job_id, "-o", "%t"), 30, "the requeue")
    slurm_cmd(env, "scontrol", "update", f"JobId={job_id}", "StartTime=now")  # skip SLURM's 120 s delay
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-3000:]
    assert ended_states(env, job_id) == ["REQUEUED", "COMPLETED"]
    log = (last.parent.parent / "seg58.log").read_text()
    assert "resumed from" in log
    # the requeue kept last.pt to resume from; once the cell completed only its best.pt is left
    assert sorted(p.name for p in last.parent.glob("*.pt")) == ["best.pt"]
    (run,) = mlflow_runs(env["MLFLOW_TRACKING_URI"], "smoke")
    assert run.info.status == "FINISHED"
    steps = [m.step for m in MlflowClient(env["MLFLOW_TRACKING_URI"]).get_metric_history(run.info.run_id, "train/loss")]
    assert sorted(steps) == list(range(epochs))  # every epoch exactly once


def test_cancelled_job_is_reported_and_the_sweep_returns(slurm, tmp_path):
    env, _, start = slurm
    proc = start(*SMOKE, "data.synthetic.n_images=40", "trainer.epochs=1,400")
    wait_for(lambda: next(tmp_path.glob("multirun/*/*/1/checkpoints/last.pt"), None), 120, "job 1 training")
    job_id = wait_for(lambda: slurm_cmd(env, "squeue", "-h", "-t", "R", "-o", "%i").split(), 10, "running job")
    slurm_cmd(env, "scancel", job_id[-1])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    cells = summary(tmp_path)
    assert [c["status"] for c in cells] == ["COMPLETED", "CANCELLED"]
    assert "CANCELLED" in out and cells[1]["job_id"] in out
    runs = {r.data.params["trainer.epochs"]: r for r in mlflow_runs(env["MLFLOW_TRACKING_URI"], "smoke")}
    assert runs["1"].info.status == "FINISHED"
    assert runs["400"].info.status == "KILLED" and runs["400"].data.tags["slurm.state"] == "CANCELLED"


def test_search_prunes_through_slurm_with_trials_in_flight(slurm, tmp_path):
    env, run, _ = slurm
    rc, out = run(*SMOKE, *PRUNING_SEARCH, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", timeout=400)
    assert rc == 0, out[-3000:]
    cells = {c["params"]["trainer.epochs"]: c for c in summary(tmp_path)}
    assert cells[1]["status"] == "COMPLETED" and cells[3]["status"] == "PRUNED"
    assert cells[3]["epochs_trained"] == 2
    for c in cells.values():  # a pruned trial is a job that ended normally
        assert ended_states(env, c["job_id"]) == ["COMPLETED"]
    runs = {r.data.tags["search.trial"]: r for r in mlflow_runs(env["MLFLOW_TRACKING_URI"], "smoke")}
    assert runs[str(cells[3]["num"])].data.tags["stop.epoch"] == "2"
    assert runs[str(cells[1]["num"])].info.status == "FINISHED"
    from seg58.sweep.study import StudySpec

    (state,) = tmp_path.glob("multirun/*/*/search.json")
    study = StudySpec(**json.loads(state.read_text())["study"]).load()
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "PRUNED"]


def test_max_failures_cancels_queued_and_running_slurm_jobs(slurm, tmp_path):
    env, run, _ = slurm
    # 2 CPUs, 1 per job: #0 fails at once (no CUDA), #1 is training, #2 waits in the queue
    rc, out = run(*SMOKE, "data.synthetic.n_images=40", "trainer.epochs=400", "trainer.device=cuda,cpu,cpu",
                  "hydra.sweeper.max_failures=1")
    assert rc != 0
    cells = summary(tmp_path)
    assert [c["status"] for c in cells] == ["FAILED", "CANCELLED", "CANCELLED"]
    assert "hydra.sweeper.max_failures=1 reached" in out
    for c in cells[1:]:  # accounting is written asynchronously (slurmdbd; a queued array task can take a while)
        wait_for(lambda c=c: sacct_states(env, c["job_id"]) == ["CANCELLED"], 120, f"{c['job_id']} CANCELLED")
    for r in mlflow_runs(env["MLFLOW_TRACKING_URI"], "smoke"):  # whatever had started is closed
        assert r.info.status in ("KILLED", "FAILED")


def test_detached_sweep_returns_at_once_and_collect_finishes_it_after_the_driver_is_gone(slurm, tmp_path):
    env, run, _ = slurm
    rc, out = run(*SMOKE, "data.synthetic.n_images=40", "trainer.epochs=1,8", "hydra.launcher.detach=true",
                  timeout=60)
    assert rc == 0, out[-3000:]
    driver = re.search(r"submitted the sweep as SLURM job (\d+)", out).group(1)
    sweep_dir = re.search(r"sweep folder: (\S+)", out).group(1)

    def seg58(*args: str) -> subprocess.CompletedProcess:
        return run_seg58(list(args), tmp_path, env)

    def cells_submitted():
        path = Path(sweep_dir) / "sweep_summary.json"
        cells = json.loads(path.read_text())["cells"] if path.is_file() else []
        return len(cells) == 2 and all(c.get("job_id") for c in cells)

    wait_for(cells_submitted, 120, "the driver to submit both cells")
    status = seg58("status", sweep_dir)
    assert status.returncode == 0, status.stderr
    assert f"driver: SLURM job {driver} RUNNING" in status.stdout and "trainer.epochs=8" in status.stdout
    slurm_cmd(env, "scancel", driver)  # the driver dies (a login session would not); its cells run on
    wait_for(lambda: sacct_states(env, driver) == ["CANCELLED"], 60, "the driver to end")

    def collect_once_the_driver_is_gone():  # accounting may say CANCELLED while its process still exits
        res = seg58("collect", sweep_dir)
        return None if "is being driven by a live sweep" in res.stderr else res

    early = wait_for(collect_once_the_driver_is_gone, 60, "the driver's process to end")
    assert early.returncode == 3 and "still running" in early.stdout, early.stdout + early.stderr
    done = seg58("collect", sweep_dir, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all completed" in done.stdout and "leaderboard" in done.stdout
    cells = json.loads((Path(sweep_dir) / "sweep_summary.json").read_text())["cells"]
    assert [c["status"] for c in cells] == ["COMPLETED", "COMPLETED"]
    # collect did what the driver would have: the billed cost, and only each cell's best.pt kept
    assert cells[1]["cost_source"] == "sacct"  # the 8-epoch cell, collected after the driver died
    assert [sorted(p.name for p in Path(c["output_dir"]).glob("checkpoints/*.pt")) for c in cells] == [["best.pt"]] * 2
    runs = mlflow_runs(env["MLFLOW_TRACKING_URI"], "smoke", include_sweeps=True)
    (parent,) = [r for r in runs if r.data.tags.get("seg58.sweep") == "true"]
    assert parent.info.status == "FINISHED" and parent.data.tags["best.run"]
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3
    again = seg58("collect", sweep_dir)  # idempotent
    assert again.returncode == 0, again.stdout + again.stderr


def test_detached_search_runs_under_its_driver(slurm, tmp_path):
    env, run, _ = slurm
    rc, out = run(*SMOKE, *PRUNING_SEARCH, "hydra.sweeper.n_trials=2", "hydra.launcher.detach=true", timeout=60)
    assert rc == 0, out[-3000:]
    driver = re.search(r"submitted the sweep as SLURM job (\d+)", out).group(1)
    sweep_dir = Path(re.search(r"sweep folder: (\S+)", out).group(1))
    done = run_seg58(["collect", str(sweep_dir), "--wait"], tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ended_states(env, driver) == ["COMPLETED"]
    cells = json.loads((sweep_dir / "sweep_summary.json").read_text())["cells"]
    cells = {c["params"]["trainer.epochs"]: c for c in cells}
    assert cells[1]["status"] == "COMPLETED" and cells[3]["status"] == "PRUNED"
    from seg58.sweep.study import StudySpec

    study = StudySpec(**json.loads((sweep_dir / "search.json").read_text())["study"]).load()
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "PRUNED"]


def test_a_cross_validation_fans_out_one_slurm_job_per_fold(slurm, tmp_path):
    env, run, _ = slurm
    rc, out = run("experiment=smoke", "data.split=kfold", "data.folds=2", "data.split_holdout=all",
                  "tracking=none")
    assert rc == 0, out[-3000:]
    cells = summary(tmp_path)
    assert [c["overrides"][-1] for c in cells] == ["data.split_holdout=0", "data.split_holdout=1"]
    assert [ended_states(env, c["job_id"]) for c in cells] == [["COMPLETED"], ["COMPLETED"]]
    (path,) = tmp_path.glob("multirun/*/*/sweep_summary.json")
    (group,) = json.loads(path.read_text())["cross_validation"]
    assert group["folds"] == {"0": cells[0]["objective"], "1": cells[1]["objective"]}
    assert "cross-validation of val/miou: mean ± std over folds" in out


def test_a_grid_larger_than_max_array_size_goes_out_as_several_throttled_arrays(slurm_conf, tmp_path):
    """12 cells on a cluster whose MaxArraySize is 5 (tests/cluster_fixtures.py; the launcher reads it
    from `scontrol show config`): arrays of 5, 5 and 2, each with the array_parallelism throttle;
    every cell completes. A plain Hydra app."""
    folder = tmp_path / "toy"
    shutil.copytree(REPO / "tests/apps/toy", folder)
    env = {**os.environ, "SLURM_CONF": slurm_conf, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run(
        [sys.executable, "app.py", "-m", *TOY_ON_SLURM, "hydra.launcher.array_parallelism=2", "x=range(0,12)"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    (path,) = folder.glob("multirun/*/sweep_summary.json")
    cells = json.loads(path.read_text())["cells"]
    assert [c["status"] for c in cells] == ["COMPLETED"] * 12
    arrays = [c["job_id"].split("_")[0] for c in cells]
    assert [arrays.count(a) for a in dict.fromkeys(arrays)] == [5, 5, 2]
    log = out.stdout + out.stderr  # a plain Hydra app logs to stdout
    assert "submitted cells #0-#4 as SLURM array" in log and "#10-#11" in log
    scripts = list(path.parent.rglob("*_submission.sh"))
    throttles = sorted(re.search(r"#SBATCH --array=(\S+)", p.read_text()).group(1) for p in scripts)
    assert throttles == ["0-1%2", "0-4%2", "0-4%2"]


def held_toy(slurm_conf: str, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """(a copy of the toy app, the file its cells wait on while it exists, the env for the cluster)."""
    folder = tmp_path / "toy"
    shutil.copytree(REPO / "tests/apps/toy", folder)
    hold = tmp_path / "hold"
    hold.touch()
    return folder, hold, {**os.environ, "SLURM_CONF": slurm_conf, "PYTHONUNBUFFERED": "1"}


def test_ctrl_c_cancels_the_sweeps_own_slurm_jobs(slurm_conf, tmp_path):
    folder, hold, env = held_toy(slurm_conf, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "app.py", "-m", *TOY_ON_SLURM, "x=0,1,2", f"hold_while={hold}", "hydra.sweep.dir=multirun/s"],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sweep_dir = folder / "multirun/s"

    def submitted() -> list[str]:
        from seg58.sweep.ledger import Ledger

        if not (sweep_dir / "sweep_summary.json").is_file():
            return []
        ids = [c.get("job_id") for c in Ledger.read(sweep_dir)[0].cells]
        return ids if all(ids) else []

    ids = wait_for(submitted, 120, "three SLURM jobs")
    wait_for(lambda: "RUNNING" in slurm_cmd(env, "squeue", "-h", "-o", "%T"), 60, "a job running")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130 and "Traceback" not in out, out[-3000:]
    assert "hydra.sweeper.resume=" in out
    summary_cells = json.loads((sweep_dir / "sweep_summary.json").read_text())["cells"]
    assert [c["status"] for c in summary_cells] == ["INTERRUPTED"] * 3
    for job_id in ids:
        wait_for(lambda j=job_id: sacct_states(env, j) == ["CANCELLED"], 120, f"{job_id} CANCELLED")
    wait_for(lambda: slurm_cmd(env, "squeue", "-h").strip() == "", 60, "an empty queue")  # past COMPLETING


def test_a_spent_wall_time_budget_cancels_the_sweeps_slurm_jobs_and_submits_no_more(slurm_conf, tmp_path):
    """Cells that would run forever, two at a time (max_batch_size): at 15 s of the sweep's wall time
    the third is never submitted and, with on_exhausted=cancel, the two are scancelled; the sweep ends
    cleanly (a budget stop is no failure) with nothing left in the queue."""
    folder, hold, env = held_toy(slurm_conf, tmp_path)
    out = subprocess.run(
        [sys.executable, "app.py", "-m", *TOY_ON_SLURM, "x=0,1,2", f"hold_while={hold}", "hydra.sweep.dir=multirun/s",
         "hydra.sweeper.max_batch_size=2", "hydra.sweeper.budget.wall_time=15s",
         "hydra.sweeper.budget.on_exhausted=cancel"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0 and "Traceback" not in log, log[-3000:]
    summary = json.loads((folder / "multirun/s/sweep_summary.json").read_text())
    assert [c["status"] for c in summary["cells"]] == ["CANCELLED"] * 3 and summary["stop"]["kind"] == "budget"
    assert [c.get("stopped_by") for c in summary["cells"]] == ["budget"] * 3
    assert "job_id" not in summary["cells"][2]  # never submitted
    for job_id in [c["job_id"] for c in summary["cells"][:2]]:
        wait_for(lambda j=job_id: sacct_states(env, j) == ["CANCELLED"], 120, f"{job_id} CANCELLED")
    wait_for(lambda: slurm_cmd(env, "squeue", "-h").strip() == "", 60, "an empty queue")  # past COMPLETING
