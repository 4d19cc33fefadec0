"""The restore test on another machine (seed S12): restore a snapshot from the medium into a
scratch folder, compare every file with the snapshot, optionally run a check command (e.g.
start the database copy), time it, and record the result on the medium itself."""

from __future__ import annotations

import os
import platform as pyplatform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from praxisbackup import platform
from praxisbackup.catalog.drills import Drills
from praxisbackup.engine.paths import native_path
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.snapshot import find_snapshot
from praxisbackup.errors import PraxisError
from praxisbackup.media.label import AttachedMedium
from praxisbackup.media.register import Register
from praxisbackup.model.drill import DrillRecord

CHECK_OUTPUT_LIMIT = 2000


def run_drill(
    repo: Repository,
    medium: AttachedMedium,
    snapshot_ref: str = "latest",
    scratch: str | None = None,
    check_command: str | None = None,
    register: Register | None = None,
    clock: Callable[[], datetime] | None = None,
) -> DrillRecord:
    """Restore, verify, check, time; the record is written to the medium (and to the local
    register when this machine has one). A temporary scratch folder is removed afterwards.
    ``clock`` gives the drill's date (injectable, like the nightly job's, for tests that build
    a history)."""
    snap = find_snapshot(repo, snapshot_ref)
    target = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="praxisbackup-drill-"))
    started = time.monotonic()
    try:
        result = Restorer(repo, snap, RestoreOptions(target=str(target), verify=True)).run()
        check_ok, check_output = True, ""
        if check_command:
            proc = subprocess.run(
                check_command,
                shell=True,
                cwd=target,
                capture_output=True,
                text=True,
                check=False,
                env=dict(os.environ, PRAXISBACKUP_DRILL_ROOT=str(target)),
            )
            check_ok = proc.returncode == 0
            check_output = (proc.stdout + proc.stderr)[-CHECK_OUTPUT_LIMIT:]
    finally:
        if not scratch:
            shutil.rmtree(target, ignore_errors=True)
    record = DrillRecord(
        time=(clock or (lambda: datetime.now().astimezone()))().isoformat(timespec="seconds"),
        machine=platform.hostname(),
        system=f"{pyplatform.system()} {pyplatform.release()}",
        medium_id=medium.label.medium_id,
        medium_label=medium.label.label,
        snapshot=snap.id,
        files=result.files,
        bytes=result.bytes,
        verified=result.verified_files,
        seconds=round(time.monotonic() - started, 2),
        ok=result.ok and check_ok,
        errors=[
            f"{native_path(e.path)}: {e.reason}" for e in result.errors + result.verify_failures
        ][:100],
        check_command=check_command or "",
        check_ok=check_ok,
        check_output=check_output,
    )
    repo.write_meta(record.meta_name(), record.to_json())
    if register is not None:
        register.event(
            medium.label.medium_id, "drill", "attached", "", _verdict(record), when=record.time
        )
        Drills(register.path).record(record)
    return record


def _verdict(record: DrillRecord) -> str:
    return "ok" if record.ok else "FAILED"


def import_drills(repo: Repository, register: Register, medium_id: str) -> int:
    """Enter drills recorded on the medium (run on other machines) into the local register
    and keep their full records (the evidence report shows machine, amount and duration);
    returns how many were new. Unreadable records are skipped (``check`` reports them)."""
    known = {h["time"] for h in register.history(medium_id) if h["kind"] == "drill"}
    drills = Drills(register.path)
    added = 0
    for name in list(repo.list_names("meta")):
        if not name.startswith("drill-"):
            continue
        try:
            record = DrillRecord.from_json(repo.read_meta(name))
        except PraxisError:  # a damaged record must not stop the night; `check` reports it
            continue
        if record.time:
            drills.record(record)
        if record.time and record.time not in known:
            register.event(
                medium_id, "drill", "attached", record.machine, _verdict(record), when=record.time
            )
            known.add(record.time)
            added += 1
    return added
