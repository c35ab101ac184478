"""Dataset lineage (issue #13): the digest follows the files' contents, the cache never hides a
change, runs log their dataset to MLflow, evaluate/rerun warn when today's data differs, and the
printed MLflow UI links decode to the right runs."""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from conftest import mlflow_runs
from mlflow.tracking import MlflowClient
from PIL import Image

from seg58.base.classes import CLASS_NAMES, IGNORE_INDEX
from seg58.data.folder import scan_folder
from seg58.data.lineage import content_digest, data_changed_warning, dataset_lineage
from seg58.data.splits import SplitSpec
from seg58.data.synthetic import ensure_synthetic
from seg58.tracking.lineage import data_change_warning, log_dataset
from seg58.tracking.run_logger import MlflowCallback
from seg58.tracking.store import ensure_store
from seg58.tracking.ui_links import DEFAULT_UI, ui_base, ui_links


@pytest.fixture
def data(tmp_path, cache_dir) -> Path:
    """A private copy of the smoke set: tests change files in it, never in the shared cache."""
    return Path(shutil.copytree(ensure_synthetic(cache_dir, n_images=12, size=80, seed=0), tmp_path / "data"))


def digest(root: Path, cache: Path | None = None) -> str:
    return content_digest(root, scan_folder(root), cache)


def change_one_mask_pixel(mask: Path) -> None:
    """A different, still valid label in one pixel."""
    labels = np.array(Image.open(mask))
    labels[0, 0] = 1 if labels[0, 0] != 1 else 2
    Image.fromarray(labels).save(mask)


def test_digest_follows_the_files_contents_not_their_location(data, tmp_path):
    d0 = digest(data)
    assert len(d0) == 12 and digest(Path(shutil.copytree(data, tmp_path / "elsewhere"))) == d0
    mask = sorted((data / "annotations").iterdir())[0]
    original = mask.read_bytes()
    change_one_mask_pixel(mask)
    assert digest(data) != d0
    mask.write_bytes(original)
    assert digest(data) == d0  # the same bytes again: the same data
    image = sorted((data / "images").iterdir())[3]
    saved = image.read_bytes()
    image.write_bytes(saved[:-1] + bytes([saved[-1] ^ 1]))
    assert digest(data) != d0
    image.write_bytes(saved)
    shutil.copy(image, data / "images" / "extra.png")  # a file added ...
    shutil.copy(data / "annotations" / f"{image.stem}.png", data / "annotations" / "extra.png")
    assert digest(data) != d0
    (data / "images" / "extra.png").unlink()  # ... and removed again
    (data / "annotations" / "extra.png").unlink()
    assert digest(data) == d0
    meta = data / "metadata.csv"
    meta.write_text(meta.read_text().replace("syn_00000,Paper,", "syn_00000,Canvas,"))  # another stratum
    assert digest(data) != d0


def test_cache_skips_unchanged_files_and_never_hides_a_rewrite(data, tmp_path):
    cache = tmp_path / "cache"
    d0 = digest(data, cache)
    (cache_file,) = (cache / "lineage").glob("*.json")
    planted = json.loads(cache_file.read_text())
    rel = sorted(planted["files"])[0]
    planted["files"][rel][4] = "0" * 64  # a wrong hash for a file whose stat is unchanged ...
    cache_file.write_text(json.dumps(planted))
    assert digest(data, cache) != d0  # ... is trusted: the file was not read again
    path = data / rel
    before = path.stat()
    content = path.read_bytes()
    path.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))  # same size, mtime put back
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_size == before.st_size
    changed = digest(data, cache)
    assert changed != d0 and changed == digest(data)  # ctime moved: re-hashed, same as uncached
    path.write_bytes(content)
    assert digest(data, cache) == d0


def test_profile_holds_the_split_counts_and_class_pixel_shares(data, tmp_path):
    samples = scan_folder(data)
    spec = SplitSpec(seed=3)
    train, val = spec.apply(samples)
    lineage = dataset_lineage(data, train, val, spec, tmp_path / "cache", threads=2)
    counts = np.bincount(np.concatenate([np.asarray(Image.open(s.mask)).ravel() for s in samples]), minlength=256)
    profile = lineage.profile()
    assert (profile["train_images"], profile["val_images"]) == (len(train), len(val)) == (10, 2)
    assert profile["source"] == str(data.resolve()) and profile["split"] == "random 0.2 seed 3"
    assert [lineage.class_shares[n] for n in CLASS_NAMES] == pytest.approx(counts[:16] / counts[:16].sum())
    assert lineage.ignore_share == pytest.approx(counts[IGNORE_INDEX] / counts.sum())
    again = dataset_lineage(data, train, val, spec, tmp_path / "cache")  # counts from the cache
    assert again.class_shares == lineage.class_shares and again.digest == lineage.digest == digest(data)
    holdout = SplitSpec("leave_one_material_out", holdout=samples[0].material)
    other = dataset_lineage(data, *holdout.apply(samples), holdout, tmp_path / "cache")
    assert other.digest == lineage.digest and other.name != lineage.name  # same files, another split


