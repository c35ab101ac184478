"""`hydra.sweeper.dry_run=true` (issue #18): every cell checked, the count, the first cells, the
refused ones and the resources printed; nothing launched, no folder made, nothing in MLflow."""

from __future__ import annotations

NO_CLUSTER_QUERY = ["hydra.launcher.max_array_size=500", "hydra.launcher.max_queued=2000"]


def test_a_grid_dry_run_lists_cells_refuses_bad_ones_and_writes_nothing(cli, tmp_path):
    res = cli("-m", "experiment=smoke", "seed=range(0,1200)", "trainer.epochs=1,0", "hydra.sweeper.dry_run=true",
              "launcher=slurm", *NO_CLUSTER_QUERY)
    assert res.returncode == 2, res.stderr[-3000:]
    out = res.stdout + res.stderr
    assert "dry run: a grid of 2400 cell(s):" in out
    assert "#0 experiment=smoke seed=0 trainer.epochs=1 launcher=slurm" in out and "... and 2390 more" in out
    assert "2400 SLURM array task(s) in 5 array(s) of at most 500" in out and "at most 2000 queued" in out
    assert "1 GPU(s), 10 CPU(s), 48 GB, 1440 min limit" in out and "57,600 GPU-hours" in out
    assert "1200 of 2400 cell(s) would be refused" in out  # and every one named:
    assert "[experiment=smoke seed=1199 trainer.epochs=0 launcher=slurm] trainer.epochs=0 must be > 0" in out
    assert "Traceback" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no multirun/, no mlflow.db


def test_a_search_dry_run_checks_a_sample_of_its_space(cli, tmp_path):
    res = cli("-m", "experiment=smoke", "optim.lr=interval(1e-4,1e-2)", "trainer.epochs=choice(1,0)",
              "hydra.sweeper.n_trials=30", "hydra.sweeper.dry_run=true")
    out = res.stdout + res.stderr
    assert "dry run: a search of 30 trial(s), 1 at a time; 10 configuration(s) drawn from its space" in out
    assert "optim.lr=" in out and "resources: one cell at a time, in this process" in out
    assert res.returncode == 2, out[-3000:]
    assert "of 10 cell(s) would be refused" in out and "trainer.epochs=0 must be > 0" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == []
