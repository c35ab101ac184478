"""Shared fixtures: a per-session synthetic-data cache and a helper to run the real CLI."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

# fixtures shared across folders and defined once (the SLURM cluster is one per session)
pytest_plugins = ["cluster_fixtures", "trained", "reaper", "app_runs"]
REPO = Path(__file__).resolve().parents[1]
# A search with deterministic outcomes from real Optuna parts: BruteForceSampler tries every
# combination once; ThresholdPruner(lower=1.1) prunes every trial once it is past its warm-up
# epoch (mIoU <= 1), so a 1-epoch trial completes and a 3-epoch trial is pruned after epoch 2.
PRUNING_SEARCH = [
    "search=smoke", "hydra.sweeper.params=null",
    "hydra/sweeper/sampler=brute_force", "hydra.sweeper.sampler.seed=0",
    "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner", "+hydra.sweeper.pruner.lower=1.1",
    "~hydra.sweeper.pruner.n_startup_trials", "hydra.sweeper.pruner.n_warmup_steps=1",
    "trainer.epochs=choice(1,3)",
]
# Tests that run seg58 end to end (in this process or a real one), a trained fixture or an `mlflow server` are
# the slow tier: each costs seconds to a minute, and the fast tier stays under two minutes.
SLOW_FIXTURES = {"cli", "cli_process", "mlflow_server", "smoke_run", "smoke_sweep", "server_sweep", "app", "hos"}


def pytest_configure(config):
    workers = getattr(config, "workerinput", {}).get("workercount")
    if workers:  # a pytest-xdist worker: the machine's cores are shared by the workers, as by local jobs
        import torch

        from seg58.base.names import CONCURRENT_JOBS_ENV
        from seg58.engine.runtime import available_cpus

        os.environ.setdefault(CONCURRENT_JOBS_ENV, str(workers))
        torch.set_num_threads(max(1, available_cpus() // workers))


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(trylast=True)  # after pytest-xdist has named each item's group
def pytest_collection_finish(session):
    config = session.config
    for item in session.items:
        if item.get_closest_marker("slurm") and not item.get_closest_marker("xdist_group"):
            raise pytest.UsageError(f"{item.nodeid}: a SLURM test needs pytest.mark.xdist_group('slurm') in its "
                                    "module (one cluster per machine: pytest-xdist must keep them in one worker)")
        grouped = getattr(config.option, "loadgroup", False)  # set in xdist's workers under --dist loadgroup
        if item.get_closest_marker("xdist_group") and grouped and "@" not in item.nodeid:
            raise pytest.UsageError("pytest-xdist's --dist loadgroup ignored the test groups (pytest 9.2 and later "
                                    "with pytest-xdist 3.8): install the pinned pytest (constraints.txt)")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """Synthetic sets are generated once per test session and shared by every test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def tracking_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _cli_env(tmp_path: Path, cache_dir: Path, env: dict[str, str] | None) -> dict[str, str]:
    return {"SEG58_CACHE_DIR": str(cache_dir), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "PYTHONUNBUFFERED": "1", **(env or {})}


@pytest.fixture
def cli(tmp_path, cache_dir):
    """`seg58 ...` in tmp_path, like a user would, but inside this process (tests/inproc.py: the
    same entry point without an interpreter start); returns a CompletedProcess."""
    from inproc import run_seg58

    def run(*args: str, timeout: float = 300, env: dict[str, str] | None = None):
        return run_seg58(list(args), tmp_path, _cli_env(tmp_path, cache_dir, env))

    return run


@pytest.fixture
def cli_process(tmp_path, cache_dir):
    """Run `python -m seg58 ...` in tmp_path as its own process; returns CompletedProcess. For what
    only a real process shows: its start-up, its exit code as a shell sees it, its own output."""

    def run(*args: str, timeout: float = 300, env: dict[str, str] | None = None):
        return subprocess.run(
            [sys.executable, "-m", "seg58", *args], cwd=tmp_path,
            env={**os.environ, **_cli_env(tmp_path, cache_dir, env)}, capture_output=True, text=True, timeout=timeout,
        )

    return run


