"""The best checkpoint as an MLflow Model (issue #13): loaded in a fresh process from the run's
artifacts alone, registered by a sweep and by `seg58 report --register`, evaluated by model URI
and served by `mlflow models serve`. The suite's shared 2-cell sweep feeds every test."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import free_port, mlflow_runs, stop_mlflow_server
from mlflow.tracking import MlflowClient
from PIL import Image
from trained import SWEEP_MODEL, writable_copy

from seg58.base.errors import CheckpointError, Seg58Error
from seg58.commands.report import main as report_main
from seg58.tracking.leaderboard import leaderboard
from seg58.tracking.model import register_best, tracking_uri

REPO = Path(__file__).resolve().parents[2]
NAME = SWEEP_MODEL
# two uint8 images of sizes the model never trained at (smoke trains at 64 px); (H, W)
SIZES = {"wide": (50, 70), "tall": (90, 41)}


def composed(*overrides: str):
    """The config `seg58 evaluate/predict <overrides>` would run with (in this process: no CLI start-up)."""
    from hydra import compose, initialize_config_dir

    from seg58.config.schema import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture
def in_sweep(sweep, monkeypatch):
    """This process where the CLI ran: the sweep's folder, store and data cache."""
    monkeypatch.chdir(sweep["root"])
    monkeypatch.setenv("SEG58_CACHE_DIR", str(sweep["cache"]))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep["uri"])
    return sweep


@pytest.fixture(scope="module")
def sweep(smoke_sweep, tmp_path_factory, cache_dir) -> dict:
    """The suite's shared 2-cell sweep (tests/trained.py), which registered its best model as
    seg58-test, copied for this module (its tests register more versions); runs and leaderboard."""
    copy = writable_copy(smoke_sweep, tmp_path_factory.mktemp("registry"))
    rows = leaderboard(MlflowClient(copy.uri), copy.parent)
    assert [r["status"] for r in rows] == ["FINISHED", "FINISHED"]
    images = copy.root / "images"
    images.mkdir()
    rng = np.random.default_rng(58)
    for stem, (h, w) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"{stem}.png")
    return {"root": copy.root, "uri": copy.uri, "dir": copy.sweep_dir, "parent": copy.parent,
            "best": rows[0]["run_id"], "rows": rows, "output": copy.output, "images": images, "cache": cache_dir}


FRESH = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    repo, model_uri, images, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != repo]  # seg58 only from the model
    import mlflow.pyfunc
    import numpy as np
    from PIL import Image
    model = mlflow.pyfunc.load_model(model_uri)
    import seg58
    for path in sorted(images.glob("*.png")):
        image = np.asarray(Image.open(path).convert("RGB"))
        np.save(out / f"{path.stem}.npy", model.predict(image[None])[0])
        if path.stem == "wide":  # a batch of two same-size images = the images one by one
            np.save(out / "batch.npy", model.predict(np.stack([image, image[::-1]])))
    print(json.dumps({"seg58": seg58.__file__}))
