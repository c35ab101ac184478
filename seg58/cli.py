"""Entry points: `seg58 [COMMAND] [overrides]`; training by default, `-m` for sweeps."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from seg58.config import register
from seg58.env import PARENT_EXPERIMENT_ENV, PARENT_RUN_ENV
from seg58.user_errors import DEBUG_ENV, debug_enabled, reported_as_user_errors, run_plain_command

log = logging.getLogger("seg58")


def config_dir() -> str:
    """conf/ of a source checkout, else the copy packaged inside seg58/."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"seg58 config folder not found next to {here}")


register()


def unfinished_run(output_dir: Path, overrides: list[str]) -> Path | None:
    """The newest earlier single run of the same command that has a checkpoint but never
    completed (outputs/<date>/<time>/ layout), so that rerunning a killed command resumes it."""
    from omegaconf import OmegaConf

    from seg58.run import COMPLETED_MARKER

    root = output_dir.parents[1]
    candidates = sorted(root.glob("*/*/checkpoints/last.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for last in candidates:
        folder = last.parent.parent
        if folder == output_dir or (folder / COMPLETED_MARKER).exists():
            continue
        saved = folder / ".hydra" / "overrides.yaml"
        if saved.is_file() and list(OmegaConf.load(saved)) == overrides:
            return folder
    return None


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def train_app(cfg: DictConfig) -> dict:
    """One run; returns what a sweep records of it (best score, epochs, why it stopped)."""
    from seg58.run import train  # heavy imports after Hydra has parsed the command line
    from seg58.search import StudySpec, TrialReporter, objective_of
    from seg58.tracking import git_commit

    hc = HydraConfig.get()
    choices = hc.runtime.choices
    commit, dirty = git_commit(Path(__file__).resolve().parent)
    tags = {
        "model": choices.get("model", ""),
        "encoder": choices.get("encoder", ""),
        "data": choices.get("data", ""),
        "experiment": str(choices.get("experiment") or "none"),
        "overrides": " ".join(hc.overrides.task) or "(defaults)",
        "hydra.output_dir": hc.runtime.output_dir,
        "hydra.job.num": str(hc.job.get("num", 0)),
    }
    if os.environ.get("CUDA_VISIBLE_DEVICES"):  # the GPU(s) a local parallel or SLURM job was given
        tags["cuda.visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    tags.update({str(k): str(v) for k, v in cfg.tracking.tags.items()})
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git.dirty"] = str(dirty).lower()
    if hc.mode == RunMode.MULTIRUN:
        parent = os.environ.get(PARENT_RUN_ENV)
        if parent and os.environ.get(PARENT_EXPERIMENT_ENV) == cfg.tracking.experiment_name:
            tags["sweep.parent_run_id"] = parent
    run_dir = Path(hc.runtime.output_dir)
    if hc.mode == RunMode.RUN and cfg.trainer.resume == "auto":
        previous = unfinished_run(run_dir, list(hc.overrides.task))
        if previous is not None:  # the same command again after a crash or kill: continue it
            log.info("continuing the unfinished run in %s (trainer.resume=never starts afresh)", previous)
            run_dir = previous
    study = StudySpec.from_env() if hc.mode == RunMode.MULTIRUN else None
    callbacks = []
    if study is not None:  # a trial of a search sweep: report every epoch, stop when pruned
        trial = int(hc.job.num)
        callbacks.append(TrialReporter(study, trial))
        tags.update({"search.study": study.study_name, "search.trial": str(trial)})
    started = time.time()
    with reported_as_user_errors():
        summary = train(cfg, run_dir, tags, callbacks)
    log.info("best val mIoU %.4f at epoch %d", summary["best_val_miou"], summary["best_epoch"] + 1)
    result = {k: summary[k] for k in ("best_val_miou", "best_epoch", "epochs_trained", "stopped")}
    result["seconds"] = round(time.time() - started, 1)
    if study is not None:
        result["objective"] = objective_of(summary["history"], study.metric, study.direction)
    return result


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def check_data_app(cfg: DictConfig) -> None:
    from seg58 import factory
    from seg58.data.check import check_dataset

    d = cfg.data
    with reported_as_user_errors():
        report = check_dataset(d.root, factory.split_spec(cfg), factory.synthetic_settings(cfg),
                               d.preload_max_side or 1024)
    print(report)


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def bench_app(cfg: DictConfig) -> None:
    from omegaconf import OmegaConf

    from seg58.bench import format_table, run_bench, save
    from seg58.checks import check_config

    with reported_as_user_errors():
        check_config(cfg)
        tracker = None
        if cfg.tracking.enabled:
            from seg58.mlflow_store import check_reachable
            from seg58.tracking import MlflowCallback

            check_reachable(cfg.tracking.uri)
            tracker = MlflowCallback(cfg.tracking.uri, "bench", f"bench-{cfg.model.arch}-{cfg.encoder.name}".lower(),
                                     params=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
                                     tags={"command": "bench"}, log_checkpoint=False)
        result = run_bench(cfg, tracker)
    out = Path(HydraConfig.get().runtime.output_dir) / "bench.json"
    for path in filter(None, [out, cfg.bench.json and Path(cfg.bench.json)]):
        save(result, path)
    if tracker:
        tracker.log_summary({f"bench/{k}": v for k, v in result.items() if isinstance(v, (int, float))})
    print(format_table(result))
    print(f"(json: {out})")


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def evaluate_app(cfg: DictConfig) -> None:
    import json

    from seg58.checks import check_config
    from seg58.evaluate import run_evaluate

    with reported_as_user_errors():
        check_config(cfg)
        result = run_evaluate(cfg, list(HydraConfig.get().overrides.task))
    print(json.dumps(result, indent=2))


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def predict_app(cfg: DictConfig) -> None:
    from seg58.checks import check_config
    from seg58.evaluate import run_predict

    with reported_as_user_errors():
        check_config(cfg)
        files = run_predict(cfg, list(HydraConfig.get().overrides.task))
    print(f"wrote masks and overlays of {len(files)} image(s) to {cfg.infer.output}")


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def export_app(cfg: DictConfig) -> None:
    import json

    from seg58.checks import config_problems
    from seg58.errors import ConfigError
    from seg58.export import run_export, summary_line

    with reported_as_user_errors():
        problems = [p for p in config_problems(cfg) if not p.startswith("data.root=")]  # no data is read
        if problems:
            raise ConfigError(problems)
        report = run_export(cfg, list(HydraConfig.get().overrides.task), Path(HydraConfig.get().runtime.output_dir))
    print(json.dumps(report, indent=2))
    print(summary_line(report))


def _bare_dataset_path(args: list[str]) -> list[str]:
    """`seg58 check-data /data/artefact`: a bare folder means data.root of an ARTeFACT folder."""
    paths = [a for a in args if "=" not in a and not a.startswith("-")]
    if not paths:
        return args
    rest = [a for a in args if a not in paths]
    root = str(Path(paths[0]).expanduser().resolve()).replace("'", "\\'")
    data = [] if any(a.startswith("data=") for a in rest) else ["data=artefact"]
    return [*data, f"data.root='{root}'", *rest]


# Commands besides training; each takes the same config overrides (data=..., paths.data_dir=...).
COMMANDS = {
    "check-data": (check_data_app, ["hydra.output_subdir=null", "hydra.run.dir=.",
                                    "hydra/job_logging=stdout", "hydra/hydra_logging=none"]),
    "bench": (bench_app, []),
    "evaluate": (evaluate_app, []),
    "predict": (predict_app, []),
    "export": (export_app, []),  # ONNX of a run or checkpoint, checked in onnxruntime (seg58/export.py)
}
BARE_ARGUMENTS = {"check-data": _bare_dataset_path}

# Commands with ordinary arguments (they compose no run config).
PLAIN_COMMANDS = {
    "report": "seg58.report:main",
    "rerun": "seg58.report:rerun_main",
    "status": "seg58.sweeps:status_main",
    "collect": "seg58.sweeps:collect_main",
    "import-artefact": "seg58.data.artefact_import:main",
    "augment-artefact": "seg58.data.augment:main",
    "fetch-weights": "seg58.fetch_weights:main",  # job overrides (encoder=a,b expands); needs internet
}


def main() -> None:
    """`seg58 [--debug] [COMMAND] [args]`: training by default; see COMMANDS for the others."""
    if "--debug" in sys.argv[1:]:  # tracebacks for user errors too (also SEG58_DEBUG=1)
        sys.argv.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
    if debug_enabled():
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command in PLAIN_COMMANDS:  # plain arguments, no config
        import importlib

        module, func = PLAIN_COMMANDS[command].split(":")
        sys.exit(run_plain_command(f"seg58 {command}", getattr(importlib.import_module(module), func), sys.argv[2:]))
    if command in COMMANDS:
        app, extra = COMMANDS[command]
        args = sys.argv[2:]
        if command in BARE_ARGUMENTS:
            args = BARE_ARGUMENTS[command](args)
        sys.argv[1:] = [*extra, *args]
        app()
    else:
        train_app()
