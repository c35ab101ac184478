"""A model loaded by URI is the one its run logged (issue #21): the SHA-256 digests of its code,
weights and config are recorded at logging (artifacts/digests.json, and the digest of that list in
a tag of the run), and a model whose files were changed in the artifact store afterwards is
refused naming the file, before any weights are read; a model logged without digests loads with a
warning. The suite's shared sweep (a copy) feeds every test; each tampering is undone."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from inproc import run_seg58
from mlflow.tracking import MlflowClient
from trained import writable_copy

from seg58.base.errors import CheckpointError
from seg58.tracking.model import fetch_model, tracking_uri
from seg58.tracking.model_digests import DIGESTS_FILE, DIGESTS_TAG, sha256

pytestmark = pytest.mark.slow
NAME = "seg58-digests"
CHAMPION = f"models:/{NAME}@champion"


@pytest.fixture(scope="module")
def model(smoke_sweep, tmp_path_factory, cache_dir) -> dict:
    """The shared sweep's first run's model (tests/trained.py, copied: these tests change its files),
    registered as seg58-digests@champion; its folder in the artifact store."""
    copy = writable_copy(smoke_sweep, tmp_path_factory.mktemp("digests"))
    run = copy.run_ids[0]
    with tracking_uri(copy.uri):
        version = mlflow.register_model(f"runs:/{run}/model", NAME)
    MlflowClient(copy.uri).set_registered_model_alias(NAME, "champion", version.version)
    (mlmodel,) = [p for p in copy.root.glob("mlartifacts/**/MLmodel") if f"run_id: {run}" in p.read_text()]
    env = {"SEG58_CACHE_DIR": str(cache_dir), "MLFLOW_TRACKING_URI": copy.uri}
    return {"root": copy.root, "uri": copy.uri, "env": env, "run": run, "folder": mlmodel.parent}


@contextlib.contextmanager
def changed(path: Path, content: bytes | None) -> Iterator[None]:
    """`path` with other content (None: removed) meanwhile, then exactly as it was."""
    before = path.read_bytes() if path.exists() else None
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    try:
        yield
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)


def fetch(model: dict, tmp_path: Path, model_uri: str = CHAMPION) -> tuple[Path, Path, str | None]:
    return fetch_model(model["uri"], model_uri, tmp_path / f"fetch-{len(list(tmp_path.iterdir()))}")


def test_an_untouched_model_loads_by_every_uri_with_its_digests_recorded(model, tmp_path, caplog):
    listing = json.loads((model["folder"] / DIGESTS_FILE).read_text())
    files = listing["files"]
    assert listing["algorithm"] == "sha256" and "artifacts/best.pt" in files and "artifacts/config.yaml" in files
    assert "model_code.py" in files and "code/seg58/engine/inference.py" in files
    assert not [f for f in files if "__pycache__" in f]
    tag = MlflowClient(model["uri"]).get_run(model["run"]).data.tags[DIGESTS_TAG]
    assert tag == sha256(model["folder"] / DIGESTS_FILE)
    with caplog.at_level(logging.WARNING):
        for uri in (CHAMPION, f"models:/{NAME}/1", f"runs:/{model['run']}/model"):
            config, checkpoint, run = fetch(model, tmp_path, uri)
            assert run == model["run"] and checkpoint.name == "best.pt" and config.name == "config.yaml"
            assert sha256(checkpoint) == files["artifacts/best.pt"]
    assert "digests" not in caplog.text


def test_changed_weights_are_refused_by_evaluate_in_one_line_naming_the_file(model):
    best = model["folder"] / "artifacts/best.pt"
    with changed(best, best.read_bytes() + b"\0"):
        res = run_seg58(["evaluate", f"infer.model_uri={CHAMPION}"], model["root"], model["env"])
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-3000:]
    (line,) = [x for x in res.stderr.splitlines() if "refused" in x]
    assert f"model {CHAMPION}: artifacts/best.pt does not match its SHA-256 digest" in line
    assert f"not those run {model['run']} recorded" in line


@pytest.mark.parametrize(("rel", "content", "said"), [
    ("code/seg58/engine/inference.py", b"import os\n", "code/seg58/engine/inference.py does not match"),
    ("artifacts/config.yaml", None, "artifacts/config.yaml is missing"),
    ("code/seg58/sitecustomize.py", b"import os\n", "code/seg58/sitecustomize.py was not in the model"),
    ("helper.py", b"import os\n", "helper.py was not in the model"),
], ids=["code-changed", "config-removed", "code-added", "top-level-code-added"])
def test_changed_code_and_config_are_refused_naming_the_file(model, tmp_path, rel, content, said):
    with changed(model["folder"] / rel, content), pytest.raises(CheckpointError, match=said):
        fetch(model, tmp_path)
    fetch(model, tmp_path)  # as it was: loads again


def test_a_rewritten_digest_list_is_refused_against_the_run_tag(model, tmp_path):
    """Changing the weights and their line in digests.json together: the run's tag still knows."""
    best, listing = model["folder"] / "artifacts/best.pt", model["folder"] / DIGESTS_FILE
    forged = json.loads(listing.read_text())
    forged["files"]["artifacts/best.pt"] = "0" * 64
    with changed(best, b"not the weights"), changed(listing, json.dumps(forged).encode()):
        with pytest.raises(CheckpointError, match=f"{DIGESTS_FILE} does not match its SHA-256 digest"):
            fetch(model, tmp_path)


def test_a_model_without_digests_loads_with_a_warning_and_a_digest_list_without_its_tag_is_refused(
        model, tmp_path, caplog):
    client = MlflowClient(model["uri"])
    tag = client.get_run(model["run"]).data.tags[DIGESTS_TAG]
    client.delete_tag(model["run"], DIGESTS_TAG)
    try:
        with pytest.raises(CheckpointError, match=f"has no digest in its run's tag {DIGESTS_TAG}"):
            fetch(model, tmp_path)
        with changed(model["folder"] / DIGESTS_FILE, None), caplog.at_level(logging.WARNING):
            _, checkpoint, run = fetch(model, tmp_path)  # as models logged before digests were
        assert run == model["run"] and checkpoint.is_file()
        (warning,) = [r.getMessage() for r in caplog.records if "digests" in r.getMessage()]
        assert warning == f"model {CHAMPION}: logged without digests of its files (before seg58 recorded them), " \
                          "loaded unchecked"
    finally:
        client.set_tag(model["run"], DIGESTS_TAG, tag)
