"""`seg58 dashboard <sweep dir>`: optuna-dashboard on a search's own study, local and read-only
by default; in headless Chromium the page lists the study and its trials."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, wait_for_text

APPS = Path(__file__).resolve().parents[1] / "apps"


@pytest.fixture
def dashboard(tmp_path):
    """A 3-trial search of the toy app, and `seg58 dashboard` serving it: (url, api base, process)."""
    app = tmp_path / "toy"
    shutil.copytree(APPS / "toy", app)
    env = {k: v for k, v in os.environ.items() if k != "SEG58_STUDY"}
    subprocess.run([sys.executable, "app.py", "-m", "hydra.sweeper.n_trials=3", "x=interval(-2, 2)",
                    "hydra.sweeper.study_name=toy-search"], cwd=app, env=env, check=True, capture_output=True,
                   timeout=300)
    (sweep_dir,) = (app / "multirun").glob("*")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "seg58", "dashboard", str(sweep_dir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = re.search(r"(http://\S+)", proc.stdout.readline() + proc.stdout.readline()).group(1)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/api/studies", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        yield url, base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_dashboard_serves_the_sweeps_study_read_only_on_localhost(dashboard):
    url, base, _ = dashboard
    assert url.startswith("http://127.0.0.1:")  # nothing listens beyond this machine by default
    studies = json.load(urllib.request.urlopen(f"{base}/api/studies", timeout=10))["study_summaries"]
    assert [s["study_name"] for s in studies] == ["toy-search"]
    study = json.load(urllib.request.urlopen(f"{base}/api/studies/{studies[0]['study_id']}", timeout=30))
    assert len(study["trials"]) == 3
    rename = urllib.request.Request(f"{base}/api/studies/{studies[0]['study_id']}/rename", method="POST",
                                    data=json.dumps({"study_name": "renamed"}).encode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(rename, timeout=10)
    assert refused.value.code == 403 and b"read-only" in refused.value.read()
    assert json.load(urllib.request.urlopen(f"{base}/api/studies", timeout=10))["study_summaries"][0][
        "study_name"] == "toy-search"


@pytest.mark.ui
def test_the_dashboard_page_lists_the_study_and_its_trials(dashboard, browser):
    url, _, _ = dashboard
    browser.get(url.replace(url.split("/dashboard")[1], ""))  # the study list
    wait_for_text(browser, "toy-search", timeout=60)
    browser.get(f"{url}/trials")  # the study's trials, one entry each
    body = wait_for_text(browser, "3 Trials", timeout=60)
    assert all(f"Trial {n}" in body for n in range(3)) and body.count("Complete") >= 3
