"""Reaching the practice's data on a medium: the attached medium named by the configuration,
or one given by its folder; the snapshot a restore should start from."""

from __future__ import annotations

import json
from datetime import datetime

from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import Snapshot, list_snapshots
from praxisbackup.errors import PraxisError
from praxisbackup.media import label as media
from praxisbackup.media.register import MediumRecord, Register
from praxisbackup.model.config import Config
from praxisbackup.model.locations import catalog_path
from praxisbackup.storage import LocalBackend


def open_medium(
    root: str, passphrase: str, load_index: bool = True
) -> tuple[media.AttachedMedium, Repository]:
    """The medium whose label file is in ``root``, with its repository open (and indexed)."""
    label = media.read_label(root)
    if label is None:
        raise media.MediumError(f"{root} is not a praxisbackup medium (no label file)")
    attached = media.AttachedMedium(root, label)
    repo = Repository.open(LocalBackend(attached.repository_path), passphrase)
    if load_index:
        repo.load_index()
    return attached, repo


def open_attached(
    config: Config, passphrase: str, load_index: bool = True
) -> tuple[media.AttachedMedium, Repository]:
    """The first medium found in the configured candidate places, opened (and indexed)."""
    found, problems = media.discover(config.media.candidates)
    if not found:
        details = f" ({'; '.join(problems)})" if problems else ""
        raise media.MediumError(
            "no backup medium attached" + details,
            code="error.no_medium_attached",
            places=", ".join(config.media.candidates) or "-",
            details=details,
        )
    return open_medium(found[0].root, passphrase, load_index)


def green_snapshot_ids(repo: Repository) -> set[str]:
    """Snapshots whose run protocol on the medium is green."""
    green: set[str] = set()
    for name in list(repo.list_names("meta")):
        if name.startswith("protocol-") and name != "protocol-latest":
            try:
                doc = json.loads(repo.read_meta(name))
            except (PraxisError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("status") == "green" and doc.get("snapshot_id"):
                green.add(str(doc["snapshot_id"]))
    return green


def latest_green(repo: Repository) -> Snapshot:
    """The newest snapshot whose run protocol on the medium is green (else the newest)."""
    snaps = list_snapshots(repo)
    if not snaps:
        raise PraxisError("the medium holds no snapshot", code="error.medium_empty")
    green = green_snapshot_ids(repo)
    chosen = [s for s in snaps if s.id in green]
    return chosen[-1] if chosen else snaps[-1]


def attached_ids(config: Config) -> set[str]:
    """Ids of the media attached right now (the register only knows where they were)."""
    found, _problems = media.discover(config.media.candidates)
    return {m.label.medium_id for m in found}


def move_medium(
    config: Config,
    ref: str,
    location: str,
    by: str,
    note: str = "",
    now: datetime | None = None,
) -> MediumRecord:
    """Record where a medium is now (practice, offsite, archive, attached); ``now`` is the
    time of the move (default: the clock; injectable for tests that build a history)."""
    register = Register(catalog_path(config))
    record = register.find(ref)
    if record.location == "retired":
        raise PraxisError(
            f"medium '{record.label}' is retired", code="error.medium_retired", medium=record.label
        )
    if location in ("offsite", "archive") and record.id in attached_ids(config):
        raise PraxisError(
            f"medium '{record.label}' is still attached",
            code="error.medium_still_attached",
            medium=record.label,
        )
    when = now.isoformat(timespec="seconds") if now is not None else None
    register.event(record.id, "moved", location, by, note, when=when)
    return register.find(record.id)


def retire_medium(config: Config, ref: str, how: str, by: str) -> MediumRecord:
    """Take a medium out of service for good (recorded with date and person)."""
    register = Register(catalog_path(config))
    record = register.find(ref)
    register.event(record.id, "retired", "retired", by, how)
    return register.find(record.id)
