"""Every option of every config group composes, and every model x encoder pair either builds and
runs on a 64x64 input or is rejected by our checks *and* really fails in SMP."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.utils import instantiate
from omegaconf import OmegaConf

import seg58.config.schema  # noqa: F401 (registers the structured schema)
from seg58.config.config_checks import config_problems
from seg58.config.schema import config_dir
from seg58.modeling.models import build_model

CONF = Path(config_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_have_the_required_options():
    assert {"unet", "deeplabv3plus", "fpn", "unetplusplus"} <= set(options("model"))
    assert {"resnet50", "convnext_tiny", "swin", "maxvit", "tiny"} <= set(options("encoder"))
    assert {"artefact", "synthetic"} <= set(options("data"))
    assert {"dice", "focal", "dice_ce", "dice_focal"} <= set(options("loss"))
    assert {"poc58", "poc58_unet_convnext", "smoke"} <= set(options("experiment"))


@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("encoder", options("encoder"))
def test_model_encoder_pairs_build_or_are_rejected(model, encoder):
    cfg = make(f"model={model}", f"encoder={encoder}", "data.img_size=64")
    problems = config_problems(cfg)
    kwargs = OmegaConf.to_container(cfg.encoder.kwargs, resolve=True)
    if problems:
        assert len(problems) == 1 and "needs a dilated encoder" in problems[0]
        with pytest.raises(TypeError, match="output_stride"):  # the rule matches SMP's reality
            build_model(cfg.model.arch, cfg.encoder.name, 16, encoder_kwargs=kwargs)
        return
    net = build_model(cfg.model.arch, cfg.encoder.name, 16, encoder_kwargs=kwargs).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 16, 64, 64)


@pytest.mark.parametrize("loss", options("loss"))
def test_losses_instantiate_respect_ignore_and_backprop(loss):
    fn = instantiate(make(f"loss={loss}").loss)
    logits = torch.randn(2, 16, 8, 8, requires_grad=True)
    target = torch.randint(0, 16, (2, 8, 8))
    target[:, :4] = 255
    if loss == "hierarchical":  # three heads; the fine logits are checked below
        outputs = {"fine": logits, "coarse": torch.randn(2, 4, 8, 8), "binary": torch.randn(2, 2, 8, 8)}
        value = fn(outputs, target)
    else:
        value = fn(logits, target)
    value.backward()
    assert torch.isfinite(value) and value > 0
    assert logits.grad[:, :, :4].abs().sum() == 0  # ignored pixels get no gradient
    assert logits.grad[:, :, 4:].abs().sum() > 0


@pytest.mark.parametrize("optim", options("optim"))
def test_optim_builds_adamw_and_onecycle(optim):
    cfg = make(f"optim={optim}", "optim.lr=3e-4")
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = instantiate(cfg.optim.optimizer)(params)
    sched = instantiate(cfg.optim.scheduler)(opt, total_steps=10)
    assert type(opt).__name__ == "AdamW" and opt.defaults["weight_decay"] == 0.01
    assert type(sched).__name__ == "OneCycleLR" and sched.total_steps == 10
    assert max(g["max_lr"] for g in opt.param_groups) == pytest.approx(3e-4)


@pytest.mark.parametrize("data", options("data"))
def test_data_options_compose(data, tmp_path):
    cfg = make(f"data={data}", f"paths.data_dir={tmp_path}", f"paths.cache_dir={tmp_path}")
    assert cfg.data.img_size % 32 == 0
    problems = config_problems(cfg)
    if data == "synthetic":
        assert problems == []
    else:  # real data: the folder is checked before anything runs, and named
        assert problems and str(tmp_path) in problems[0] and "data.root" in problems[0]


LAUNCHERS = {
    "local": "BasicLauncher",
    "local_parallel": "seg58_sweeper.launchers.Seg58LocalLauncher",
    "slurm": "seg58_sweeper.launchers.Seg58SlurmLauncher",
}


@pytest.mark.parametrize("launcher", options("launcher"))
def test_launchers_compose(launcher, monkeypatch):
    monkeypatch.setenv("SEG58_SLURM_PARTITION", "gpu")
    cfg = make(f"launcher={launcher}", hydra=True)
    assert cfg.hydra.launcher._target_.endswith(LAUNCHERS[launcher])
    if launcher == "slurm":  # the seed's V100 node
        hl = cfg.hydra.launcher
        assert (hl.gpus_per_node, hl.cpus_per_task, hl.mem_gb) == (1, 10, 48)
        assert hl.partition == "gpu" and hl.account is None and hl.max_num_timeout > 0


def test_poc58_is_the_seed_recipe():
    cfg = make("experiment=poc58")
    assert cfg.model.arch == "DeepLabV3Plus" and cfg.encoder.name == "resnet50"
    assert (cfg.data.name, cfg.data.img_size) == ("artefact", 384)
    assert (cfg.trainer.batch_size, cfg.trainer.epochs, cfg.trainer.amp) == (64, 50, True)
    assert cfg.optim.lr == 1e-3 and cfg.optim.scheduler.pct_start == 0.3
    assert cfg.loss._target_.endswith("DiceLoss") and cfg.tracking.experiment_name == "poc58"


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose(experiment):
    cfg = make(f"experiment={experiment}")
    problems = config_problems(cfg)
    assert all("data.root" in p for p in problems)  # only the (absent) real dataset


def test_typo_in_key_fails_naming_the_key():
    with pytest.raises(ConfigCompositionException) as err:
        make("trainer.epoch=5")
    assert "epoch" in str(err.value.__cause__ or err.value)


def test_wrong_type_fails_naming_the_key():
    with pytest.raises(ConfigCompositionException) as err:
        make("trainer.batch_size=lots")
    assert "batch_size" in str(err.value.__cause__ or err.value)


def test_unknown_option_lists_valid_choices():
    with pytest.raises(MissingConfigException) as err:
        make("encoder=resnet5")
    assert "resnet50" in str(err.value) and "convnext_tiny" in str(err.value)


def test_incompatible_and_indivisible_are_reported_together():
    cfg = make("model=deeplabv3plus", "encoder=swin", "data.img_size=100")
    problems = config_problems(cfg)
    assert any("swin" in p and "DeepLabV3Plus" in p for p in problems)
    assert any("data.img_size=100" in p and "16" in p for p in problems)


@pytest.mark.parametrize(("override", "valid"), [
    ("trainer.nonfinite=halt", "[skip, stop]"),
    ("infer.mode=tiles", "[whole, slide]"),
    ("infer.split=test", "[val, train, all]"),
    ("data.split=stratified", "[random, leave_one_material_out, leave_one_content_out, kfold]"),
    ("data.background=label", "[ignore, class]"),
    ("data.hierarchy=poc58", "[seg58, poc55]"),
])
def test_fixed_value_sets_are_refused_at_composition_with_the_choices(override, valid):
    with pytest.raises(ConfigCompositionException) as err:
        make(override)
    message = str(err.value.__cause__ or err.value)
    assert override.split("=")[0].split(".")[-1] in message and valid in message, message


def test_enum_values_compose_and_print_as_plain_strings():
    cfg = make("trainer.nonfinite=stop", "infer.mode=slide")
    assert cfg.trainer.nonfinite == "stop" and f"{cfg.infer.mode}" == "slide"
    flat = OmegaConf.to_container(cfg.trainer, enum_to_str=True)
    assert flat["nonfinite"] == "stop"


def test_num_classes_must_match_the_class_names():
    problems = config_problems(make("data.num_classes=17"))
    assert any("data.num_classes=17" in p and "16 classes" in p and "Lightleak" in p for p in problems)


SCHEMAS = {"data": "DataConf", "model": "ModelConf", "encoder": "EncoderConf", "optim": "OptimConf",
           "trainer": "TrainerConf", "tracking": "TrackingConf"}


def _restated(raw: dict, schema: type, prefix: str) -> list[str]:
    """Keys of a group file whose value equals the schema's default for that key."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(schema)
    found = []
    for f in dataclasses.fields(schema):
        if f.name not in raw:
            continue
        value, kind = raw[f.name], typing.get_args(hints[f.name]) or (hints[f.name],)
        nested = next((t for t in kind if dataclasses.is_dataclass(t)), None)
        if nested is not None and isinstance(value, dict):
            found += _restated(value, nested, f"{prefix}{f.name}.")
            continue
        if f.default is not dataclasses.MISSING and f.default != "???" and value == f.default:
            found.append(f"{prefix}{f.name}={value!r}")
        elif f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            found.append(f"{prefix}{f.name}={value!r}")
    return found


