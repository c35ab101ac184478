"""Local encoder weights (offline clusters): loaded completely, or refused naming what is missing."""

from __future__ import annotations

import logging

import pytest
import torch

from seg58.base.errors import WeightsError
from seg58.modeling.models import build_model


@pytest.fixture
def encoder_state():
    torch.manual_seed(1)
    donor = build_model("Unet", "tu-test_resnet", 16)
    return {k: v.clone() for k, v in donor.encoder.model.state_dict().items()}


def test_a_complete_weights_file_loads_every_tensor(tmp_path, encoder_state):
    path = tmp_path / "enc.pth"
    torch.save({**encoder_state, "fc.weight": torch.zeros(3, 3)}, path)  # extra head tensors are fine
    model = build_model("Unet", "tu-test_resnet", 16, weights=str(path))
    for key, value in model.encoder.model.state_dict().items():
        assert torch.equal(value, encoder_state[key]), key


def test_a_partial_weights_file_is_refused_listing_the_missing_tensors(tmp_path, encoder_state):
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in encoder_state.items() if not k.startswith("layer4.")}, path)
    # BatchNorm forgives a missing step counter; every other layer4 tensor must be named
    dropped = [k for k in encoder_state if k.startswith("layer4.") and not k.endswith("num_batches_tracked")]
    with pytest.raises(WeightsError) as err:
        build_model("Unet", "tu-test_resnet", 16, weights=str(path))
    message = str(err.value)
    assert f"leaves {len(dropped)} encoder tensor(s) unset" in message and dropped[0] in message
    assert f"({len(dropped)} in all)" in message
    assert "encoder.allow_partial_weights=true" in message


def test_partial_weights_with_the_opt_in_warn_and_load_the_rest(tmp_path, encoder_state, caplog):
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in encoder_state.items() if not k.startswith("layer4.")}, path)
    with caplog.at_level(logging.WARNING, logger="seg58.modeling.models"):
        model = build_model("Unet", "tu-test_resnet", 16, weights=str(path), allow_partial_weights=True)
    assert "unset" in caplog.text
    assert torch.equal(model.encoder.model.state_dict()["conv1.0.weight"], encoder_state["conv1.0.weight"])


def test_a_foreign_or_unreadable_file_is_a_weights_error(tmp_path):
    foreign = tmp_path / "other.pth"
    torch.save({"something.else": torch.zeros(2)}, foreign)
    with pytest.raises(WeightsError, match="no tensor matches"):
        build_model("Unet", "tu-test_resnet", 16, weights=str(foreign))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        build_model("Unet", "tu-test_resnet", 16, weights=str(garbage))
