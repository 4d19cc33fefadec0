"""The run protocol (seed S4): a structured record of one nightly run.

Findings carry a message *code* and parameters, not prose, so the same protocol renders in
German (default) and English (:mod:`praxisbackup.report`). The overall status is derived:
red if any finding is red, else yellow if any is yellow, else green.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from praxisbackup.errors import IntegrityError

GREEN, YELLOW, RED = "green", "yellow", "red"
_RANK = {GREEN: 0, YELLOW: 1, RED: 2}


@dataclass
class Finding:
    level: str  # red | yellow | info
    code: str  # key into report.i18n.MESSAGES
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceResult:
    label: str
    path: str
    files: int = 0
    bytes: int = 0
    new_bytes: int = 0


@dataclass
class Verification:
    level: str = ""
    packs_read: int = 0
    bytes_read: int = 0
    ok: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class RunProtocol:
    run_id: str
    practice: str
    host: str
    started: str
    program_version: str
    finished: str = ""
    medium_id: str = ""
    medium_label: str = ""
    medium_path: str = ""
    snapshot_id: str = ""
    hold_until: str = ""  # archive snapshots: pinned until this date
    expected_medium: str = ""
    sources: list[SourceResult] = field(default_factory=list)
    services: list[dict[str, str]] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)  # see app/hooks.py
    #: False for a night without a planned backup (weekend, holiday) and no medium attached:
    #: nothing was due, so the run is no evidence of a backup and no failure either.
    planned: bool = True
    downtime_seconds: float | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    verification: Verification = field(default_factory=Verification)
    profile: dict[str, list[str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def add(self, level: str, code: str, **params: Any) -> None:
        self.findings.append(Finding(level, code, params))

    @property
    def counts(self) -> bool:
        """Whether this run is a backup night for the daily check and ``today``."""
        return self.planned or bool(self.snapshot_id)

    @property
    def status(self) -> str:
        worst = GREEN
        for f in self.findings:
            level = f.level if f.level in _RANK else GREEN
            if _RANK[level] > _RANK[worst]:
                worst = level
        return worst

    def to_json(self) -> str:
        doc = asdict(self)
        doc["status"] = self.status
        return json.dumps(doc, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunProtocol:
        """Parse a stored protocol; anything malformed is an IntegrityError."""
        try:
            doc = json.loads(text)
            doc.pop("status", None)
            doc["sources"] = [SourceResult(**s) for s in doc.get("sources", [])]
            doc["verification"] = Verification(**doc.get("verification", {}))
            doc["findings"] = [Finding(**f) for f in doc.get("findings", [])]
            return cls(**doc)
        except (ValueError, TypeError, AttributeError, OverflowError, KeyError) as exc:
            raise IntegrityError(f"a run protocol is malformed: {exc}") from None


def exit_code(status: str) -> int:
    """0 green, 1 yellow, 2 red (documented in the README)."""
    return _RANK.get(status, 2)