@pytest.mark.parametrize("group", sorted(SCHEMAS))
def test_group_files_do_not_restate_schema_defaults(group):
    import seg58.config.schema as schema

    restated = {}
    for path in sorted((CONF / group).glob("*.yaml")):
        raw = OmegaConf.to_container(OmegaConf.load(path)) or {}
        raw.pop("defaults", None)
        found = _restated(raw, getattr(schema, SCHEMAS[group]), f"{group}.")
        if found:
            restated[path.name] = found
    assert restated == {}, f"the schema (seg58/config/schema.py) already sets these: {restated}"


def test_the_restatement_check_finds_a_restated_default():
    import seg58.config.schema as schema

    assert _restated({"epochs": 15, "batch_size": 4}, schema.TrainerConf, "trainer.") == ["trainer.epochs=15"]
    assert _restated({"synthetic": {"size": 160}}, schema.DataConf, "data.") == ["data.synthetic.size=160"]


def test_the_launcher_keys_of_ours_are_exactly_those_never_passed_to_submitit():
    """seg58.sweep.launchers.OWN_KEYS must name every key seg58's launcher schemas add to
    hydra-submitit-launcher's: one left out would reach submitit's executor and fail there."""
    from dataclasses import fields

    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
    from hydra_plugins.seg58_sweeper.config import Seg58LocalConf, Seg58SlurmConf
    from seg58.sweep.launchers import OWN_KEYS

    def added(ours, theirs):
        return {f.name for f in fields(ours)} - {f.name for f in fields(theirs)}

    assert added(Seg58SlurmConf, SlurmQueueConf) | added(Seg58LocalConf, LocalQueueConf) == OWN_KEYS
