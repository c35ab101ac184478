"""data.sampler=class_balanced: images holding rare classes are drawn more often, seeded; random
stays a plain shuffle; bad settings are refused naming the key."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import make
from hydra.errors import ConfigCompositionException
from torch.utils.data import WeightedRandomSampler

from seg58.base.classes import RARE_CLASSES
from seg58.config import factory
from seg58.config.config_checks import config_problems
from seg58.data.folder import scan_folder
from seg58.data.sampling import classes_present, draw_shares, image_weights, masks_on_disk
from seg58.data.synthetic import ensure_synthetic


def masks(*label_sets: tuple[int, ...]) -> list[np.ndarray]:
    """One tiny mask per label set, holding exactly those labels."""
    return [np.array(labels, np.uint8).reshape(1, -1) for labels in label_sets]


def test_images_with_a_rare_class_weigh_more_and_power_0_is_uniform():
    present = classes_present(masks((0, 1), (0, 1), (0, 1, 3), (0, 1), (0, 2), (0, 255), (255,)))
    assert present[2, 3] and not present[5, 15] and not present[6].any()  # 255 is no class
    weights = image_weights(present, 0.5)
    assert weights[2] == pytest.approx((1 / (1 / 7)) ** 0.5)  # Dust: in 1 of 7 images
    assert weights[2] == weights[4] > weights[0] == weights[1] == weights[3] == pytest.approx((7 / 4) ** 0.5)
    assert weights[6] == 1.0  # nothing scored: as an image of ubiquitous classes
    assert np.all(image_weights(present, 0.0) == 1.0)
    shares = draw_shares(present, weights)
    assert shares[3] > present[:, 3].mean()  # Dust is in more of the draws than uniform gives
    with pytest.raises(ValueError, match=r"data\.sampler_power=-1"):
        image_weights(present, -1)


def loaders(cache_dir, *overrides: str):
    """The smoke config on a 60-image synthetic set where the rare classes are rare."""
    cfg = make("experiment=smoke", f"paths.cache_dir={cache_dir}", "tracking=none", "data.synthetic.n_images=60",
               "data.synthetic.size=48", "data.img_size=32", "data.synthetic.rare=0.25", *overrides)
    assert config_problems(cfg) == []
    splits = factory.data_splits(cfg)
    train, _ = factory.loaders(cfg, splits, factory.runtime(cfg))
    return splits, train


def drawn(train, epochs: int = 10) -> list[int]:
    return [i for _ in range(epochs) for batch in train.batch_sampler for i in batch]


def test_class_balanced_draws_rare_images_more_often_and_is_seeded(cache_dir, caplog):
    splits, shuffled = loaders(cache_dir)
    with caplog.at_level(logging.INFO, logger="seg58.data.sampling"):
        _, balanced = loaders(cache_dir, "data.sampler=class_balanced", "data.sampler_power=1")
    assert isinstance(balanced.sampler, WeightedRandomSampler) and not isinstance(shuffled.sampler,
                                                                                  WeightedRandomSampler)
    assert len(balanced) == len(shuffled)  # same number of batches per epoch (drop_last kept)
    first_epochs = drawn(balanced, 2)
    rare = classes_present(m for _, m in splits.train.arrays)[:, list(RARE_CLASSES)].any(axis=1)
    assert 0 < rare.mean() < 0.5, rare.mean()
    share = {name: rare[drawn(loader)].mean() for name, loader in (("random", shuffled), ("balanced", balanced))}
    assert share["random"] == pytest.approx(rare.mean())  # every image once per epoch
    assert share["balanced"] > 1.5 * share["random"], share
    (line,) = [r.getMessage() for r in caplog.records if "share of draws" in r.getMessage()]
    assert "power=1" in line and any(name in line for name in ("Dust", "Hair", "Puncture", "Burn marks"))

    _, again = loaders(cache_dir, "data.sampler=class_balanced", "data.sampler_power=1")
    _, other_seed = loaders(cache_dir, "data.sampler=class_balanced", "data.sampler_power=1", "seed=7")
    assert drawn(again, 2) == first_epochs != drawn(other_seed, 2)


def test_masks_read_lazily_weigh_as_the_preloaded_ones(cache_dir):
    splits, _ = loaders(cache_dir)
    preloaded = classes_present(m for _, m in splits.train.arrays)
    assert np.array_equal(classes_present(masks_on_disk(splits.train.samples)), preloaded)


def test_synthetic_rare_classes_default_unchanged_and_rare_0_drops_them(cache_dir):
    default = ensure_synthetic(cache_dir, n_images=30, size=48, seed=0)
    assert default.name == "synthetic-v1-n30-s48-seed0"  # the cache key (and content) of earlier versions
    common = classes_present(masks_on_disk(scan_folder(default)))[:, list(RARE_CLASSES)]
    assert common.mean(axis=0).min() > 0.1  # every class in many images by default
    none = classes_present(masks_on_disk(scan_folder(ensure_synthetic(cache_dir, 30, 48, 0, rare=0.0))))
    assert not none[:, list(RARE_CLASSES)].any() and none[:, [1, 2, 4]].any(axis=0).all()


def test_unknown_sampler_lists_the_choices_and_bad_numbers_name_their_key():
    with pytest.raises(ConfigCompositionException) as err:
        make("data.sampler=foo")
    message = str(err.value.__cause__ or err.value)
    assert "sampler" in message and "[random, class_balanced]" in message, message
    problems = config_problems(make("data.sampler_power=-0.5", "data.synthetic.rare=2"))
    assert any("data.sampler_power=-0.5" in p for p in problems)
    assert any("data.synthetic.rare=2" in p for p in problems)
