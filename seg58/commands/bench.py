"""`seg58 bench`: where a training step's time and memory go, measured in one process.

Conventions follow mmsegmentation: model throughput in imgs/s without data loading (tensors
already on the device), peak memory as torch.cuda.max_memory_allocated; CPU runs report the
process RSS. Every figure comes from the same process and the same model, so ratios are fair.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from seg58.config.schema import config_dir
from seg58.config.user_errors import reported_as_user_errors


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> None:
    from seg58.config.config_checks import check_config

    with reported_as_user_errors():
        check_config(cfg)
        tracker = None
        if cfg.tracking.enabled:
            from seg58.tracking.run_logger import MlflowCallback
            from seg58.tracking.store import check_reachable

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


def _warm_up(root: Path, img_size: int) -> None:
    """Generate/locate the data and load the decoders and transforms once, so that the pre-load
    measurement sees the pixels and not one-off imports or the synthetic generator."""
    from seg58.data.folder import load_pair, scan_folder
    from seg58.data.transforms import train_transform, val_transform

    sample = scan_folder(root)[0]
    image, mask = load_pair(sample)
    train_transform(img_size)(image=image, mask=mask)
    val_transform(img_size)(image=image, mask=mask)


def run_bench(cfg: DictConfig, tracker=None) -> dict[str, Any]:
    import psutil
    import torch

    from seg58.config import factory
    from seg58.engine.benchmark import compute_only, data_only, rss, sync, worker_memory
    from seg58.engine.runtime import available_cpus

    launch = psutil.Process().create_time()
    b, d = cfg.bench, cfg.data
    rt = factory.runtime(cfg)
    device, workers = rt.device, rt.workers
    _warm_up(factory.dataset_root(cfg), d.img_size)  # generation, lazy imports: not data
    rss0 = rss()
    splits = factory.data_splits(cfg, preload=True)  # the configured split protocol and holdout
    preload_rss = rss() - rss0
    train_loader, _ = factory.loaders(cfg, splits, rt)
    trainer = factory.trainer(cfg, device, None)
    trainer.start((b.warmup + b.steps + 1) + b.epochs * trainer.batches_per_epoch(train_loader))

    images, masks = next(iter(train_loader))
    images, masks = images.to(device), masks.to(device)
    trainer.step(images, masks)  # the first real training step
    sync(device)
    first_step_s = time.time() - launch

    if tracker:
        tracker.on_fit_start(trainer)
        trainer.register(tracker)  # started after the first step, which it must not time
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    n_imgs, start = 0, time.perf_counter()
    per_epoch = trainer.batches_per_epoch(train_loader) * cfg.trainer.batch_size
    for epoch in range(b.epochs):  # the real loop: loader, AMP, scheduler, metrics, logging
        metrics = trainer.train_epoch(train_loader, epoch)
        n_imgs += per_epoch
        if tracker:
            tracker.on_epoch_end(trainer, epoch, metrics)
    sync(device)
    end_to_end = n_imgs / (time.perf_counter() - start)
    # after the loop, so both measurements see the same warm allocator and kernel caches
    compute = compute_only(trainer, images, masks, b.warmup, b.steps)
    peak_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else rss() / 2**20

    data_rate = data_only(train_loader, b.data_batches)
    n_workers = b.memory_workers if b.memory_workers != "auto" else max(2, min(4, available_cpus()))
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
        "model": f"{cfg.model.arch}/{cfg.encoder.name}", "img_size": d.img_size,
        "batch_size": cfg.trainer.batch_size, "amp": cfg.trainer.amp, "loader_workers": workers,
        "split": factory.split_spec(cfg).describe(), "train_images": len(splits.train),
        "compute_imgs_per_s": compute,
        "end_to_end_imgs_per_s": end_to_end,
        "end_to_end_ratio": end_to_end / compute,
        "data_imgs_per_s": data_rate,
        "data_imgs_per_s_per_core": data_rate / max(1, workers),
        "data_to_model_ratio_per_core": data_rate / max(1, workers) / compute,
        "pixel_bytes": splits.pixel_bytes,
        "preload_rss_bytes": preload_rss,
        "preload_rss_ratio": preload_rss / max(1, splits.pixel_bytes),
        "memory_workers": n_workers,
        "peak_mem_mb": peak_mb,
        "launch_to_first_step_s": first_step_s,
    }
    base, growth = worker_memory(splits.train, cfg.trainer.batch_size, n_workers)
    result.update(worker_base_bytes=base, worker_growth_bytes=growth,
                  preload_rss_ratio_with_workers=(preload_rss + growth) / max(1, splits.pixel_bytes))
    return result


def format_table(r: dict[str, Any]) -> str:
    mb = 2**20
    rows = [
        ("device / model", f"{r['device']} / {r['model']} @ {r['img_size']} px, batch {r['batch_size']}, "
                           f"amp={r['amp']}"),
        ("data", f"{r['train_images']} training images, split {r['split']}"),
        ("1 compute-only (model fwd+bwd+step)", f"{r['compute_imgs_per_s']:.1f} imgs/s"),
        ("2 end-to-end training loop",
         f"{r['end_to_end_imgs_per_s']:.1f} imgs/s = {r['end_to_end_ratio']:.3f} x (1)"),
        ("3 data pipeline alone", f"{r['data_imgs_per_s']:.1f} imgs/s with {r['loader_workers']} workers; "
                                  f"{r['data_imgs_per_s_per_core']:.1f} per core = "
                                  f"{r['data_to_model_ratio_per_core']:.1f} x the model's rate"),
        ("4 pre-load RSS vs raw uint8 pixels",
         f"{r['preload_rss_bytes'] / mb:.1f} MB vs {r['pixel_bytes'] / mb:.1f} MB = {r['preload_rss_ratio']:.2f} x"),
        (f"  with {r['memory_workers']} loader workers",
         f"+{r['worker_growth_bytes'] / mb:.1f} MB copied while reading every image = "
         f"{r['preload_rss_ratio_with_workers']:.2f} x (workers' own baseline {r['worker_base_bytes'] / mb:.0f} MB)"),
        ("5 launch to first training step", f"{r['launch_to_first_step_s']:.1f} s"),
        ("peak memory (training)", f"{r['peak_mem_mb']:.0f} MB"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def save(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **result}, indent=2))
