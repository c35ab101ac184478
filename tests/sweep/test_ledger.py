"""The sweep's bookkeeping on disk (seg58/sweep/ledger.py): one appended line per event, a summary
rewritten at most every few seconds, and readers that see every event all the same."""

from __future__ import annotations

import json

from seg58.base.names import EVENTS_FILE, SUMMARY_FILE
from seg58.sweep.ledger import Ledger


def cell(num: int, status: str, **extra) -> dict:
    return {"num": num, "overrides": [f"seed={num}"], "status": status, **extra}


def test_events_between_summaries_are_replayed_by_readers(tmp_path):
    ledger = Ledger(tmp_path, flush_s=3600)  # no timed flush in this test: only forced ones
    for n in range(500):
        ledger.put(cell(n, "PENDING"), log=False)
    ledger.write({"kind": "grid"}, force=True)
    written = (tmp_path / SUMMARY_FILE).stat()
    for n in range(500):
        ledger.put(cell(n, "SUBMITTED", job_id=str(n)))
        ledger.put(cell(n, "FAILED" if n % 7 == 0 else "COMPLETED", objective=n / 1000))
        ledger.write({"kind": "grid"})  # throttled: not rewritten
    assert (tmp_path / SUMMARY_FILE).stat().st_mtime_ns == written.st_mtime_ns
    assert len((tmp_path / EVENTS_FILE).read_text().splitlines()) == 1000
    assert all(c["status"] == "PENDING" for c in json.loads((tmp_path / SUMMARY_FILE).read_text())["cells"])

    seen, facts = Ledger.read(tmp_path)  # e.g. `seg58 status` while the sweep runs, or after its driver died
    assert facts["kind"] == "grid"
    assert [c["status"] for c in seen.cells] == ["FAILED" if n % 7 == 0 else "COMPLETED" for n in range(500)]
    assert (seen.ended, seen.failed) == (500, len(range(0, 500, 7)))


def test_a_half_written_last_event_is_ignored_and_counts_follow_each_change(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.put(cell(0, "PENDING"), log=False)
    ledger.write({}, force=True)
    ledger.put(cell(0, "FAILED"))
    assert (ledger.ended, ledger.failed, ledger.ended_own) == (1, 1, 1)
    ledger.put(cell(0, "CANCELLED", cancelled_by_sweep=True))  # the same cell again: its old state uncounted
    assert (ledger.ended, ledger.failed, ledger.ended_own) == (1, 0, 0)
    with open(tmp_path / EVENTS_FILE, "a") as f:
        f.write('{"num": 0, "status": "COMPL')  # the writer was killed mid-line
    seen, _ = Ledger.read(tmp_path)
    assert [c["status"] for c in seen.cells] == ["CANCELLED"]
    ledger.write({}, force=True)  # a forced summary includes everything logged so far
    assert json.loads((tmp_path / SUMMARY_FILE).read_text())["cells"][0]["status"] == "CANCELLED"
    ledger.close()
    again = Ledger(tmp_path)  # e.g. `seg58 collect` finishing the sweep: its first event starts a new line
    again.put(cell(0, "COMPLETED"))
    assert [c["status"] for c in Ledger.read(tmp_path)[0].cells] == ["COMPLETED"]


def test_a_resumed_search_never_counts_past_its_target(tmp_path):
    """Trials interrupted by Ctrl-C are retried as new trials on resume: they do not count towards
    n_trials twice (a SLURM search of 8 once said [9/8 ended], [10/8 ended])."""
    from seg58.base.status import CellStatus
    from seg58.sweep.ledger import Ledger

    ledger = Ledger(tmp_path)
    statuses = [CellStatus.COMPLETED] * 6 + [CellStatus.INTERRUPTED] * 2  # the first run, stopped
    for num, status in enumerate(statuses):
        ledger.put({"num": num, "overrides": [], "status": status})
    assert (ledger.ended, ledger.ended_towards_total) == (8, 6)
    for num in (8, 9):  # the resume retries the two interrupted trials
        ledger.put({"num": num, "overrides": [], "status": "COMPLETED"})
    assert ledger.ended_towards_total == 8
    ledger.close()
