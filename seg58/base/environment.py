"""Environment variables set for a while and put back exactly as they were (unset stays unset):
libraries such as MLflow and huggingface_hub read their settings from the environment."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def environ(values: Mapping[str, str] | None = None, keep: Iterable[str] = ()) -> Iterator[None]:
    """`values` set meanwhile; they and the `keep` keys (ones a library may change or delete
    inside) are restored on the way out, errors included."""
    values = dict(values or {})
    saved = {k: os.environ.get(k) for k in [*values, *keep]}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextmanager
def environ_kept() -> Iterator[None]:
    """The whole environment as it was, on the way out: what a sweep set for its jobs (the study,
    the parent run, the CPU share) does not outlive it in a process that goes on (a notebook, a
    test suite, a second sweep)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
