"""What a search keeps in <sweep dir>/search.json so that `hydra.sweeper.resume` can continue it:
a typed record, on disk as the same JSON as ever (files written before it stay readable)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seg58.base.names import SEARCH_STATE_FILE


@dataclass
class SearchState:
    study: dict[str, Any]  # the StudySpec's fields (storage, study_name, metric, direction, pruner)
    n_trials: int  # the total the search runs to
    params: dict[str, str]  # the search space as the user wrote it
    fixed: list[str]  # the overrides every trial shares
    sampler: Any = None  # the sampler's spec ({_target_: ...}), rebuilt on resume
    custom_search_space: str | None = None  # "module.fn": fn(config, trial) adds parameters
    hooked: dict[str, Any] = field(default_factory=dict)  # the hooks' own facts, top-level keys on disk

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "n_trials": self.n_trials, "params": self.params, "fixed": self.fixed,
                "sampler": self.sampler, "custom_search_space": self.custom_search_space, **self.hooked}

    @classmethod
    def from_dict(cls, data: dict[str, Any], hooked_keys: tuple[str, ...] = ()) -> SearchState:
        return cls(study=data["study"], n_trials=data["n_trials"], params=data["params"], fixed=data["fixed"],
                   sampler=data.get("sampler"), custom_search_space=data.get("custom_search_space"),
                   hooked={k: data[k] for k in hooked_keys if k in data})

    def save(self, sweep_dir: Path) -> None:
        (Path(sweep_dir) / SEARCH_STATE_FILE).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, sweep_dir: Path, hooked_keys: tuple[str, ...] = ()) -> SearchState:
        return cls.from_dict(json.loads((Path(sweep_dir) / SEARCH_STATE_FILE).read_text()), hooked_keys)
