"""The MLflow UI really shows a sweep as a parent run with nested children: headless Chromium
(Debian's chromium + chromedriver, driven by selenium) against a real `mlflow server`.
CI installs the browser and sets SEG58_REQUIRE_UI=1, so there this test runs or fails."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import mlflow_runs, wait_for_text
from trained import SERVER_EXPERIMENT

pytestmark = pytest.mark.ui
SMOKE = ["experiment=smoke", "trainer.limit_train_batches=null", "trainer.limit_val_batches=null"]


def printed_links(output: str) -> dict[str, str]:
    """The MLflow UI links a sweep or `seg58 report` prints, by name."""
    return dict(re.findall(r"^\s+(training runs|compare|val/miou curves): (http\S+)$", output, re.M))


def test_ui_lists_the_sweep_with_its_nested_runs(cli, mlflow_server, server_sweep, browser, tmp_path):
    """The links printed at the end of a sweep open the training runs (children with their dataset
    digest once expanded), the compare page and the val/miou curves of the sweep's runs."""
    from selenium.webdriver.common.by import By

    (parent,) = [r for r in mlflow_runs(mlflow_server, SERVER_EXPERIMENT, include_sweeps=True)
                 if r.data.tags.get("seg58.sweep") == "true"]
    links = printed_links(server_sweep.output)  # the shared sweep on the session's server (tests/trained.py)
    assert links["training runs"] == f"{mlflow_server}/#/experiments/{parent.info.experiment_id}/runs"
    children = mlflow_runs(mlflow_server, SERVER_EXPERIMENT)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}

    browser.get(links["training runs"])
    body = wait_for_text(browser, parent.info.run_name)
    assert "unet-tu-test_resnet" not in body  # children are folded under the sweep
    link = browser.find_element(By.PARTIAL_LINK_TEXT, "sweep ")
    cell = link.find_element(By.XPATH, "./ancestor::div[@role='gridcell'][1]")
    cell.find_element(By.TAG_NAME, "button").click()  # the expand (+) toggle of the parent
    wait_for_text(browser, "unet-tu-test_resnet")
    body = wait_for_text(browser, "unet-tu-test_convnext")
    assert "3 matching runs" in body
    assert f"({children[0].data.tags['dataset.digest']})" in body  # the Dataset column: name (digest)
    shot = Path(os.environ.get("SEG58_ARTIFACTS_DIR", tmp_path)) / "mlflow_ui_sweep.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000

    browser.get(links["compare"])
    body = wait_for_text(browser, f"Comparing {len(children)} Runs from 1 Experiment")
    body = wait_for_text(browser, "Parallel Coordinates Plot")
    assert "unet-tu-test_resnet" in body and "unet-tu-test_convnext" in body and "encoder.name" in body
    browser.get(links["val/miou curves"])
    body = wait_for_text(browser, "unet-tu-test_convnext")
    assert "val/miou" in body and "unet-tu-test_resnet" in body

    report = cli("report", parent.info.run_id, "--no-log", env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert report.returncode == 0, report.stderr[-2000:]
    assert printed_links(report.stdout) == links
