"""hydra.sweeper.keep_checkpoints: what each cell keeps on disk as the sweep goes (real files, seg58's
own layout from its SweepHooks). The end-to-end checks are in the search-outcomes test
(tests/sweep/test_search.py) and the SLURM requeue test (tests/sweep/test_slurm.py)."""

from __future__ import annotations

from pathlib import Path

from seg58.commands.sweep_hooks import SegmentationSweepHooks
from seg58.sweep.retention import Retention

HOOKS = SegmentationSweepHooks()


def cell(tmp: Path, num: int, status: str, objective: float | None = None, best: bool = True) -> dict:
    folder = tmp / str(num) / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"L" * (100 + num))
    if best:
        (folder / "best.pt").write_bytes(b"B" * (10 + num))
    return {"num": num, "status": status, "objective": objective, "output_dir": str(tmp / str(num))}


def kept(tmp: Path) -> dict[int, list[str]]:
    """{cell: its checkpoint files} of what is on disk."""
    files: dict[int, list[str]] = {}
    for path in sorted(tmp.glob("*/checkpoints/*.pt")):
        files.setdefault(int(path.parent.parent.name), []).append(path.name)
    return files


def test_finished_cells_keep_only_a_top_k_best_and_the_resumable_keep_everything(tmp_path):
    retention = Retention(2, "maximize", HOOKS.checkpoints)
    cells = [cell(tmp_path, 0, "COMPLETED", 0.5), cell(tmp_path, 1, "PRUNED", 0.4),
             cell(tmp_path, 2, "FAILED", best=False), cell(tmp_path, 3, "RUNNING"),
             cell(tmp_path, 4, "COMPLETED", 0.7), cell(tmp_path, 5, "COMPLETED", 0.6),
             cell(tmp_path, 6, "COMPLETED", 0.8), cell(tmp_path, 7, "INTERRUPTED"), cell(tmp_path, 8, "CANCELLED")]
    for c in cells:
        if c["status"] != "RUNNING":
            retention.ended(c)
    assert kept(tmp_path) == {3: ["best.pt", "last.pt"], 4: ["best.pt"], 6: ["best.pt"],
                              7: ["best.pt", "last.pt"], 8: ["best.pt", "last.pt"]}
    # every last.pt of 0, 1, 2, 4, 5, 6; the best.pt of 0 (pushed out by 5), 1 and 5 (pushed out by 6)
    assert retention.freed == sum(100 + n for n in (0, 1, 2, 4, 5, 6)) + sum(10 + n for n in (0, 1, 5))
    # a resume applies the rule to what is there: nothing more to free
    again = Retention(2, "maximize", HOOKS.checkpoints)
    again.start(cells)
    assert again.freed == 0 and [t[1] for t in again.top] == [6, 4]


def test_a_minimized_objective_keeps_the_lowest_and_null_keeps_everything(tmp_path):
    low = Retention(1, ["minimize", "maximize"], HOOKS.checkpoints)  # a Pareto search: its first objective
    for c in [cell(tmp_path, 0, "COMPLETED", [0.3, 1.0]), cell(tmp_path, 1, "COMPLETED", [0.1, 0.0])]:
        low.ended(c)
    assert kept(tmp_path) == {1: ["best.pt"]}
    keep_all = Retention(None, "maximize", HOOKS.checkpoints)
    c = cell(tmp_path, 2, "FAILED")
    assert keep_all.ended(c) == 0 and kept(tmp_path)[2] == ["best.pt", "last.pt"]
