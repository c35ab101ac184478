"""Each private Hydra or submitit API behind seg58/sweep/private_apis.py, exercised on a small input
and its result checked: a release that changes one fails here, by name, rather than deep inside a
sweep. pyproject.toml states the versions these pass with."""

from __future__ import annotations

import submitit
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from seg58.sweep.private_apis import apply_overrides, inner_executor, sweep_cells


def parsed(*lines: str) -> list:
    return OverridesParser.create().parse_overrides(list(lines))


def test_sweep_cells_is_the_cartesian_product_in_hydras_order():
    cells = sweep_cells(parsed("a=1,2", "b=x", "c=range(0,2)", "+d=q"))
    assert cells == [["a=1", "b=x", "c=0", "+d=q"], ["a=1", "b=x", "c=1", "+d=q"],
                     ["a=2", "b=x", "c=0", "+d=q"], ["a=2", "b=x", "c=1", "+d=q"]]
    assert sweep_cells(parsed()) == [[]]


def test_apply_overrides_sets_adds_and_deletes_in_place():
    cfg = OmegaConf.create({"a": 1, "b": {"c": 2, "e": "${a}"}})
    apply_overrides(parsed("b.c=5", "+d=[1,2]", "~a", "b.e=3"), cfg)
    assert OmegaConf.to_container(cfg) == {"b": {"c": 5, "e": 3}, "d": [1, 2]}


def test_inner_executor_takes_local_visible_gpus(tmp_path):
    executor = submitit.AutoExecutor(cluster="local", folder=str(tmp_path))
    inner = inner_executor(executor)
    assert isinstance(inner, submitit.LocalExecutor)
    inner.update_parameters(visible_gpus=[3], gpus_per_node=1)
    assert inner.parameters["visible_gpus"] == [3]
    assert inner.parameters["gpus_per_node"] == 1


def test_a_cancelled_job_is_collected_without_waiting_for_a_result(tmp_path):
    import time

    from seg58.sweep.private_apis import expect_no_result

    executor = submitit.AutoExecutor(cluster="local", folder=str(tmp_path))
    job = executor.submit(time.sleep, 60)
    expect_no_result(job)
    job.cancel(check=False)
    t0 = time.monotonic()
    try:
        job.results()
    except Exception:  # no result: as a cancelled job's collection expects
        pass
    assert time.monotonic() - t0 < 10  # submitit's own wait is 15 s
