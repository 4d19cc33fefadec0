"""A smoke run of the torture harness: a few crashes and corruptions, the whole bad-input
catalogue, a short fuzz and the security checks; any regression fails CI."""

from __future__ import annotations

import json
from pathlib import Path

from praxisbackup.torture.__main__ import main


def test_torture_smoke_meets_every_goal(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    code = main(["--smoke", "--seed", "4242", "--json", str(out), "--work", str(tmp_path / "work")])
    figures = json.loads(out.read_text())
    assert figures["crashes"]["runs"] == 3
    assert (
        figures["crashes"]["damaged_repositories"] == 0
        and figures["crashes"]["lost_snapshots"] == 0
    )
    assert figures["corruption"]["injected"] == 8 and figures["corruption"]["missed"] == 0
    assert figures["bad_input"]["handled"] == figures["bad_input"]["cases"] >= 15
    assert figures["fuzzing"]["inputs"] > 1000 and figures["fuzzing"]["unhandled"] == 0
    assert figures["security"]["passed"] == figures["security"]["total"] >= 7
    restores = figures["restore_crashes"]
    assert restores["runs"] == 3 and restores["files_checked"] > 0
    assert restores["half_written"] == 0 and restores["not_completed"] == 0
    malicious = figures["malicious"]
    assert malicious["handled"] == malicious["cases"] >= 20
    assert malicious["outside_writes"] == malicious["tracebacks"] == 0
    assert code == 0 and figures["goals_met"]
