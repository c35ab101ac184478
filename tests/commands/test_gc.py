"""`seg58 gc` on a copy of the shared 2-cell sweep (tests/trained.py), whose best run the sweep
registered: a dry run changes nothing and names what the real run then frees; the registered
run's artifacts are never touched; a sweep being driven is refused."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient
from trained import writable_copy

from seg58.sweep.retention import format_bytes


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()
            and p.name != "mlflow.db" and "-journal" not in p.name}


def mlflow_artifacts(uri: str, run_id: str) -> tuple[list[str], list[str]]:
    """(the run's checkpoint artifacts, the ids of the models it logged and that are not deleted)."""
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'")
    return [a.path for a in client.list_artifacts(run_id, "checkpoints")], [m.model_id for m in models]


def test_gc_dry_run_changes_nothing_then_frees_what_it_said_and_leaves_the_registered_run(cli, tmp_path, smoke_sweep):
    sweep = writable_copy(smoke_sweep, tmp_path / "copy")
    registered = {v.run_id for v in MlflowClient(sweep.uri).search_model_versions("name='seg58-test'")}
    (kept_run,) = registered
    (other,) = [r for r in sweep.run_ids if r != kept_run]
    before = files_under(sweep.root), {r: mlflow_artifacts(sweep.uri, r) for r in sweep.run_ids}
    assert before[1][other][0] == ["checkpoints/best.pt"] and before[1][other][1]  # a checkpoint and a model

    dry = cli("gc", str(sweep.sweep_dir), "--keep", "0", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert (files_under(sweep.root), {r: mlflow_artifacts(sweep.uri, r) for r in sweep.run_ids}) == before
    assert "dry run, nothing deleted: would free" in dry.stdout
    assert "1 run(s) with a registered model left alone" in dry.stdout

    done = cli("gc", str(sweep.sweep_dir), "--keep", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.replace("freed\n", "") == dry.stdout.replace("dry run, nothing deleted: would free\n", "")
    after = files_under(sweep.root)
    gone = {p: size for p, size in before[0].items() if p not in after}
    local = {p: size for p, size in gone.items() if (sweep.root / p).is_relative_to(sweep.sweep_dir)}
    assert sorted(Path(p).name for p in local) == ["best.pt", "best.pt"]  # both cells' checkpoints (keep 0)
    assert len(gone) > len(local)  # and the other run's MLflow files, from the store's folder too
    assert f"local checkpoints: {format_bytes(sum(local.values()))}" in done.stdout
    assert mlflow_artifacts(sweep.uri, other) == ([], [])  # the other run: no checkpoint, no model
    assert mlflow_artifacts(sweep.uri, kept_run) == before[1][kept_run]  # the registered one: untouched
    assert MlflowClient(sweep.uri).get_run(other).data.metrics["val/miou"] >= 0  # metrics stay


def test_gc_refuses_a_sweep_being_driven(cli, tmp_path, smoke_sweep):
    from seg58.sweep.lock import DriverLock

    sweep = writable_copy(smoke_sweep, tmp_path / "copy")
    with DriverLock(sweep.sweep_dir, "a test holding the sweep"):
        res = cli("gc", str(sweep.sweep_dir))
    assert res.returncode == 2 and "is being driven by a live sweep" in res.stderr, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
