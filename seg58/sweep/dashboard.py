"""optuna-dashboard on a search's own study (the journal file in its sweep folder, or the RDB it
was given): the view Optuna users know, live while the search runs. Read-only unless asked: the
dashboard can rename and delete studies, tell trials and write notes, so every request but a
read is refused."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from seg58.base.errors import UsageError
from seg58.base.names import SEARCH_STATE_FILE
from seg58.sweep.study import StudySpec

READS = ("GET", "HEAD")


def read_only(app: Callable) -> Callable:
    """A WSGI app that answers reads and refuses every write with 403."""

    def guarded(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") in READS:
            return app(environ, start_response)
        body = json.dumps({"reason": "read-only dashboard: start `seg58 dashboard` with --write to change the "
                                     "study"}).encode()
        start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return guarded


def study_of(sweep_dir: Path) -> StudySpec:
    state = Path(sweep_dir) / SEARCH_STATE_FILE
    if not state.is_file():
        raise UsageError(f"{sweep_dir}: no {SEARCH_STATE_FILE} there (not a seg58 search folder; a grid has no study)")
    return StudySpec(**json.loads(state.read_text())["study"])


def dashboard_app(sweep_dir: Path, write: bool = False) -> tuple[Callable, StudySpec, int]:
    """(WSGI app, the study's spec, its id in the storage) for a search's sweep folder."""
    import optuna
    from optuna_dashboard import wsgi

    spec = study_of(sweep_dir)
    storage = optuna.storages.get_storage(spec.storage_object())
    study_id = storage.get_study_id_from_name(spec.study_name)
    app = wsgi(storage)
    return (app if write else read_only(app)), spec, study_id
