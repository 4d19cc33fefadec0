"""The result of a restore test (drill, seed S12) as a paper the practice files.

Why a paper: the twice-yearly test on another machine is the evidence an auditor asks for
(GDPR Art. 32: "regularly testing"). It names the machine, the medium and the snapshot, how much
came back, that every file was compared, how long it took (the restore time the practice can
expect) and whether the check command passed; the person who did it signs.
"""

from __future__ import annotations

import dataclasses

from praxisbackup.model.drill import DrillRecord
from praxisbackup.report import localize
from praxisbackup.report.i18n import number, size, text, when
from praxisbackup.report.pdf import Cell, Document


def without_files(r: DrillRecord) -> DrillRecord:
    """The record for a page nobody logged in to: damaged files' paths cut to their first
    folder, the check command's output (it may list files) left out."""
    return dataclasses.replace(
        r, errors=[localize.redact_paths(e) for e in r.errors], check_output=""
    )


def _facts(r: DrillRecord, lang: str) -> list[tuple[str, str]]:
    def t(code: str, **params: object) -> str:
        return text(code, lang, **params)

    facts = [
        (t("restore.when"), when(r.time, lang)),
        (t("drill.machine"), f"{r.machine} ({r.system})"),
        (t("medium"), t("doc.quoted", text=r.medium_label)),
        (t("snapshot"), r.snapshot[:8]),
        (
            t("restore.amount"),
            t("drill.amount", files=number(r.files, lang), size=size(r.bytes, lang)),
        ),
        (
            t("verification"),
            t("drill.compared", verified=number(r.verified, lang), files=number(r.files, lang)),
        ),
        (t("drill.duration"), t("drill.seconds", seconds=number(r.seconds, lang))),
    ]
    if r.check_command:
        facts.append(
            (
                t("drill.check"),
                t(
                    "drill.check_ok" if r.check_ok else "drill.check_failed",
                    command=r.check_command,
                ),
            )
        )
    return facts


def drill_lines(r: DrillRecord, lang: str) -> list[str]:
    facts = _facts(r, lang)
    width = max(len(label) for label, _ in facts) + 2
    lines = [text("drill.title", lang), text("drill.ok" if r.ok else "drill.failed", lang), ""]
    lines += [f"{label:<{width}}{value}" for label, value in facts]
    if r.errors:
        lines += ["", text("drill.errors", lang)]
        lines += [f"   {localize.path_phrase(e, lang)}" for e in r.errors]
    return lines


def drill_pdf(r: DrillRecord, practice: str, lang: str) -> bytes:
    """The filed result; ``practice`` may be empty when the test ran without the practice's
    configuration (another machine with only the medium)."""
    title = text("drill.title", lang)
    owner = practice or text("drill.medium_of", lang, medium=r.medium_label)
    doc = Document(title, owner, lang)
    doc.heading(f"{title} – {owner}")
    doc.status("green" if r.ok else "red", text("drill.ok" if r.ok else "drill.failed", lang))
    doc.facts(_facts(r, lang))
    doc.space(2)
    doc.paragraph(text("drill.why", lang), size=9)
    if r.errors:
        doc.section(text("drill.errors", lang))
        doc.table(
            [],
            [[Cell(localize.path_phrase(e, lang), "red", mono=True)] for e in r.errors],
            [doc.width],
            size=8.5,
        )
    if r.check_output.strip():
        doc.section(text("drill.check_output", lang))
        doc.paragraph(r.check_output.strip()[-1500:], mono=True, size=7.5)
    doc.signature()
    return doc.output()
