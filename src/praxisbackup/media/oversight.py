"""Warnings that keep the media rotation honest (shown in the protocol and by ``today``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from praxisbackup.media.register import Register
from praxisbackup.media.rotation import ARCHIVE_ROLES
from praxisbackup.model.config import Config
from praxisbackup.model.protocol import RunProtocol

FULL_VERIFY_DAYS = 31
DRILL_DAYS = 183
DAILY_SET_DAYS = 14
RETENTION_SOON_DAYS = 30


@dataclass
class Warning_:
    code: str
    params: dict[str, Any] = field(default_factory=dict)


def oversight(
    config: Config, register: Register, now: datetime, runs: list[RunProtocol] | None = None
) -> list[Warning_]:
    """Oversight warnings; ``runs`` (newest first) adds the archive-retention check."""
    warnings: list[Warning_] = []
    media = [m for m in register.all() if m.location != "retired"]
    limits = config.rotation.max_days_unseen if config.rotation else {}
    for m in media:
        seen = datetime.fromisoformat(m.last_seen) if m.last_seen else None
        limit = limits.get(m.role)
        if seen and limit and now - seen > timedelta(days=limit):
            warnings.append(
                Warning_(
                    "medium_unseen",
                    {"medium": m.label, "days": (now - seen).days, "location": m.location},
                )
            )
        # The nightly job reads a medium completely at its first use after full_cycle_days.
        # Warn when a use went by without that read (it failed), not while a weekly medium
        # waits for its turn: comparing with "now" flagged media that were on schedule.
        cycle = timedelta(days=max(config.verify.full_cycle_days, FULL_VERIFY_DAYS - 1))
        if seen and (
            not m.last_full_verify or seen - datetime.fromisoformat(m.last_full_verify) > cycle
        ):
            warnings.append(Warning_("medium_not_verified", {"medium": m.label}))
        # A new medium gets its first restore test within six months of registration.
        drill_base = datetime.fromisoformat(m.last_drill or m.registered)
        if seen and now - drill_base > timedelta(days=DRILL_DAYS):
            warnings.append(Warning_("medium_no_drill", {"medium": m.label}))
    if config.rotation is not None:
        # Only once the rotation has run for DAILY_SET_DAYS: a new installation is not nagged.
        records = {m.label: m for m in media}
        window = timedelta(days=DAILY_SET_DAYS)
        started = [
            datetime.fromisoformat(m.registered) for m in media if m.label in config.rotation.daily
        ]
        if started and now - min(started) > window:
            missing = [
                label
                for label in config.rotation.daily
                if (rec := records.get(label)) is None
                or not rec.last_seen
                or now - datetime.fromisoformat(rec.last_seen) > window
            ]
            if missing:
                warnings.append(
                    Warning_(
                        "daily_set_incomplete",
                        {"media": ", ".join(missing), "days": DAILY_SET_DAYS},
                    )
                )
    latest_hold: dict[str, str] = {}
    for run in runs or []:
        if run.hold_until and run.medium_id not in latest_hold:
            latest_hold[run.medium_id] = run.hold_until
    for m in media:
        hold = latest_hold.get(m.id)
        if m.role in ARCHIVE_ROLES and hold:
            left = (datetime.fromisoformat(hold).date() - now.date()).days
            if 0 <= left <= RETENTION_SOON_DAYS:
                warnings.append(
                    Warning_("archive_retention_ends", {"medium": m.label, "date": hold})
                )
    return warnings