""")


@pytest.fixture(scope="module")
def fresh(sweep, tmp_path_factory) -> dict:
    """The best run's model loaded by `mlflow.pyfunc.load_model` in a new interpreter that cannot
    import the checkout: its masks for the two images."""
    out = tmp_path_factory.mktemp("fresh")
    env = {**os.environ, "MLFLOW_TRACKING_URI": sweep["uri"], "NO_ALBUMENTATIONS_UPDATE": "1"}
    res = subprocess.run([sys.executable, "-c", FRESH, str(REPO), f"runs:/{sweep['best']}/model",
                          str(sweep["images"]), str(out)], cwd=out, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return {"seg58": json.loads(res.stdout.strip().splitlines()[-1])["seg58"],
            **{p.stem: np.load(p) for p in out.glob("*.npy")}}


@pytest.mark.slow
def test_model_loads_in_a_fresh_process_and_predicts_like_seg58_predict(in_sweep, fresh, tmp_path):
    from seg58.commands.predict import run_predict

    sweep = in_sweep
    assert "/code/seg58/" in fresh["seg58"] and not fresh["seg58"].startswith(str(REPO))  # carried code
    for stem, size in SIZES.items():
        assert fresh[stem].shape == size and fresh[stem].dtype == np.uint8
        assert fresh[stem].max() <= 15
    np.testing.assert_array_equal(fresh["batch"][0], fresh["wide"])
    assert fresh["batch"].shape == (2, *SIZES["wide"])
    overrides = [f"infer.run_id={sweep['best']}", f"infer.input={sweep['images']}", f"infer.output={tmp_path}"]
    assert len(run_predict(composed(*overrides), overrides)) == 2  # what `seg58 predict <overrides>` runs
    for stem in SIZES:
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"{stem}_mask.png")), fresh[stem])


@pytest.mark.slow
def test_model_logs_signature_input_example_and_its_own_artifacts(sweep, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep["uri"])
    from mlflow.models import Model

    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{sweep['best']}/model", dst_path=str(tmp_path)))
    model = Model.load(str(local))
    (spec,) = model.signature.inputs.inputs
    assert (spec.type, spec.shape) == (np.dtype("uint8"), (-1, -1, -1, 3))
    (out,) = model.signature.outputs.inputs
    assert (out.type, out.shape) == (np.dtype("uint8"), (-1, -1, -1))
    example = model.load_input_example(str(local))
    assert example.dtype == np.uint8 and example.ndim == 4 and example.shape[-1] == 3
    serving = json.loads((local / "serving_input_example.json").read_text())
    assert np.array_equal(np.array(serving["inputs"], dtype=np.uint8), example)
    requirements = (local / "requirements.txt").read_text().split()
    for dist in ("torch", "segmentation-models-pytorch", "timm", "mlflow"):
        assert f"{dist}=={metadata.version(dist).split('+')[0]}" in requirements
    # the model carries the run's own best.pt and resolved config, not a pointer to the run folder
    run_ckpt = MlflowClient(sweep["uri"]).download_artifacts(sweep["best"], "checkpoints/best.pt", str(tmp_path))
    digest = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in (run_ckpt, local / "artifacts/best.pt")]
    assert digest[0] == digest[1]
    run = MlflowClient(sweep["uri"]).get_run(sweep["best"])
    config = (local / "artifacts/config.yaml").read_text()
    assert f"lr: {run.data.params['optim.lr']}" in config and "${" not in config  # resolved


@pytest.mark.slow
def test_sweep_and_report_register_the_best_run_as_champion(sweep, capsys):
    client = MlflowClient(sweep["uri"])
    best = max((r for r in mlflow_runs(sweep["uri"], "smoke")), key=lambda r: r.data.metrics["best/val_miou"])
    assert best.data.metrics["best/val_miou"] == sweep["rows"][0]["best_val_miou"]
    version = client.get_model_version_by_alias(NAME, "champion")
    assert (str(version.version), version.run_id) == ("1", sweep["best"])
    assert f"registered {NAME} version 1, alias champion" in sweep["output"]
    with tracking_uri(sweep["uri"]):
        assert mlflow.models.get_model_info(f"models:/{NAME}@champion").run_id == sweep["best"]
    for name, number in (("other", "1"), (NAME, "2")):  # a new name; again: a new version, alias moved
        assert report_main([str(sweep["dir"]), "--no-log", "--register", name, "--tracking-uri", sweep["uri"]]) == 0
        printed = capsys.readouterr().out
        assert f"registered {name} version {number}, alias champion (models:/{name}@champion)" in printed
        assert sweep["best"] in printed
        version = client.get_model_version_by_alias(name, "champion")
        assert (str(version.version), version.run_id) == (number, sweep["best"])


@pytest.mark.slow
def test_evaluate_by_model_uri_equals_evaluate_by_run_id(in_sweep):
    from seg58.commands.evaluate import run_evaluate
    from seg58.tracking.run_source import with_run

    results = []
    for source in (f"infer.model_uri=models:/{NAME}@champion", f"infer.run_id={in_sweep['best']}"):
        results.append(run_evaluate(composed(source), [source]))  # what `seg58 evaluate <source>` runs
    assert results[0]["metrics"] == results[1]["metrics"] and results[0]["images"] == results[1]["images"] > 0
    logged = MlflowClient(in_sweep["uri"]).get_run(in_sweep["best"]).data.metrics  # into the model's source run
    assert logged["eval/val/miou"] == results[0]["metrics"]["eval/val/miou"]
    with pytest.raises(CheckpointError, match="models:/no-such-model@champion"):
        with_run(composed("infer.model_uri=models:/no-such-model@champion"), [])
    with pytest.raises(CheckpointError, match="one of"):
        with_run(composed(f"infer.model_uri=models:/{NAME}/1", f"infer.run_id={in_sweep['best']}"), [])


@pytest.mark.slow
def test_served_model_answers_a_tensor_request(sweep, fresh):
    """`mlflow models serve --env-manager local` and the one request of the README."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": sweep["uri"], "NO_ALBUMENTATIONS_UPDATE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # uvicorn
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion",
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], env=env,
                            cwd=sweep["root"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "mlflow models serve did not start"
                time.sleep(1)
        image = np.asarray(Image.open(sweep["images"] / "wide.png").convert("RGB"))
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                         data=json.dumps({"inputs": image[None].tolist()}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            masks = np.array(json.loads(response.read())["predictions"])
    finally:
        stop_mlflow_server(proc)
    assert masks.shape == (1, *SIZES["wide"])
    np.testing.assert_array_equal(masks[0], fresh["wide"])


def test_tracking_uri_puts_back_exactly_what_was_there(monkeypatch, tmp_path):
    """A local sweep's later jobs still need $MLFLOW_TRACKING_URI after a model was logged."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///before.db")
    with tracking_uri(f"sqlite:///{tmp_path / 'other.db'}"):
        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'other.db'}"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///before.db" == mlflow.get_tracking_uri()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with tracking_uri("sqlite:///x.db"):
        pass
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_register_refuses_a_sweep_without_a_finished_run():
    rows = [{"status": "FAILED", "run": "a", "run_id": "1", "best_val_miou": float("nan")}]
    with pytest.raises(Seg58Error, match="no run of the sweep finished"):
        register_best(None, rows, NAME)
