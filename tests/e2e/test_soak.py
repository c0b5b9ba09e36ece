"""The fault-injection soak, bounded: every kind of fault once, and not one acknowledged press
lost or stored twice (bench/soak.py; the long run is described in docs/operations.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

SOAK = Path(__file__).parents[2] / "bench" / "soak.py"


@pytest.mark.timeout(660)
def test_a_bounded_soak_through_every_fault_loses_and_duplicates_nothing(tmp_path):
    report = tmp_path / "soak.json"
    proc = subprocess.Popen(
        [sys.executable, str(SOAK), "--kiosks", "3", "--rate", "90", "--hold", "5", "--settle", "1",
         "--recover-timeout", "90", "--drain-timeout", "120", "--json", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except BaseException:
        proc.terminate()  # the soak stops its kiosks, server, broker and PostgreSQL itself
        stdout, stderr = proc.communicate(timeout=60)
        print(stdout[-6000:], stderr[-3000:])  # which fault it was in, in the test log
        raise
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    print(done.stdout[-6000:])  # the table, in the test log
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(report.read_text())
    totals = result["totals"]
    faults = {row["fault"].split(" ")[0] for row in result["rows"]}
    assert {"kiosk_kill", "server_kill", "broker_kill", "broker_kill_draining", "broker_kill_holding",
            "database_kill", "broker_pause",
            "link_drop", "link_half_open", "link_flap", "disk_full"} <= faults
    assert totals["sent"] > 100, "the kiosks must have been pressing throughout"
    assert (totals["lost"], totals["duplicated"]) == (0, 0), done.stdout[-4000:]
    assert totals["stored_once"] == totals["sent"]
    assert totals["drain_s"] is not None, "the drain did not finish"
    assert all(row["recover_s"] is not None for row in result["rows"] if not row["fault"].startswith("(")), \
        "every fault must end with everything stored"
    assert done.returncode == 0, done.stderr[-3000:]
