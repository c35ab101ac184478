"""Pretrained encoder weights on offline compute nodes: jobs read them from a cache in the hub's own
layout under paths.cache_dir, an uncached one is one clear error naming the fix, and
`seg58 fetch-weights` fills that cache. Nothing can be downloaded here, so the tests write the cache
themselves, exactly as huggingface_hub lays it out, with weights of known values."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import timm
import torch
from conftest import free_port
from huggingface_hub import constants
from hydra import compose, initialize_config_dir
from safetensors.torch import save
from segmentation_models_pytorch.encoders import get_encoder

import seg58.config.schema  # noqa: F401 (registers the structured schema)
from seg58.base.errors import WeightsError
from seg58.commands.fetch_weights import expand
from seg58.commands.fetch_weights import main as fetch_main
from seg58.config import factory
from seg58.config.config_checks import config_problems, weights_problems
from seg58.config.schema import config_dir
from seg58.config.weights import fetch_command
from seg58.modeling.hub_weights import hf_cache_dir, hub_cache, weight_source

TINY_REPO = "timm/test_resnet.r160_in1k"  # timm's default pretrained cfg of test_resnet (encoder=tiny)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make(*overrides: str):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def write_hub_repo(hub: Path, repo_id: str, files: dict[str, bytes], commit: str = COMMIT) -> Path:
    """One repo in huggingface_hub's cache layout: blobs/<sha256>, refs/main, snapshots/<commit>/<file>
    (relative symlinks to the blobs). Returns the snapshot folder."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


def known_values(state: dict[str, torch.Tensor], seed: int = 7) -> dict[str, torch.Tensor]:
    """Values no initialisation produces (seeded noise; positive running variances)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in state.items():
        if v.is_floating_point():
            v = torch.randn(v.shape, generator=g)
            v = v.abs() + 0.5 if k.endswith("running_var") else v
        out[k] = v.contiguous()
    return out


@pytest.fixture
def tiny_cache(tmp_path) -> tuple[Path, dict[str, torch.Tensor]]:
    """paths.cache_dir holding the pretrained weights of timm's test_resnet, as the hub caches them."""
    state = known_values(timm.create_model("test_resnet").state_dict())
    write_hub_repo(hf_cache_dir(tmp_path / "cache"), TINY_REPO, {"model.safetensors": save(state)})
    return tmp_path / "cache", state


