"""Which attached medium the nightly job writes to, given the plan and the register."""

from __future__ import annotations

import ntpath
import os
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from praxisbackup.media import label as media
from praxisbackup.media.register import Register
from praxisbackup.media.rotation import ARCHIVE_ROLES, RotationPlan, RotationSettings, Slot
from praxisbackup.model.config import Config
from praxisbackup.model.locations import catalog_path

#: A run that starts before this hour belongs to the previous evening's slot.
NIGHT_ENDS_HOUR = 6


def plan_from_config(config: Config) -> RotationPlan | None:
    r = config.rotation
    if r is None:
        return None
    return RotationPlan(
        RotationSettings(
            state=config.practice.state,
            daily=tuple(r.daily),
            quarter_end=tuple(r.quarter_end),
            month_end=tuple(r.month_end),
            biweekly=tuple(r.biweekly),
            quarter_end_retention_days=r.quarter_end_retention_days,
            month_end_retention_days=r.month_end_retention_days,
            closed=tuple(r.closed),
            override_reason=r.override_reason,
        )
    )


def backup_day(now: datetime) -> date:
    """The working day a run belongs to (a run at 00:30 is last evening's backup)."""
    return (now - timedelta(days=1)).date() if now.hour < NIGHT_ENDS_HOUR else now.date()


@dataclass
class Choice:
    medium: media.AttachedMedium | None
    expected: Slot | None
    role: str = "other"
    hold_until: date | None = None
    wrong: bool = False
    unknown: list[str] = field(default_factory=list)  # attached but unregistered media


def choose(
    config: Config, register: Register, attached: list[media.AttachedMedium], day: date
) -> Choice:
    plan = plan_from_config(config)
    expected = plan.slot(day) if plan else None
    known = {m.id: m for m in register.all() if m.location != "retired"}
    registered = [a for a in attached if a.label.medium_id in known]
    unknown = [f"{a.label.label} ({a.root})" for a in attached if a.label.medium_id not in known]
    if not registered:
        return Choice(None, expected, unknown=unknown)
    chosen = next((a for a in registered if expected and a.label.label == expected.label), None)
    wrong = expected is not None and chosen is None
    if chosen is None:
        chosen = registered[0]
    record = known[chosen.label.medium_id]
    role = record.role
    hold = None
    if expected is not None and not wrong:
        hold = expected.hold_until
    elif role in ARCHIVE_ROLES and config.rotation is not None:
        days = getattr(config.rotation, f"{role}_retention_days")
        hold = day + timedelta(days=days)
    return Choice(chosen, expected, role, hold, wrong, unknown)


def register_medium(
    register: Register, attached: media.AttachedMedium, config: Config, role: str | None = None
) -> str:
    """Enter a freshly initialised medium into the register (role from the plan if not given)."""
    plan = plan_from_config(config)
    role = role or (plan.role_of(attached.label.label) if plan else None) or "other"
    capacity = shutil.disk_usage(attached.root).total
    register.add(
        attached.label.medium_id, attached.label.label, role, capacity, attached.label.repository_id
    )
    return role


def check_medium_place(config: Config, root: str, label: str, allow_same_disk: bool) -> None:
    """Refuse what would quietly become a useless "medium": a drive-relative path (``E:``),
    a folder whose drive or parent does not exist (a typo), a folder on the same disk as the
    practice data (only with an explicit demo option), a label already registered."""
    drive, rest = ntpath.splitdrive(root)
    if drive and not drive.startswith("\\\\") and not rest.startswith(("\\", "/")):
        raise media.MediumError(
            f"'{root}' is relative to the current folder of drive {drive}; "
            f"write {drive}\\ for the drive itself",
            code="error.medium_drive_relative",
            root=root,
            drive=drive,
        )
    absolute = os.path.abspath(root)
    parent = os.path.dirname(absolute.rstrip("\\/")) or absolute
    if not os.path.exists(absolute) and not os.path.isdir(parent):
        where = root if os.path.normcase(parent) == os.path.normcase(absolute) else parent
        raise media.MediumError(
            f"{where} does not exist: is the disk attached, is the path typed correctly?",
            code="error.medium_path_missing",
            path=where,
        )
    existing = absolute if os.path.exists(absolute) else parent
    shared = media.same_disk(existing, [s.path for s in config.sources if os.path.exists(s.path)])
    if shared and not allow_same_disk:
        raise media.MediumError(
            f"{root} is on the same disk as the practice data ({', '.join(shared)}): a backup "
            "there does not survive the disk. Attach an external disk or use a NAS "
            "folder (for a demonstration only: --allow-same-disk)",
            code="error.medium_same_disk",
            root=root,
            shared=", ".join(shared),
        )
    register = Register(catalog_path(config))
    taken = [m for m in register.all() if m.label == label and m.location != "retired"]
    if taken:
        raise media.MediumError(
            f"a medium '{label}' is already registered (id {taken[0].id}); retire it first "
            f"('praxisbackup medium retire {taken[0].id} ...') or choose another label",
            code="error.medium_label_taken",
            label=label,
            id=taken[0].id,
        )


def prepare_medium(
    config: Config,
    root: str,
    label: str,
    passphrase: str,
    role: str | None = None,
    allow_same_disk: bool | None = None,
) -> media.AttachedMedium:
    """``medium init``: repository + label on the medium, and an entry in the register."""
    check_medium_place(
        config,
        root,
        label,
        config.media.allow_same_disk if allow_same_disk is None else allow_same_disk,
    )
    attached = media.init_medium(root, label, passphrase, config.repository.folder)
    register_medium(Register(catalog_path(config)), attached, config, role)
    return attached
