"""Peak memory and speed of `seg58 predict infer.resolution=native` on huge scans (BENCHMARKS.md,
"Native-resolution prediction").

Writes each synthetic scan into a temporary folder a band of rows at a time (the script never
holds a whole scan): an uncompressed RGB TIFF, which the predictor reads a band of rows at a time,
or with --format png a PNG, which PIL decodes whole once. The scan is smooth gradients with a
checker pattern and noise: its content does not change the work. The model is experiment=smoke's
Unet / tu-test_resnet (~1 M parameters) with random weights, saved as a checkpoint. Each scan is
predicted by `python -m seg58 predict` in a subprocess; the peak RSS printed is that process's
own VmHWM (read as it exits), and the speed is the scan's megapixels over the time from the
command's start (torch, SMP and seg58 already imported) to its end: composition, model, reading,
inference, writing the TIFF and the preview.

    PYTHONPATH=. .venv/bin/python scripts/native_predict_benchmark.py        # 17000x1500 (25 MP), 17000x15000 (255 MP)
    PYTHONPATH=. .venv/bin/python scripts/native_predict_benchmark.py --sizes 5300x4700 --format png --tta flips
    PYTHONPATH=. .venv/bin/python scripts/native_predict_benchmark.py --sizes 17000x15000 --format png --decode-only

--decode-only reads the scan as predict does (seg58.data.scans.open_scan) and prints that process's
peak and final RSS: what holding a decoded PNG/JPEG costs, without the half hour of inference.
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BAND = 256  # rows generated at a time
TARGET_MIB = 4096


def bands(height: int, width: int) -> Iterator[np.ndarray]:
    """The scan, BAND rows at a time (uint8 n x width x 3)."""
    rng = np.random.default_rng(0)
    x = np.arange(width)
    for top in range(0, height, BAND):
        y = np.arange(top, min(top + BAND, height))[:, None]
        band = np.empty((len(y), width, 3), np.uint8)
        band[..., 0] = (x * 255 // max(width - 1, 1))[None, :]
        band[..., 1] = y * 255 // max(height - 1, 1)
        band[..., 2] = ((x[None, :] // 97 + y // 97) % 2) * 160 + rng.integers(0, 64, (len(y), width), dtype=np.uint8)
        yield band


def write_tiff(path: Path, height: int, width: int) -> None:
    import tifffile

    rows = (row for band in bands(height, width) for row in band)  # tifffile takes a plain image's rows
    tifffile.imwrite(path, rows, shape=(height, width, 3), dtype=np.uint8, photometric="rgb")


def write_png(path: Path, height: int, width: int) -> None:
    """A PNG written as a stream (filter 0 per row, Deflate level 1), band by band."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    deflate = zlib.compressobj(1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        for band in bands(height, width):
            raw = np.concatenate([np.zeros((len(band), 1), np.uint8), band.reshape(len(band), -1)], axis=1)
            data = deflate.compress(raw.tobytes())
            if data:
                f.write(chunk(b"IDAT", data))
        f.write(chunk(b"IDAT", deflate.flush()) + chunk(b"IEND", b""))


def checkpoint(path: Path) -> None:
    import torch
    from hydra import compose, initialize_config_dir

    from seg58.config import factory
    from seg58.config.schema import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=smoke"])
    torch.manual_seed(0)
    torch.save({"model": factory.model(cfg, pretrained=False).state_dict()}, path)


