"""`seg58 [--debug] [COMMAND] [args]`: dispatch only. Training by default (`-m` for sweeps); each
command lives in its own module of seg58.commands, imported when it is chosen."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def _hydra_command(name: str) -> tuple[Callable[[], None], list[str]]:
    """(the Hydra app, extra arguments) of a command that composes the run config."""
    if name == "check-data":
        from seg58.commands import check_data

        return check_data.app, [*check_data.HYDRA_ARGS, *check_data.bare_dataset_path(sys.argv[2:])]
    if name == "bench":
        from seg58.commands.bench import app
    elif name == "evaluate":
        from seg58.commands.evaluate import app
    elif name == "predict":
        from seg58.commands.predict import app
    elif name == "export":
        from seg58.commands.export import app
    else:
        from seg58.commands.train import app

        return app, sys.argv[1:]
    return app, sys.argv[2:]


def _plain_command(name: str) -> Callable[[list[str]], int]:
    """The main(argv) of a command with ordinary arguments (it composes no run config)."""
    if name == "report":
        from seg58.commands.report import main
    elif name == "rerun":
        from seg58.commands.rerun import main
    elif name == "status":
        from seg58.commands.status import main
    elif name == "collect":
        from seg58.commands.collect import main
    elif name == "gc":
        from seg58.commands.gc import main
    elif name == "import-artefact":
        from seg58.commands.import_artefact import main
    elif name == "augment-artefact":
        from seg58.commands.augment_artefact import main
    elif name == "dashboard":
        from seg58.commands.dashboard import main
    else:  # fetch-weights: job overrides (encoder=a,b expands); needs internet
        from seg58.commands.fetch_weights import main
    return main


HYDRA_COMMANDS = ("check-data", "bench", "evaluate", "predict", "export")
PLAIN_COMMANDS = ("report", "rerun", "status", "collect", "gc", "dashboard", "import-artefact", "augment-artefact",
                  "fetch-weights")


def main() -> None:
    """`seg58 [--debug] [COMMAND] [args]`: training by default; see the tuples above for the others."""
    from seg58.config.user_errors import (
        DEBUG_ENV,
        USER_ERROR_EXIT,
        debug_enabled,
        hydra_hint_only_for_crashes,
        run_plain_command,
    )

    if "--debug" in sys.argv[1:]:  # tracebacks for user errors too (also SEG58_DEBUG=1)
        sys.argv.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
    if debug_enabled():
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    from seg58.base.secrets import mask_log_records, move_passwords

    mask_log_records()
    try:  # a password in a URI goes to the environment before anything can save or print it
        sys.argv[1:], notes = move_passwords(sys.argv[1:], os.environ)
    except ValueError as e:
        print(f"seg58: {e}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
    for note in notes:
        print(f"seg58: {note}", file=sys.stderr)
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command in PLAIN_COMMANDS:
        sys.exit(run_plain_command(f"seg58 {command}", _plain_command(command), sys.argv[2:]))
    app, args = _hydra_command(command if command in HYDRA_COMMANDS else "train")
    sys.argv[1:] = args
    try:
        with hydra_hint_only_for_crashes():
            app()
    except SystemExit as e:  # Hydra reports every error itself and exits 1
        from hydra.errors import CompactHydraException

        if e.code == 1 and isinstance(e.__context__, CompactHydraException):
            sys.exit(USER_ERROR_EXIT)  # bad input (config, data, a sweep setting), told in one message
        raise
