"""`seg58 bench` runs end to end at a tiny size and reports every figure (no timing asserts)."""

import json

from conftest import mlflow_runs

KEYS = ["compute_imgs_per_s", "end_to_end_imgs_per_s", "end_to_end_ratio", "data_imgs_per_s",
        "data_imgs_per_s_per_core", "pixel_bytes", "preload_rss_bytes", "preload_rss_ratio",
        "worker_growth_bytes", "launch_to_first_step_s", "peak_mem_mb"]


def test_bench_smoke_writes_json_table_and_mlflow(cli, tmp_path):
    out_json = tmp_path / "bench-result.json"
    res = cli("bench", "experiment=smoke", "bench.warmup=1", "bench.steps=2", "bench.epochs=1",
              "bench.data_batches=3", "bench.memory_workers=1", f"bench.json={out_json}",
              "data.split=leave_one_material_out", "data.split_holdout=Canvas")
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(out_json.read_text())
    for key in KEYS:
        assert isinstance(result[key], (int, float)) and result[key] >= 0, key
    assert result["compute_imgs_per_s"] > 0 and result["pixel_bytes"] > 0
    assert result["model"] == "Unet/tu-test_resnet"
    # the configured split protocol, not a random split: 12 smoke images, 3 of them Canvas
    assert result["split"] == "leave_one_material_out, held out: Canvas" and result["train_images"] == 9
    for line in ("1 compute-only", "2 end-to-end", "3 data pipeline", "4 pre-load RSS", "5 launch"):
        assert line in res.stdout
    (run,) = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "bench")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["bench/compute_imgs_per_s"] == result["compute_imgs_per_s"]
    assert "train/loss" in run.data.metrics  # the end-to-end epoch went through the real logging
