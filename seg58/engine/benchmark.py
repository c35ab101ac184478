"""Measuring primitives of `seg58 bench`, plain PyTorch: model throughput without data loading
(tensors already on the device, the mmsegmentation convention), the data pipeline alone, and
the memory loader workers add. The command composes them from a config (seg58/commands/bench.py).
"""

from __future__ import annotations

import time

import psutil
import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss() -> int:
    return psutil.Process().memory_info().rss


def compute_only(trainer, images: torch.Tensor, masks: torch.Tensor, warmup: int, steps: int) -> float:
    """Forward + backward + optimizer step on a batch already on the device: the limit."""
    for _ in range(warmup):
        trainer.step(images, masks)
    sync(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(images, masks)
    sync(trainer.device)
    return steps * images.shape[0] / (time.perf_counter() - start)


def data_only(loader, batches: int) -> float:
    """The loader with its augmentation, and nothing else."""
    it, n, start = iter(loader), 0, time.perf_counter()
    for _ in range(batches):
        try:
            images, _ = next(it)
        except StopIteration:
            it = iter(loader)
            images, _ = next(it)
        n += images.shape[0]
    return n / (time.perf_counter() - start)


def worker_memory(dataset, batch_size: int, workers: int) -> tuple[int, int]:
    """(private bytes of all workers after their first batch, growth over a full pass).

    Workers fork and share the pre-loaded uint8 arrays copy-on-write; reading them copies
    nothing, so the growth while every image is read must stay near zero rather than
    N x the dataset. The first number is the workers' own interpreter overhead.
    """
    if workers == 0:
        return 0, 0
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                         persistent_workers=True)

    def uss() -> int:
        return sum(c.memory_full_info().uss for c in psutil.Process().children(recursive=True))

    it = iter(loader)
    for _ in range(workers):  # every worker has produced a batch
        next(it)
    before = uss()
    for _ in it:
        pass
    for _ in loader:  # second pass: each worker has now read every image it will ever read
        pass
    after = uss()
    del it, loader
    return before, max(0, after - before)


@torch.no_grad()
def inference_ms(model: torch.nn.Module, size: int, device: torch.device, runs: int = 3,
                 memory_format: torch.memory_format = torch.contiguous_format) -> float:
    """Milliseconds for one size x size image through the model (batch 1, eval mode, no data
    loading), the median of `runs` after one warm-up: the cost side of a Pareto search."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, size, size, device=device).contiguous(memory_format=memory_format)
    times = []
    for i in range(runs + 1):
        sync(device)
        start = time.perf_counter()
        model(x)
        sync(device)
        if i:
            times.append((time.perf_counter() - start) * 1000)
    model.train(was_training)
    return sorted(times)[len(times) // 2]


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
