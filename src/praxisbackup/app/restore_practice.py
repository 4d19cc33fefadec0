"""Restore the practice onto this (or a new) server (seed S13, S14).

``prepare`` opens the attached medium, picks the snapshot (the newest green one unless told)
and plans which allowed items come back where; the interface shows that plan and asks. ``run``
stops the services, confirms their files are closed, renames what is there to ``_Original``,
restores exactly the planned items with their dates, verifies them, starts the services again
(always), and writes the restore protocol (text, PDF, HTML) into the state folder.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from praxisbackup.app.downtime import service_sequence, services_stopped
from praxisbackup.app.interrupt import StopRequests
from praxisbackup.app.medium import latest_green, open_attached
from praxisbackup.engine.paths import split_source
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import Snapshot, find_snapshot
from praxisbackup.errors import PraxisError
from praxisbackup.media.label import AttachedMedium
from praxisbackup.model.config import Config
from praxisbackup.model.locations import state_dir
from praxisbackup.practice.restore import PracticeRestorePlan, PracticeRestoreResult, execute
from praxisbackup.practice.restore import plan_restore as plan_items
from praxisbackup.report.render import lines_html, lines_pdf
from praxisbackup.report.restore import restore_protocol_lines


@dataclass
class PreparedRestore:
    medium: AttachedMedium
    repo: Repository
    snapshot: Snapshot
    root: str
    plan: PracticeRestorePlan

    @property
    def version_differs(self) -> bool:
        """The installed program files are not those of the backup (vendor's precondition)."""
        p = self.plan
        return bool(
            p.fingerprint_backup
            and p.fingerprint_installed
            and p.fingerprint_backup != p.fingerprint_installed
        )


@dataclass
class RestoreOutcome:
    result: PracticeRestoreResult
    lines: list[str]
    protocol_stem: str

    @property
    def ok(self) -> bool:
        return self.result.ok


def default_root(snap: Snapshot) -> str:
    """The folder that held CompuMED when the snapshot was taken (e.g. ``C:\\``)."""
    for source in snap.paths:
        comps = split_source(source)
        if comps and comps[-1].casefold() == "compumed":
            base = comps[:-1]
            if sys.platform == "win32":  # pragma: no cover - Windows only
                return base[0] + ":\\" + "\\".join(base[1:])
            return "/" + "/".join(base)
    raise PraxisError("the snapshot holds no CompuMED folder")


def prepare(
    config: Config,
    passphrase: str,
    snapshot_ref: str | None = None,
    target_root: str | None = None,
) -> PreparedRestore:
    medium, repo = open_attached(config, passphrase)
    snap = find_snapshot(repo, snapshot_ref) if snapshot_ref else latest_green(repo)
    root = target_root or default_root(snap)
    return PreparedRestore(medium, repo, snap, root, plan_items(repo, snap, root, datetime.now()))


def run(config: Config, prepared: PreparedRestore) -> RestoreOutcome:
    """Execute a prepared restore with the services stopped; write the restore protocol."""
    sequence = service_sequence(config.services)
    with (
        StopRequests() as stops,
        services_stopped(sequence, [c for s in config.services for c in s.check_closed], stops),
    ):
        result = execute(prepared.repo, prepared.plan)
    lang = config.practice.language
    lines = restore_protocol_lines(config.practice.name, prepared.medium.label.label, result, lang)
    report_dir = Path(state_dir(config)) / "restores"
    report_dir.mkdir(parents=True, exist_ok=True)
    stem = report_dir / f"restore-{datetime.now():%Y%m%d-%H%M%S}"
    stem.with_suffix(".txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    stem.with_suffix(".pdf").write_bytes(lines_pdf(lines))
    stem.with_suffix(".html").write_text(lines_html(lines), encoding="utf-8")
    return RestoreOutcome(result, lines, os.fspath(stem))