def test_hub_cache_sets_env_and_imported_constants_then_restores(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", "/elsewhere")
    before = (constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_CACHE"))
    with pytest.raises(RuntimeError), hub_cache(tmp_path, offline=True):
        assert constants.HF_HUB_CACHE == os.environ["HF_HUB_CACHE"] == str(tmp_path / "huggingface" / "hub")
        assert constants.HF_HUB_OFFLINE is True and constants.is_offline_mode() and os.environ["HF_HUB_OFFLINE"] == "1"
        assert os.environ["TORCH_HOME"] == str(tmp_path / "torch") == str(Path(torch.hub.get_dir()).parent)
        raise RuntimeError("restored even when building fails")
    assert (constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_CACHE")) == before
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["TORCH_HOME"] == "/elsewhere"
    with hub_cache(tmp_path, offline=False):  # online: the hub's own setting is left alone
        assert constants.HF_HUB_OFFLINE == before[1] and "HF_HUB_OFFLINE" not in os.environ


def test_weight_sources_and_fix_commands_resolve_without_building():
    smp_native = weight_source("resnet50", "imagenet")
    assert (smp_native.repo_id, smp_native.files) == ("smp-hub/resnet50.imagenet",
                                                      (("config.json",), ("model.safetensors",)))
    assert len(smp_native.revision) == 40  # SMP pins a commit
    tiny = weight_source("tu-test_resnet", True)
    assert (tiny.repo_id, tiny.revision) == (TINY_REPO, None)
    assert tiny.files == (("model.safetensors", "pytorch_model.bin"),)  # timm's safetensors-first order
    assert weight_source("tu-convnext_tiny.fb_in1k", True).repo_id == "timm/convnext_tiny.fb_in1k"
    with pytest.raises(ValueError, match="available"):
        weight_source("resnet50", "True")

    assert fetch_command(make("encoder=tiny", "encoder.weights=true")) == "seg58 fetch-weights encoder=tiny"
    assert fetch_command(make("encoder=resnet50", "encoder.weights=ssl")) == \
        "seg58 fetch-weights encoder=resnet50 encoder.weights=ssl"
    assert fetch_command(make("encoder=tiny", "encoder.name=tu-resnet18")) == \
        "seg58 fetch-weights encoder.name=tu-resnet18"  # no option has it: the name itself
    cfg = make("encoder=resnet50", "encoder.weights=True")
    assert [p for p in config_problems(cfg) if p.startswith("encoder.weights=True: encoder 'resnet50' has no")]
    assert len(expand(["encoder=resnet50,convnext_tiny,swin", "paths.cache_dir=x"])) == 3


def test_pretrained_timm_encoder_is_read_from_a_prebuilt_offline_cache(tiny_cache):
    cache, saved = tiny_cache
    cfg = make("encoder=tiny", "encoder.weights=true", f"paths.cache_dir={cache}")
    assert cfg.paths.hub_offline is True  # jobs are offline by default
    assert weights_problems(cfg) == []  # the pre-launch check finds the file ...
    encoder = factory.model(cfg).encoder.model.state_dict()  # ... and the real build reads it
    assert len(encoder) > 80 and set(encoder) <= set(saved)
    for name, tensor in encoder.items():
        assert torch.equal(tensor, saved[name]), name
    random_init = factory.model(cfg, pretrained=False).encoder.model.state_dict()
    assert not torch.equal(random_init["conv1.0.weight"], saved["conv1.0.weight"])  # the comparison can fail


def test_smp_encoder_reads_its_pinned_revision_from_the_cache(tmp_path):
    source = weight_source("mobilenet_v2", "imagenet")
    saved = known_values(get_encoder("mobilenet_v2").state_dict())
    write_hub_repo(hf_cache_dir(tmp_path), source.repo_id, {"config.json": b"{}", "model.safetensors": save(saved)},
                   commit=source.revision)
    cfg = make("encoder=resnet50", "encoder.name=mobilenet_v2", "encoder.weights=imagenet",
               f"paths.cache_dir={tmp_path}")
    assert weights_problems(cfg) == [] and source.cached(tmp_path).endswith("model.safetensors")
    encoder = factory.model(cfg).encoder.state_dict()
    assert all(torch.equal(encoder[k], v) for k, v in saved.items()) and set(encoder) == set(saved)


def test_uncached_weights_offline_are_one_clear_error(tmp_path):
    cfg = make("encoder=tiny", "encoder.weights=true", f"paths.cache_dir={tmp_path}")
    hub = str(tmp_path / "huggingface" / "hub")
    problems = [p for p in config_problems(cfg) if "fetch-weights" in p]
    assert len(problems) == 1
    with pytest.raises(WeightsError) as raised:  # the build says the same, should the check be skipped
        factory.model(cfg)
    for message in (problems[0], str(raised.value)):
        assert "seg58 fetch-weights encoder=tiny" in message and hub in message
        assert "tu-test_resnet" in message and TINY_REPO in message and "paths.hub_offline=true" in message
    assert not (tmp_path / "huggingface").exists()  # nothing downloaded, nothing half-written
    assert weights_problems(make("encoder=tiny", f"paths.cache_dir={tmp_path}")) == []  # no weights: no check
    assert weights_problems(make("encoder=tiny", "encoder.weights=true", "paths.hub_offline=false",
                                 f"paths.cache_dir={tmp_path}")) == []  # online: the job may download


def test_fetch_weights_reports_what_is_cached_and_where(tiny_cache, capsys):
    cache, _ = tiny_cache
    with hub_cache(None, offline=True):  # the hub cannot be reached: the cached file is loaded as it is
        assert fetch_main(["encoder=tiny", f"paths.cache_dir={cache}"]) == 0
    out = capsys.readouterr().out
    assert "encoder=tiny (tu-test_resnet): already cached" in out
    assert str(hf_cache_dir(cache) / f"models--{TINY_REPO.replace('/', '--')}" / "snapshots" / COMMIT) in out


def test_run_with_uncached_weights_is_refused_before_training(cli, tmp_path):
    weights_cache = tmp_path / "empty-cache"
    r = cli("encoder=tiny", "encoder.weights=true", "trainer.epochs=1", f"paths.cache_dir={weights_cache}")
    assert r.returncode != 0
    err = r.stdout + r.stderr
    assert "Invalid configuration" in err and "seg58 fetch-weights encoder=tiny" in err, err[-3000:]
    assert str(weights_cache / "huggingface" / "hub") in err and "Traceback" not in err
    assert not weights_cache.exists()  # the synthetic data was never generated ...
    assert not (tmp_path / "mlflow.db").exists()  # ... and no run was opened


def test_fetch_weights_command_offline_with_a_prebuilt_cache_succeeds(cli, tiny_cache):
    cache, _ = tiny_cache
    r = cli("fetch-weights", "encoder=tiny", env={"SEG58_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "encoder=tiny (tu-test_resnet): already cached" in r.stdout
    assert str(hf_cache_dir(cache)) in r.stdout


def test_fetch_weights_command_fails_fast_and_clearly_when_the_hub_is_unreachable(cli, tmp_path):
    cache = tmp_path / "cache"
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused, no hanging
    started = time.monotonic()
    r = cli("fetch-weights", "encoder=tiny", timeout=120,
            env={"SEG58_CACHE_DIR": str(cache), "HF_ENDPOINT": closed, "HF_HUB_OFFLINE": "0"})
    assert r.returncode != 0
    assert "could not be reached" in r.stderr and "ConnectError" in r.stderr, r.stderr[-3000:]
    assert "seg58 fetch-weights encoder=tiny" in r.stderr and str(hf_cache_dir(cache)) in r.stderr
    assert "Traceback" not in r.stderr and "Retrying" not in r.stderr  # one try, no back-off
    assert not list(hf_cache_dir(cache).glob("models--*"))
    assert time.monotonic() - started < 90

