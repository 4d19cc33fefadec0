"""Retention policy: which snapshots to keep (restic's ``--keep-*`` semantics).

Snapshots are grouped by host and source paths; within a group, each rule keeps the newest
snapshot of each of its last N periods. A snapshot tagged ``hold-until=YYYY-MM-DD`` is kept
until that date whatever the rules say - this is how month-end and quarter-end archives are
pinned for their legal retention time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from praxisbackup.engine.snapshot import Snapshot
from praxisbackup.errors import UsageError

HOLD_PREFIX = "hold-until="


@dataclass
class Policy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: str | None = None
    tags: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (
            self.last or self.hourly or self.daily or self.weekly or self.monthly or self.yearly
        ) and not (self.within or self.tags)


@dataclass
class Decision:
    snapshot: Snapshot
    keep: bool
    reasons: list[str]


def parse_duration(text: str) -> timedelta:
    """``7d``, ``2w``, ``6m``, ``2y``, ``1y6m``, ``36h`` -> a timedelta (months = 30 days)."""
    parts = re.fullmatch(r"((\d+)y)?((\d+)m)?((\d+)w)?((\d+)d)?((\d+)h)?", text.strip())
    if not text.strip() or parts is None:
        raise UsageError(f"--keep-within needs a duration like '30d', '6m' or '2y', not {text!r}")
    y, m, w, d, h = (int(parts.group(i) or 0) for i in (2, 4, 6, 8, 10))
    return timedelta(days=365 * y + 30 * m + 7 * w + d, hours=h)


def hold_until(snap: Snapshot) -> date | None:
    """The latest hold date among a snapshot's ``hold-until=`` tags."""
    dates = []
    for tag in snap.tags:
        if tag.startswith(HOLD_PREFIX):
            try:
                dates.append(date.fromisoformat(tag[len(HOLD_PREFIX) :]))
            except ValueError:
                continue
    return max(dates) if dates else None


_BUCKETS: list[tuple[str, Callable[[datetime], object]]] = [
    ("hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", lambda t: t.isocalendar()[:2]),
    ("monthly", lambda t: (t.year, t.month)),
    ("yearly", lambda t: t.year),
]


def apply_policy(
    snapshots: list[Snapshot], policy: Policy, today: date | None = None
) -> list[Decision]:
    """Decide for each snapshot; the result is newest first within each group."""
    if policy.empty():
        raise UsageError("no --keep-* option given: refusing to forget every snapshot")
    today = today or date.today()
    groups: dict[tuple[str, tuple[str, ...]], list[Snapshot]] = {}
    for s in snapshots:
        groups.setdefault((s.host, tuple(sorted(s.paths))), []).append(s)
    within = parse_duration(policy.within) if policy.within else None
    decisions = []
    for group in groups.values():
        group.sort(key=lambda s: s.datetime, reverse=True)
        latest = group[0].datetime
        counters = {name: getattr(policy, name) for name, _ in _BUCKETS}
        last_bucket: dict[str, object] = {}
        for i, snap in enumerate(group):
            reasons = []
            held = hold_until(snap)
            if held is not None and held >= today:
                reasons.append(f"held until {held.isoformat()}")
            if i < policy.last:
                reasons.append("last")
            t = snap.datetime
            for name, bucket_of in _BUCKETS:
                if counters[name] <= 0:
                    continue
                bucket = bucket_of(t)
                if last_bucket.get(name) != bucket:
                    last_bucket[name] = bucket
                    counters[name] -= 1
                    reasons.append(name)
            if within is not None and latest - t <= within:
                reasons.append(f"within {policy.within}")
            if any(tag in snap.tags for tag in policy.tags):
                reasons.append("tag")
            decisions.append(Decision(snap, bool(reasons), reasons))
    return decisions
