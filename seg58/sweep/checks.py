"""Every cell's config, composed and checked before launch, at a cost that lets a 10,000-cell grid
start in seconds rather than half an hour.

Hydra composes a config in two phases: the defaults list (config-group choices such as
`encoder=resnet50`) and then the plain overrides (`optim.lr=3e-4`) applied to the result. Cells
that differ only in plain overrides share the first phase, so it runs once per distinct set of
group choices and each cell applies its own plain overrides to a copy with Hydra's own code —
the same config a full composition gives (tests/sweep/test_cell_checks.py compares them). A cell
whose overrides that path cannot apply is composed in full, so its error is Hydra's own."""

from __future__ import annotations

import copy
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, ValueNode, open_dict

from seg58.sweep.private_apis import apply_overrides

log = logging.getLogger(__name__)

CACHED = 64  # distinct group choices kept composed (a grid over encoders x models x losses)
T = TypeVar("T")


class CellComposer:
    """Configs of sweep cells, the defaults-list phase composed once per distinct group choices."""

    def __init__(self, loader: Any, master_config: Any):
        self.loader, self.master = loader, master_config
        self.parser = OverridesParser.create()
        self._parsed: dict[str, Any] = {}  # override line -> Hydra's parsed Override (grids repeat lines)
        self._plain: dict[str, bool] = {}  # override line -> a plain override (not a group choice)
        self._bases: OrderedDict[tuple[str, ...], Any] = OrderedDict()  # group choices -> app config
        self.compositions = 0  # full Hydra compositions made (the expensive part)

    def full(self, overrides: Sequence[str]) -> Any:
        """Hydra's own composition of one cell (what its job will run)."""
        self.compositions += 1
        return self.loader.load_sweep_config(master_config=self.master, sweep_overrides=list(overrides))

    def compose(self, overrides: Sequence[str]) -> Any:
        """The cell's config, equal to `full(overrides)` without its `hydra` node."""
        return self.check(overrides, copy.deepcopy)

    def check(self, overrides: Sequence[str], inspect: Callable[[Any], T]) -> T:
        """inspect(the cell's config without its `hydra` node). The config is shared and only valid
        during the call: the cell's plain overrides are applied to its group choices' composed
        config and undone afterwards (no copy per cell: that was most of the cost)."""
        try:
            parsed = [self._parse(line) for line in overrides]
        except Exception:
            return inspect(_app(self.full(overrides)))  # Hydra raises, naming the bad override
        groups, values = self._split(parsed)
        base = self._base(tuple(o.input_line for o in groups))
        if not all(_settable(base, o) for o in values):  # added or deleted keys, dicts: on a copy
            cfg = copy.deepcopy(base)
            try:
                apply_overrides(values, cfg)
            except Exception:
                return inspect(_app(self.full(overrides)))
            return inspect(cfg)
        saved = [(o.key_or_group, _raw(base, o.key_or_group)) for o in values]
        try:
            apply_overrides(values, base)
        except Exception:
            return inspect(_app(self.full(overrides)))
        else:
            return inspect(base)
        finally:
            for key, value in reversed(saved):
                OmegaConf.update(base, key, value, merge=False)

    def base_value(self, overrides: Sequence[str], key: str) -> Any:
        """`key` as written in the config of the cell's group choices alone (its plain overrides,
        which a caller reads itself, not applied): a cheap look before a full check."""
        groups, _ = self._split([self._parse(line) for line in overrides])
        return _raw(self._base(tuple(o.input_line for o in groups)), key)

    def _parse(self, line: str) -> Any:
        if line not in self._parsed:
            (self._parsed[line],) = self.parser.parse_overrides([line])
        return self._parsed[line]

    def _base(self, groups: tuple[str, ...]) -> Any:
        if groups not in self._bases:
            self._bases[groups] = _app(self.full(list(groups)))
            if len(self._bases) > CACHED:
                self._bases.popitem(last=False)
        self._bases.move_to_end(groups)
        return self._bases[groups]

    def _split(self, parsed: list[Any]) -> tuple[list[Any], list[Any]]:
        """(group choices and anything unusual, plain overrides) as Hydra's defaults list splits them."""
        groups, values = [], []
        for o in parsed:
            (values if self._is_plain(o) else groups).append(o)
        return groups, values

    def _is_plain(self, o: Any) -> bool:
        if o.input_line not in self._plain:
            self._plain[o.input_line] = o.package is None and not o.is_sweep_override() \
                and not o.key_or_group.startswith("hydra") \
                and (isinstance(o.value(), dict) or not self.loader.repository.group_exists(o.key_or_group))
        return self._plain[o.input_line]


def _app(cfg: Any) -> Any:
    """The app's part of a composed config (the `hydra` node is most of the bulk)."""
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def _settable(cfg: Any, override: Any) -> bool:
    """A plain `key=value` of a key that holds a single value: applied and undone in place."""
    if override.is_add() or override.is_delete() or isinstance(override.value(), (dict, list)):
        return False
    parent, _, leaf = override.key_or_group.rpartition(".")
    try:
        node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
        return isinstance(node, DictConfig) and isinstance(node._get_node(leaf), ValueNode)
    except Exception:
        return False


def _raw(cfg: Any, key: str) -> Any:
    """A leaf's value as written (an interpolation stays one)."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return node._get_node(leaf)._value()


def progress_line(what: str, done: int, total: int, elapsed_s: float) -> str:
    """`checking cells: 1 of 2 (13 s per cell, 13 s left)`; a rate under one a second as seconds
    per item, so a slow check never reads `0/s`."""
    if done == 0:
        return f"{what}: 0 of {total} ({elapsed_s:.0f} s so far)"
    rate = done / elapsed_s
    pace = f"{rate:.0f}/s" if rate >= 1 else f"{1 / rate:.0f} s per cell"
    return f"{what}: {done} of {total} ({pace}, {(total - done) / rate:.0f} s left)"


def with_progress(items: Sequence[T], what: str, delay_s: float = 3.0, every_s: float = 10.0) -> Iterator[T]:
    """`items`, with a progress bar (count, rate, time left) once it has taken more than delay_s:
    tqdm on a terminal, a log line every `every_s` otherwise (SLURM logs)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, desc=what, unit="cell", delay=delay_s, leave=False)
        return
    t0 = last = time.monotonic()
    for i, item in enumerate(items):
        now = time.monotonic()
        if now - t0 > delay_s and now - last > every_s:
            log.info("%s", progress_line(what, i, len(items), now - t0))
            last = now
        yield item


def problems_of(cells: Iterable[Sequence[str]], problems: Callable[[Sequence[str]], list[str]]) -> list[str]:
    """Every cell's problems, each cell checked (none skipped, so every refused cell is named)."""
    cells = list(cells)
    return [p for overrides in with_progress(cells, "checking cells") for p in problems(overrides)]
