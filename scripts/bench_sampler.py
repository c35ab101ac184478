"""Does class-balanced sampling help the rare classes? Trains the same small model on synthetic data
whose Dust, Hair, Puncture and Burn marks are rare (data.synthetic.rare), once with
data.sampler=random and once with data.sampler=class_balanced, for each seed, and prints the
validation mIoU and the rare classes' IoU at the last epoch (BENCHMARKS.md, "Rare classes:
class-balanced sampling"). Same data, split and seed per pair: only the draws differ.

    python scripts/bench_sampler.py                        # 2 seeds x 2 samplers x 6 epochs: ~10-15 min on 2 cores
    python scripts/bench_sampler.py --seeds 0 --epochs 3   # a quick look
    python scripts/bench_sampler.py --set data.sampler_power=1 encoder=tiny
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import tempfile
import time

from hydra import compose, initialize_config_dir

from seg58.base.classes import CLASS_NAMES, RARE_CLASSES, metric_key
from seg58.commands.train import train
from seg58.config.schema import config_dir

SAMPLERS = ("random", "class_balanced")
RARE_KEYS = [metric_key(CLASS_NAMES[c]) for c in RARE_CLASSES]


def run(overrides: list[str]) -> dict[str, float]:
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    start = time.perf_counter()
    last = train(cfg)["history"][-1]
    return {**last, "seconds": time.perf_counter() - start}


def cell(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=200, help="synthetic images (80%% train)")
    parser.add_argument("--rare", type=float, default=0.3, help="data.synthetic.rare")
    parser.add_argument("--set", nargs="*", default=[], help="more overrides, for both samplers")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("seg58.engine", "seg58.data.build", "seg58"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("seg58.data.sampling").setLevel(logging.INFO)  # the expected shares of draws

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        base = ["experiment=smoke", "tracking=none", f"paths.cache_dir={cache}", "trainer.visuals=0",
                "trainer.checkpoint=false", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null",
                "trainer.batch_size=8", "optim.lr=3e-3", f"trainer.epochs={args.epochs}",
                f"data.synthetic.n_images={args.images}", "data.synthetic.size=96",
                f"data.synthetic.rare={args.rare}", *args.set]
        for seed in args.seeds:
            for sampler in SAMPLERS:
                result = run([*base, f"seed={seed}", f"data.sampler={sampler}"])
                rows.append({"seed": seed, "sampler": sampler, **result})
                print(f"seed {seed} {sampler}: mIoU {result['val/miou']:.3f} in {result['seconds']:.0f} s", flush=True)

    keys = ["val/miou", *(f"val/iou/{k}" for k in RARE_KEYS)]
    print("\n| seed | sampler | val mIoU | " + " | ".join(RARE_KEYS) + " | s |")
    print("|---|---|---|" + "---|" * len(RARE_KEYS) + "---|")
    for r in rows:
        print(f"| {r['seed']} | {r['sampler']} | " + " | ".join(cell(r.get(k, math.nan)) for k in keys)
              + f" | {r['seconds']:.0f} |")
    if len(args.seeds) > 1:
        for sampler in SAMPLERS:
            mean = {k: statistics.fmean(r.get(k, math.nan) for r in rows if r["sampler"] == sampler) for k in keys}
            print(f"| mean | {sampler} | " + " | ".join(cell(mean[k]) for k in keys) + " | |")


if __name__ == "__main__":
    main()
