"""Settings with a fixed set of values. The structured schema types its keys with these, so a
bad value is refused at composition with the key and the valid values named; the core accepts
the same enums (or their string values) when constructed directly."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A str-valued enum that prints (and logs to MLflow) as its bare value."""

    def __str__(self) -> str:
        return self.value


class SplitKind(Choice):
    random = "random"  # seeded, stratified by material
    leave_one_material_out = "leave_one_material_out"  # ARTeFACT's protocol
    leave_one_content_out = "leave_one_content_out"


class NonFinite(Choice):
    skip = "skip"  # NaN/inf loss: skip the step, count it
    stop = "stop"  # ... or end the run naming epoch and step


class CpuAmp(Choice):
    auto = "auto"  # bf16 autocast where the CPU runs bf16 natively (AVX512/AMX), else fp32
    bf16 = "bf16"  # always bf16 (emulated on AVX2-only CPUs: measured 20x slower than fp32)
    off = "off"  # fp32 on CPU


class InferMode(Choice):
    whole = "whole"  # one padded forward pass per image
    slide = "slide"  # overlapping windows, logits averaged


class InferSplit(Choice):
    val = "val"
    train = "train"
    all = "all"
