"""How to train, as one record: the Trainer takes it instead of a dozen keyword arguments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from seg58.base.choices import CpuAmp, NonFinite


@dataclass(frozen=True)
class TrainerOptions:
    """How to train; the field names are trainer.* config keys (the factory copies them over)."""

    epochs: int = 1
    amp: bool = True  # fp16 + GradScaler on CUDA; bf16 autocast on a CPU that has it (cpu_amp)
    cpu_amp: CpuAmp = CpuAmp.auto
    limit_train_batches: int | None = None
    limit_val_batches: int | None = None
    progress: bool | None = None  # None: a progress bar when stderr is a terminal
    nonfinite: NonFinite = NonFinite.skip
    channels_last: bool = False
    compile: bool = False  # torch.compile the forward pass

    def __post_init__(self) -> None:
        object.__setattr__(self, "cpu_amp", CpuAmp(self.cpu_amp))
        object.__setattr__(self, "nonfinite", NonFinite(self.nonfinite))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainerOptions:
        """The options out of a larger mapping (the trainer config group), extra keys left out."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})
