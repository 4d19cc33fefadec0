"""The restore protocol: what a practice restore did, for the practice's files."""

from __future__ import annotations

from datetime import datetime

from praxisbackup.practice.restore import PracticeRestoreResult
from praxisbackup.report.i18n import text
from praxisbackup.report.render import human_size


def restore_protocol_lines(
    practice: str, medium_label: str, result: PracticeRestoreResult, lang: str
) -> list[str]:
    r = result.restore
    assert r is not None
    snap = result.plan.snapshot
    return [
        f"{text('restore.title', lang)} – {practice}",
        text("restore.ok" if result.ok else "restore.failed", lang),
        "",
        text(
            "restore.source",
            lang,
            time=datetime.now().isoformat(timespec="seconds"),
            snapshot=snap.id,
            medium=medium_label,
        ),
        *(text("restore.renamed", lang, old=a, new=b) for a, b in result.renamed),
        text(
            "restore.counts",
            lang,
            files=r.files,
            dirs=r.dirs,
            size=human_size(r.bytes),
            seconds=result.seconds,
            verified=r.verified_files,
        ),
        *(text("restore.missing", lang, path=m) for m in result.plan.missing_in_snapshot),
        *(text("restore.warning", lang, path=w.path, reason=w.reason) for w in r.warnings),
        *(
            text("restore.error", lang, path=e.path, reason=e.reason)
            for e in r.errors + r.verify_failures
        ),
    ]
