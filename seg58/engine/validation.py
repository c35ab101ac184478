"""One validation pass: a loader's batches through the model under autocast, into an evaluator.

Apart from the Trainer so that the training loop reads as one piece; the pass needs only a forward
function, a loss and an evaluator, so anything that scores a model on a loader can use it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import DataLoader

from seg58.data.loaders import ordered_samples
from seg58.engine.evaluator import SegmentationEvaluator
from seg58.modeling.hierarchy import fine_labels

Output = torch.Tensor | dict[str, torch.Tensor]  # a flat model's logits, or a hierarchical model's heads


def as_float(out: Output) -> Output:
    """Losses are taken in fp32 (Dice sums overflow fp16), whatever the autocast dtype."""
    return {k: v.float() for k, v in out.items()} if isinstance(out, dict) else out.float()


@torch.no_grad()
def validation_pass(forward: Callable[[torch.Tensor], Output], loss_fn: Callable[[Output, torch.Tensor], torch.Tensor],
                    loader: DataLoader, evaluator: SegmentationEvaluator, n_batches: int, *,
                    amp_dtype: torch.dtype | None, memory_format: torch.memory_format = torch.contiguous_format
                    ) -> float:
    """The mean loss over the loader's first `n_batches`; each batch's labels (the fine ones, and a
    hierarchical model's own heads) go to `evaluator`, with the samples they came from when the
    loader keeps its order (per-image and per-domain metrics)."""
    device = evaluator.device
    loss_sum = torch.zeros((), device=device)  # summed on the device: one host sync per pass
    samples, seen = ordered_samples(loader), 0
    for i, (images, masks) in enumerate(loader):
        if i >= n_batches:
            break
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        masks = masks.to(device, non_blocking=True)
        with torch.autocast(torch.device(device).type, dtype=amp_dtype or torch.bfloat16,
                            enabled=amp_dtype is not None):
            out = forward(images)
        loss_sum += loss_fn(as_float(out), masks)
        heads = {k: v.argmax(1) for k, v in out.items() if k != "fine"} if isinstance(out, dict) else None
        batch = samples[seen:seen + len(masks)] if samples is not None else None
        evaluator.update(fine_labels(out, evaluator.num_classes), masks, heads, batch)
        seen += len(masks)
    return float(loss_sum) / max(1, n_batches)
