"""The sweeper's own overhead for N = 100, 1,000, 10,000 cells (BENCHMARKS.md "Sweep overhead").

For each N, `python -m seg58 -m experiment=smoke "seed=range(0,N)"` three ways, each in a fresh
process, with MLflow tracking to a fresh SQLite store:

- dry run (`hydra.sweeper.dry_run=true`): every cell composed and checked, nothing launched;
- instant cells: the same sweep through a stub launcher whose jobs end at once with an objective
  (scripts/bench_plugins: no process, no training, no per-job Hydra composition), so what is measured is
  the sweeper itself: checks, the MLflow sweep run, planning, submitting, recording every cell,
  the summary and event log, the leaderboard at the end;
- `seg58 status <that sweep's folder>`.

Printed per run: wall time, ms per cell, peak RSS (the process tree, sampled every 20 ms), bytes
the process wrote (all files: summary, event log, MLflow store, logs; /proc/self/io wchar) and the
summary + event log sizes. Usage: python scripts/sweep_overhead_benchmark.py [--sizes 100 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTANT = "instant"  # the stub launcher's name in hydra/launcher


def child(argv: list[str]) -> None:
    """seg58 with the stub launcher on the path; reports this process's bytes written at exit."""
    import atexit

    sys.path.insert(0, str(Path(__file__).resolve().parent / "bench_plugins"))  # hydra/launcher=instant

    def wrote() -> None:
        io = Path("/proc/self/io").read_text()
        print(f"BENCH_WCHAR {dict(line.split(': ') for line in io.splitlines())['wchar']}", file=sys.stderr)

    atexit.register(wrote)
    sys.argv = ["seg58", *argv]
    from seg58.cli import main

    main()


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    import psutil

    log = cwd / "child.log"  # a file, not a pipe: 10,000 cells log more than a pipe buffers
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        peak = 0
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]))
            except psutil.Error:
                pass
            time.sleep(0.02)
    seconds = time.perf_counter() - t0
    err = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{err[-3000:]}")
    wchar = next((int(line.split()[1]) for line in err.splitlines() if line.startswith("BENCH_WCHAR")), 0)
    return {"seconds": seconds, "peak_mb": peak / 2**20, "wrote_mb": wchar / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    args = parser.parse_args()
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    print(f"{'N':>6}  {'what':<14} {'wall s':>7} {'ms/cell':>8} {'peak MB':>8} {'wrote MB':>9} {'summary+log MB':>15}")
    seen: dict[str, list[tuple[int, float]]] = {}
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            cwd = Path(tmp)
            env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}",
                   "SEG58_CACHE_DIR": str(cwd / "cache"), "PYTHONUNBUFFERED": "1"}
            sweep, folder = ["-m", "experiment=smoke", f"seed=range(0,{n})"], cwd / "multirun/sweep"
            rows = [("dry run", measure([*me, *sweep, "hydra.sweeper.dry_run=true"], cwd, env), None)]
            instant = [*me, *sweep, f"hydra/launcher={INSTANT}", f"hydra.sweep.dir={folder}"]
            rows.append(("instant cells", measure(instant, cwd, env), folder))
            cells = json.loads((folder / "sweep_summary.json").read_text())["cells"]
            assert len(cells) == n and all(c["status"] == "COMPLETED" for c in cells)
            rows.append(("seg58 status", measure([*me, "status", str(folder)], cwd, env), None))
            for what, m, written in rows:
                files = "" if written is None else f"{_size_mb(written):.2f}"
                print(f"{n:>6}  {what:<14} {m['seconds']:>7.1f} {1000 * m['seconds'] / n:>8.2f} "
                      f"{m['peak_mb']:>8.0f} {m['wrote_mb']:>9.2f} {files:>15}", flush=True)
                seen.setdefault(what, []).append((n, m["seconds"]))
    if len(args.sizes) > 1:  # the cost of one more cell, start-up (imports, the MLflow store) left out
        print("per extra cell, between the smallest and the largest N: " + ", ".join(
            f"{what} {1000 * (t[-1][1] - t[0][1]) / (t[-1][0] - t[0][0]):.2f} ms" for what, t in seen.items()))


def _size_mb(folder: Path) -> float:
    return sum((folder / f).stat().st_size for f in ("sweep_summary.json", "sweep_events.jsonl")) / 2**20


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    else:
        main()
