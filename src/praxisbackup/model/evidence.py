"""The facts of the audit evidence report for one period, as the application collects them.

Why a record of its own: the report an auditor or data-protection officer asks for ("show me
your backups, restore tests and checks of the last quarter") combines the run history, the
daily confirmations, the escalations, the media register, archive holds, restore tests and the
configuration. The application layer gathers them (``app.evidence``); the report layer renders
them (``report.evidence``), so neither needs the other's knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from praxisbackup.model.config import Config
from praxisbackup.model.drill import DrillRecord
from praxisbackup.model.protocol import Finding, RunProtocol
from praxisbackup.model.restore import RestoreRecord


@dataclass
class Night:
    """One calendar day of the period: what the plan wanted and what ran."""

    day: date
    planned: str = ""  # medium label the plan names ("" without a plan or on a day off)
    planned_role: str = ""
    working: bool = True  # a backup was due (working day)
    day_off: str = ""  # why not: a holiday's name, "weekend" or "closed"
    runs: list[RunProtocol] = field(default_factory=list)
    missed_reported: str = ""  # when the "no backup" alert was queued (ISO), if it was

    @property
    def backed_up(self) -> bool:
        """A run of this night ended green or yellow (a usable backup)."""
        return any(r.status in ("green", "yellow") for r in self.runs)


@dataclass
class MediumHistory:
    """One medium: where it was at the end of the period and how it moved within it."""

    label: str
    role: str
    location_end: str  # register location at the end of the period ("" = not yet registered)
    uses: int = 0  # nights it received a backup in the period
    last_full_verify: str = ""
    last_drill: str = ""
    #: Location changes in the period: time, kind (registered/moved/retired), location, by, note.
    events: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Hold:
    """An archive snapshot pinned until a date (month-end, quarter-end)."""

    day: date
    medium: str
    snapshot: str
    until: str


@dataclass
class Evidence:
    config: Config
    first: date
    last: date
    created: str  # ISO time the report was made
    nights: list[Night] = field(default_factory=list)
    acks: list[dict[str, str]] = field(default_factory=list)  # time, by, note, runs
    escalations: list[dict[str, str]] = field(default_factory=list)  # day, kind, time, recipients
    media: list[MediumHistory] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    drills: list[DrillRecord] = field(default_factory=list)
    #: Drills the register knows only by date and verdict (time, machine, verdict, medium).
    drill_events: list[dict[str, str]] = field(default_factory=list)
    restores: list[RestoreRecord] = field(default_factory=list)
    open_findings: list[Finding] = field(default_factory=list)
    #: Changes made through the status page: time, account, action, detail.
    changes: list[dict[str, str]] = field(default_factory=list)

    @property
    def working_nights(self) -> list[Night]:
        return [n for n in self.nights if n.working]

    @property
    def nights_without_backup(self) -> list[Night]:
        return [n for n in self.working_nights if not n.backed_up]