def test_run_logs_its_dataset_and_a_changed_folder_is_named_with_both_digests(data, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_store(uri)
    client = MlflowClient(uri)
    spec = SplitSpec()
    lineage = dataset_lineage(data, *spec.apply(scan_folder(data)), spec)
    tags = MlflowCallback(uri, "lineage", "run", params={}, dataset=lineage).tags
    run_id = client.create_run(client.create_experiment("lineage"), tags=tags).info.run_id
    log_dataset(client, run_id, lineage)

    (given,) = client.get_run(run_id).inputs.dataset_inputs
    assert (given.dataset.name, given.dataset.digest) == (lineage.name, lineage.digest)
    assert {t.key: t.value for t in given.tags} == {"mlflow.data.context": "train"}
    assert json.loads(given.dataset.profile)["class_pixel_share"]["Clean"] > 0
    import mlflow.data

    assert mlflow.data.get_source(given).uri == str(data.resolve())
    assert client.get_run(run_id).data.tags["dataset.digest"] == lineage.digest

    assert data_change_warning(client, run_id, lineage.root, digest(data)) is None  # unchanged
    change_one_mask_pixel(sorted((data / "annotations").iterdir())[5])
    message = data_change_warning(client, run_id, lineage.root, digest(data))
    assert lineage.digest in message and digest(data) in message and "same folder" in message
    elsewhere = data_changed_warning("r1", lineage.digest, str(data), "0123456789ab", tmp_path / "other")
    assert str(data) in elsewhere and str(tmp_path / "other") in elsewhere and "0123456789ab" in elsewhere


def test_ui_links_decode_to_the_runs_of_the_sweep():
    ids = ["a" * 32, "b" * 32]
    links = dict(ui_links("http://tracking:5000/", "7", ids))
    assert links["training runs"] == "http://tracking:5000/#/experiments/7/runs"
    for name, route in (("compare", "/compare-runs"), ("val/miou curves", "/metric/")):
        base, fragment = links[name].split("#", 1)
        path, query = fragment.split("?", 1)
        params = urllib.parse.parse_qs(query)
        assert base == "http://tracking:5000/" and path == route
        assert json.loads(params["runs"][0]) == ids and json.loads(params["experiments"][0]) == ["7"]
    assert json.loads(urllib.parse.parse_qs(links["val/miou curves"].split("?", 1)[1])["plot_metric_keys"][0]) == [
        "val/miou"]
    assert ui_base("sqlite:////x/mlflow.db") == (DEFAULT_UI, "mlflow ui --backend-store-uri sqlite:////x/mlflow.db")
    _, serve = ui_base("postgresql://seg58:s3cret@db:5432/mlflow")
    assert "s3cret" not in serve and "postgresql://seg58:***@db:5432/mlflow" in serve


def test_evaluate_and_rerun_warn_when_the_data_changed_since_training(cli, tmp_path, data):
    """Real runs on a private copy of the smoke set: train, evaluate (no warning), change one mask
    pixel, evaluate and rerun (both digests named), and the rerun logs the new digest."""
    args = ["experiment=smoke", f"data.root={data}", "data.synthetic=null", f"paths.cache_dir={tmp_path / 'cache'}"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = cli(*args)
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = mlflow_runs(uri, "smoke")
    trained = run.data.tags["dataset.digest"]
    assert trained == digest(data) and run.data.tags["dataset.root"] == str(data.resolve())
    assert [i.dataset.digest for i in run.inputs.dataset_inputs] == [trained]

    same = cli("evaluate", f"infer.run_id={run.info.run_id}")
    assert same.returncode == 0, same.stderr[-2000:]
    assert "data differs" not in same.stdout + same.stderr

    change_one_mask_pixel(sorted((data / "annotations").iterdir())[0])
    today = digest(data)
    changed = cli("evaluate", f"infer.run_id={run.info.run_id}")
    assert changed.returncode == 0, changed.stderr[-2000:]  # a warning, not an error
    (line,) = [x for x in (changed.stdout + changed.stderr).splitlines() if "data differs" in x]
    assert "WARNING" in line and trained in line and today in line

    again = cli("rerun", run.info.run_id)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"warning: data differs from the data of run {run.info.run_id}" in again.stderr
    assert trained in again.stderr and today in again.stderr
    (new,) = [r for r in mlflow_runs(uri, "smoke") if r.info.run_id != run.info.run_id]
    assert new.data.tags["dataset.digest"] == today
