"""Restore the practice onto this (or a new) server (seed S13, S14).

``prepare`` opens the attached medium, picks the snapshot (the newest green one unless told)
and plans which allowed items come back where; the interface shows that plan and asks. ``run``
stops the services, confirms their files are closed, renames what is there to ``_Original``,
restores exactly the planned items with their dates, verifies them, starts the services again
(always), and writes the restore protocol (text, PDF, HTML) into the state folder.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from praxisbackup import platform
from praxisbackup.app.downtime import service_sequence, services_stopped
from praxisbackup.app.interrupt import StopRequests
from praxisbackup.app.medium import latest_green, open_attached
from praxisbackup.engine.paths import split_source
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import Snapshot, find_snapshot
from praxisbackup.errors import PraxisError, UnsafeTargetError
from praxisbackup.media.label import AttachedMedium
from praxisbackup.model.config import Config
from praxisbackup.model.locations import state_dir
from praxisbackup.model.restore import COMPLETE, RestoreRecord
from praxisbackup.platform.private import private_dir, write_private_file
from praxisbackup.practice.restore import (
    PracticeRestorePlan,
    PracticeRestoreResult,
    execute,
    link_allowed,
    links_in_plan,
    refused_links,
)
from praxisbackup.practice.restore import plan_restore as plan_items
from praxisbackup.report.restore import (
    restore_protocol_html,
    restore_protocol_lines,
    restore_protocol_pdf,
)
from praxisbackup.services.sequence import ServiceEvent


@dataclass
class PreparedRestore:
    medium: AttachedMedium
    repo: Repository
    snapshot: Snapshot
    root: str
    plan: PracticeRestorePlan
    #: The person doing the restore, named in the protocol (default: the logged-in user).
    by: str = ""
    #: Links (junctions) below the target root the person allowed the restore to go through.
    follow_links: list[str] = field(default_factory=list)

    @property
    def links(self) -> list[tuple[str, str, bool]]:
        """Every link on the way to a planned item: (link, where it points, allowed)."""
        return [
            (link, to, link_allowed(link, self.follow_links))
            for link, to in links_in_plan(self.plan)
        ]

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
    record: RestoreRecord | None = field(default=None)

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def complete(self) -> bool:
        """Restored, verified, and nothing required was missing in the backup."""
        return self.record is not None and self.record.status == COMPLETE


def default_root(snap: Snapshot) -> str:
    """The folder that held CompuMED when the snapshot was taken (e.g. ``C:\\``)."""
    for source in snap.paths:
        comps = split_source(source)
        if comps and comps[-1].casefold() == "compumed":
            base = comps[:-1]
            if sys.platform == "win32":  # pragma: no cover - Windows only
                return base[0] + ":\\" + "\\".join(base[1:])
            return "/" + "/".join(base)
    raise PraxisError("the snapshot holds no CompuMED folder", code="error.no_compumed")


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
    """Execute a prepared restore with the services stopped; write the restore protocol. A
    link the person did not allow refuses the restore before anything is stopped or renamed."""
    refused = refused_links(prepared.plan, prepared.follow_links)
    if refused:
        raise UnsafeTargetError(*refused[0])
    started = datetime.now().astimezone()
    sequence = service_sequence(config.services)
    with (
        StopRequests() as stops,
        services_stopped(sequence, [c for s in config.services for c in s.check_closed], stops),
    ):
        result = execute(prepared.repo, prepared.plan, prepared.follow_links)
    record = restore_record(config, prepared, result, started, sequence.timeline.events)
    lang = config.practice.language
    lines = restore_protocol_lines(record, lang)
    report_dir = Path(state_dir(config)) / "restores"
    private_dir(str(report_dir))  # the protocol names the restored files
    stem = report_dir / f"restore-{started:%Y%m%d-%H%M%S}"
    for suffix, data in (
        (".txt", ("\n".join(lines) + "\n").encode("utf-8")),
        (".pdf", restore_protocol_pdf(record, lang)),
        (".html", restore_protocol_html(record, lang).encode("utf-8")),
        (".json", record.to_json().encode("utf-8")),
    ):
        write_private_file(str(stem.with_suffix(suffix)), data)
    return RestoreOutcome(result, lines, os.fspath(stem), record)


def restore_record(
    config: Config,
    prepared: PreparedRestore,
    result: PracticeRestoreResult,
    started: datetime,
    service_events: Sequence[ServiceEvent],
) -> RestoreRecord:
    """Everything the restore protocol names, from the plan, the result and the timeline."""
    r = result.restore
    snap = prepared.snapshot
    return RestoreRecord(
        practice=config.practice.name,
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now().astimezone().isoformat(timespec="seconds"),
        by=prepared.by or _os_user(),
        machine=platform.hostname(),
        medium_label=prepared.medium.label.label,
        snapshot_id=snap.id,
        snapshot_time=snap.time,
        target_root=prepared.root,
        restored=result.ok,
        files=r.files if r else 0,
        dirs=r.dirs if r else 0,
        bytes=r.bytes if r else 0,
        verified=r.verified_files if r else 0,
        seconds=round(result.seconds, 1),
        services=[{k: str(v) for k, v in asdict(e).items()} for e in service_events],
        renamed=list(result.renamed),
        items=[
            {"path": i.snapshot_path, "target": i.target, "kind": i.kind}
            for i in prepared.plan.items
        ],
        missing=list(prepared.plan.missing_in_snapshot),
        warnings=[{"path": w.path, "reason": w.reason} for w in (r.warnings if r else [])],
        errors=[
            {"path": e.path, "reason": e.reason}
            for e in ((r.errors + r.verify_failures) if r else [])
        ],
    )


def restore_records(config: Config) -> list[tuple[str, RestoreRecord]]:
    """Every practice restore done on this server, newest first, with its name
    (``restore-20261130-223000``); unreadable records are left out."""
    folder = Path(state_dir(config)) / "restores"
    records = []
    for path in sorted(folder.glob("restore-*.json"), reverse=True):
        try:
            records.append((path.stem, RestoreRecord.from_json(path.read_bytes())))
        except (OSError, PraxisError):
            continue
    return records


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the user database
        return ""