def predict(tmp: Path, scan: Path, ckpt: Path, window: int, tta: str) -> tuple[float, float, str]:
    """(peak RSS MiB, seconds, stdout) of one `seg58 predict infer.resolution=native`."""
    argv = ["predict", "experiment=smoke", f"infer.checkpoint={ckpt}", "infer.resolution=native",
            f"infer.window={window}", f"infer.tta={tta}", f"infer.input={scan}", f"infer.output={tmp / 'out'}"]
    code = ("import runpy, sys, time\nimport torch, segmentation_models_pytorch, seg58.cli, seg58.commands.predict\n"
            f"sys.argv = ['seg58', *{argv!r}]\nstart = time.perf_counter()\ntry:\n"
            "    runpy.run_module('seg58', run_name='__main__', alter_sys=True)\nfinally:\n"
            "    print('SECONDS', time.perf_counter() - start)\n"
            "    print(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp, capture_output=True, text=True)
    if "SECONDS" not in done.stdout or done.returncode not in (0, None):
        sys.exit(f"predict failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    seconds = float(done.stdout.split("SECONDS")[1].split()[0])
    peak_mib = int(done.stdout.split("VmHWM:")[1].split()[0]) / 1024  # kB
    return peak_mib, seconds, done.stdout


def decode(scan: Path) -> tuple[float, float]:
    """(peak, final) RSS MiB of a process that only opens the scan as predict does."""
    code = (f"from seg58.data.scans import open_scan\npixels = open_scan({str(scan)!r})\n"
            "status = {s.split(':')[0]: int(s.split()[1]) for s in open('/proc/self/status') if s.startswith('Vm')}\n"
            "print(status['VmHWM'], status['VmRSS'], pixels.shape)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"decoding failed:\n{done.stderr[-3000:]}")
    peak, final = done.stdout.split()[:2]
    return int(peak) / 1024, int(final) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="17000x1500,17000x15000", help="WIDTHxHEIGHT,... of the scans")
    parser.add_argument("--format", choices=("tif", "png"), default="tif")
    parser.add_argument("--window", type=int, default=1024, help="infer.window: the tile")
    parser.add_argument("--tta", default="none", help="infer.tta")
    parser.add_argument("--decode-only", action="store_true", help="only read the scan as predict does")
    args = parser.parse_args()
    import tifffile

    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.lower().split("x"))
        with tempfile.TemporaryDirectory(prefix="seg58-native-") as name:
            tmp = Path(name)
            scan, ckpt = tmp / f"scan.{args.format}", tmp / "random.pt"
            (write_tiff if args.format == "tif" else write_png)(scan, height, width)
            if args.decode_only:
                peak, final = decode(scan)
                print(f"{width}x{height} ({width * height / 1e6:.0f} MP) {args.format}, "
                      f"{scan.stat().st_size / 2**20:,.0f} MiB on disk: reading it, peak RSS {peak:,.0f} MiB, "
                      f"then {final:,.0f} MiB held (decoded scan {width * height * 3 / 2**20:,.0f} MiB)", flush=True)
                continue
            checkpoint(ckpt)
            peak, seconds, _ = predict(tmp, scan, ckpt, args.window, args.tta)
            with tifffile.TiffFile(tmp / "out" / "scan_mask.tif") as tif:
                page = tif.pages[0]
                assert page.shape == (height, width) and page.is_tiled, page
                mask = f"{page.shape[1]}x{page.shape[0]}, {len(page.dataoffsets)} tiles of {page.tilewidth} px, " \
                       f"{page.compression.name}, {(tmp / 'out' / 'scan_mask.tif').stat().st_size / 2**20:.1f} MiB"
            megapixels = width * height / 1e6
            band = 16 * args.window * width * 4 / 2**20  # one window's height of float32 logits, 16 classes
            verdict = "within" if peak <= TARGET_MIB else "OVER"
            print(f"{width}x{height} ({megapixels:.0f} MP) {args.format}, {scan.stat().st_size / 2**20:,.0f} MiB "
                  f"on disk, window {args.window}, tta {args.tta}")
            print(f"  mask: {mask}")
            print(f"  peak RSS {peak:,.0f} MiB ({verdict} the {TARGET_MIB} MiB target; decoded scan "
                  f"{width * height * 3 / 2**20:,.0f} MiB, one band of logits {band:,.0f} MiB)")
            print(f"  {seconds:.0f} s: {megapixels / seconds:.2f} MP/s", flush=True)


if __name__ == "__main__":
    main()
