"""`seg58 ...` run inside the test process, as the `cli` fixture does: the same entry point
(`seg58.cli.main`) a shell runs, without paying an interpreter start and the imports of torch,
timm, SMP and MLflow (6-10 s on 2 cores) per call.

What a run may change in the process is put back afterwards: the environment, the working folder,
`sys.argv`, torch's thread count, signal handlers, the logging record factory and handlers,
Hydra's global state, MLflow's tracking URI and active run. Python warnings are shown every time
(a subprocess would show each once). Tests that need a real process (kill -9, Ctrl-C, the
interpreter's own start-up) start one with `cli_process` or `subprocess`."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
import warnings
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class _Tee(io.StringIO):
    """A captured stream that also answers fileno() like the real one would not: some libraries
    (tqdm, faulthandler) ask; they get the process's own stream, which pytest captures."""

    def __init__(self, fallback):
        super().__init__()
        self._fallback = fallback

    def fileno(self) -> int:
        return self._fallback.fileno()

    def isatty(self) -> bool:
        return False


def forget_mlflow_stores() -> None:
    """MLflow keeps one store per URI for the life of the process (and so its connections)."""
    from mlflow.tracking._model_registry.registry import ModelRegistryStoreRegistry
    from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry

    TrackingStoreRegistry._get_store_with_resolved_uri.cache_clear()
    ModelRegistryStoreRegistry._get_store_with_resolved_uri.cache_clear()


@contextlib.contextmanager
def _process_state_restored():
    import mlflow
    import torch
    from hydra.core.global_hydra import GlobalHydra
    from mlflow.tracking._tracking_service import utils as tracking_utils

    environ, cwd, argv = dict(os.environ), os.getcwd(), list(sys.argv)
    threads, factory = torch.get_num_threads(), logging.getLogRecordFactory()
    handlers = {s: signal.getsignal(s) for s in SIGNALS}
    root = logging.getLogger()
    root_state = (list(root.handlers), root.level)
    named = {name: (list(lg.handlers), lg.level, lg.propagate) for name, lg in logging.root.manager.loggerDict.items()
             if isinstance(lg, logging.Logger)}
    tracking_uri = tracking_utils._tracking_uri
    tracking_utils._artifact_repos_cache.clear()  # keyed by run id alone: a copied store has the same ids
    forget_mlflow_stores()  # a process starts without any (a test may have dropped a database since)
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run("KILLED")
        GlobalHydra.instance().clear()
        for handler in root.handlers:
            if handler not in root_state[0]:
                with contextlib.suppress(Exception):
                    handler.close()
        root.handlers[:], root.level = root_state
        for name, lg in logging.root.manager.loggerDict.items():
            if not isinstance(lg, logging.Logger):
                continue
            before = named.get(name)
            for handler in lg.handlers:
                if before is None or handler not in before[0]:
                    with contextlib.suppress(Exception):
                        handler.close()
            lg.handlers[:] = before[0] if before else []
            if before:
                lg.level, lg.propagate = before[1], before[2]
        logging.setLogRecordFactory(factory)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        torch.set_num_threads(threads)
        tracking_utils._tracking_uri = tracking_uri
        tracking_utils._artifact_repos_cache.clear()
        sys.argv[:] = argv
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)


def run_seg58(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -m seg58 *args` in `cwd` with `env` laid over this process's environment, in this
    process; a CompletedProcess with the exit code, stdout and stderr a subprocess would give."""
    from seg58 import cli

    assert threading.current_thread() is threading.main_thread(), "seg58 in-process needs the main thread: cli_process"
    out, err = _Tee(sys.__stdout__), _Tee(sys.__stderr__)
    code = 0
    with _process_state_restored(), warnings.catch_warnings():
        warnings.simplefilter("default")
        os.environ.update(env)
        os.chdir(cwd)
        sys.argv[:] = ["seg58", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if not isinstance(e.code, int | None):
                    print(e.code, file=sys.stderr)
            except KeyboardInterrupt:
                raise
            except BaseException:  # what the interpreter would print for an uncaught exception
                traceback.print_exc()
                code = 1
    return subprocess.CompletedProcess(["seg58", *args], code, out.getvalue(), err.getvalue())