def mlflow_runs(uri: str, experiment: str, include_sweeps: bool = False):
    """The training runs of an experiment (sweep parent runs only when asked for)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = [] if exp is None else client.search_runs([exp.experiment_id])
    return [r for r in runs if include_sweeps or r.data.tags.get("seg58.sweep") != "true"]


def wait_for(predicate, timeout: float, what: str):
    """predicate()'s first truthy value, polled; an AssertionError naming `what` after `timeout` s."""
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(port: int, store: Path, backend_uri: str | None = None, workers: int = 1,
                        log: Path | None = None, startup_timeout: float = 180,
                        app_name: str | None = None) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1:port; its backend is SQLite in `store` unless backend_uri is given
    (e.g. postgresql+psycopg2://...); artifacts go to store/artifacts; output to `log` if given;
    `app_name="basic-auth"`: with users (its settings from $MLFLOW_AUTH_CONFIG_PATH)."""
    store.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab") if log else subprocess.DEVNULL  # the child keeps its own copy
    # no background job runner (MLflow's GenAI evaluation jobs): seven worker processes fewer
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", backend_uri or f"sqlite:///{store / 'server.db'}",
         "--artifacts-destination", str(store / "artifacts"), "--workers", str(workers),
         *(["--app-name", app_name] if app_name else [])],
        stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL, env=env,
        start_new_session=True)  # its own process group: uvicorn workers and job runner die with it
    if log:
        out.close()
    deadline = time.time() + startup_timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    stop_mlflow_server(proc, timeout=0)
    raise RuntimeError(f"mlflow server did not start (exit {proc.poll()})"
                       + (f":\n{log.read_text(errors='replace')[-3000:]}" if log else ""))


def stop_mlflow_server(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (mlflow passes it on to uvicorn and its job runner), then SIGKILL to the whole group
    start_mlflow_server created, so no worker outlives a server that hung or never came up."""
    if timeout > 0:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One real `mlflow server` on 127.0.0.1 with a SQLite backend for the session (a start costs
    10-15 s on 2 cores); yields its URI. Tests on it write to experiments of their own."""
    port = free_port()
    proc = start_mlflow_server(port, tmp_path_factory.mktemp("server"))
    yield f"http://127.0.0.1:{port}"
    stop_mlflow_server(proc)


def make(*overrides: str, hydra: bool = False):
    """seg58's config composed as the CLI composes it (with the hydra node when asked)."""
    from hydra import compose, initialize_config_dir

    from seg58.config.schema import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


@pytest.fixture
def browser():
    missing = [b for b in ("chromium", "chromedriver") if shutil.which(b) is None]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("selenium")
    if missing:
        if os.environ.get("SEG58_REQUIRE_UI") == "1":
            pytest.fail(f"UI test requirements missing: {missing}")
        pytest.skip(f"needs {missing} (apt-get install chromium chromium-driver; pip install selenium)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1000", "--no-first-run", "--disable-quic", "--disable-sync",
                "--disable-background-networking", "--disable-component-update"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    yield driver
    driver.quit()


def wait_for_text(driver, text: str, timeout: float = 30) -> str:
    from selenium.webdriver.common.by import By

    end = time.time() + timeout
    while time.time() < end:
        body = driver.find_element(By.TAG_NAME, "body").text
        if text in body:
            return body
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not shown; page says: {body[:1500]}")


PG_SECRET = "s3cretpw"  # the password of postgres_with_password's server


@pytest.fixture(scope="session")
def postgres_session():
    """One PostgreSQL server per session that checks passwords (scram-sha-256; the password is
    PG_SECRET): an initdb and a start cost several seconds on 2 cores."""
    import pg

    why = pg.missing()
    try:
        import psycopg2  # noqa: F401 - MLflow's and Optuna's SQLAlchemy driver
    except ImportError:
        why = why or "psycopg2 not installed (pip install -e '.[test]' or '.[postgres]')"
    if why:
        if os.environ.get("SEG58_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{why}, but SEG58_REQUIRE_POSTGRES=1")
        pytest.skip(why)
    with pg.postgres_server(free_port(), password=PG_SECRET) as server:
        yield server


@pytest.fixture
def postgres_with_password(postgres_session):
    """The session's PostgreSQL with empty databases `mlflow` and `optuna` (each its own: both keep
    an alembic_version table), made anew for each test."""
    from inproc import forget_mlflow_stores

    for name in ("mlflow", "optuna"):
        postgres_session.recreate_database(name)
    forget_mlflow_stores()  # this process's stores of the databases just dropped
    return postgres_session
