"""The restore protocol: what a practice restore did, for the practice's files.

It names the medium, the snapshot, the services stopped and started, the person, what was
renamed and restored, and every required item that was missing in the backup: a restore with
missing items is "unvollständig" (incomplete), never "vollständig". Text, HTML and PDF are
made from the same lines so they agree.
"""

from __future__ import annotations

import dataclasses
import html
import re

from praxisbackup.model.restore import COMPLETE, FAILED, RestoreRecord
from praxisbackup.report import localize
from praxisbackup.report.i18n import clock, number, size, text, when
from praxisbackup.report.pdf import Cell, CellLike, Document

LEVEL = {COMPLETE: "green", FAILED: "red"}  # incomplete: red as well (data is missing)


def without_files(r: RestoreRecord) -> RestoreRecord:
    """The record for a page nobody logged in to: the restored items are the vendor's
    folders, but a file that failed or warned may carry a patient's name, so its path is
    cut to its first folder (see ``localize.redact_paths``)."""

    def cut(entries: list[dict[str, str]]) -> list[dict[str, str]]:
        return [
            {"path": localize.redact_paths(e["path"]), "reason": localize.redact_paths(e["reason"])}
            for e in entries
        ]

    return dataclasses.replace(r, errors=cut(r.errors), warnings=cut(r.warnings))


def _level(record: RestoreRecord) -> str:
    return LEVEL.get(record.status, "red")


def _items(r: RestoreRecord) -> list[tuple[str, str, str]]:
    """(path below the target, kind, name the existing one was renamed to or "") per item:
    short enough to read, and the renamed copy next to what replaced it."""
    renamed = dict(r.renamed)
    root = r.target_root.rstrip("/\\")
    rows = []
    for item in r.items:
        target = item["target"]
        below = target[len(root) :].lstrip("/\\") if target.startswith(root) else target
        old = renamed.get(target, "")
        rows.append((below or target, item["kind"], re.split(r"[/\\]", old)[-1] if old else ""))
    return rows


def _facts(r: RestoreRecord, lang: str) -> list[tuple[str, str]]:
    def t(code: str, **params: object) -> str:
        return text(code, lang, **params)

    return [
        (t("restore.when"), f"{when(r.started, lang)} – {clock(r.finished, lang)[:5]}"),
        (t("restore.by"), r.by or "–"),
        (t("host"), r.machine),
        (t("medium"), t("doc.quoted", text=r.medium_label)),
        (t("snapshot"), f"{r.snapshot_id[:8]} ({when(r.snapshot_time, lang)})"),
        (t("restore.target"), r.target_root),
        (
            t("restore.amount"),
            t(
                "restore.amount.value",
                files=number(r.files, lang),
                dirs=number(r.dirs, lang),
                size=size(r.bytes, lang),
                seconds=number(r.seconds, lang),
            ),
        ),
        (t("verification"), t("restore.verified", verified=number(r.verified, lang))),
    ]


def restore_protocol_lines(r: RestoreRecord, lang: str) -> list[str]:
    """The protocol as plain lines (console, .txt); the first line is the title."""

    def t(code: str, **params: object) -> str:
        return text(code, lang, **params)

    facts = _facts(r, lang)
    width = max(len(label) for label, _ in facts) + 2
    lines = [f"{t('restore.title')} – {r.practice}", t(f"restore.{r.status}"), ""]
    lines += [f"{label:<{width}}{value}" for label, value in facts]
    if r.missing:
        lines += ["", t("restore.missing_head")]
        lines += [f"   {t('restore.missing', path=m)}" for m in r.missing]
    if r.services:
        lines += ["", t("services") + ":"]
        for e in r.services:
            detail = localize.phrase(str(e.get("detail", "")), lang)
            action = localize.service_action(str(e.get("action", "")), lang)
            lines.append(
                f"   {clock(e.get('time'), lang)}  {e.get('service', '')}: {action}"
                + (f" – {detail}" if detail else "")
            )
    else:
        lines += ["", t("restore.no_services")]
    if r.items:
        lines += ["", t("restore.items_head")]
        for below, kind, old_name in _items(r):
            renamed = f"  ({t('restore.renamed', new=old_name)})" if old_name else ""
            lines.append(f"   {t('restore.kind.' + kind)}  {below}{renamed}")
    if r.errors or r.warnings:
        lines += ["", t("restore.problems_head")]
        lines += [
            f"   {t('restore.error', path=e['path'], reason=localize.phrase(e['reason'], lang))}"
            for e in r.errors
        ]
        lines += [
            f"   {t('restore.warning', path=w['path'], reason=localize.phrase(w['reason'], lang))}"
            for w in r.warnings
        ]
    return lines


def restore_protocol_html(r: RestoreRecord, lang: str) -> str:
    lines = restore_protocol_lines(r, lang)
    title = html.escape(lines[0])
    colour = {"green": "#145214", "red": "#7a0b0b"}[_level(r)]
    body = "\n".join(html.escape(line) for line in lines[3:])
    sign = "".join(
        f"<div>{html.escape(text(code, lang))}</div>"
        for code in ("doc.checked_by", "doc.date", "doc.signature")
    )
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8"><title>{title}'
        "</title><style>body{font-family:'DejaVu Sans',Arial,sans-serif;margin:2em}"
        ".sign{display:flex;gap:2em;margin-top:3em}.sign div{flex:1;border-top:1px solid #000;"
        "font-size:.8em;color:#666}</style></head>"
        f'<body><h1>{title}</h1><p style="color:{colour};font-weight:bold;font-size:1.3em">'
        f"{html.escape(lines[1])}</p><pre>{body}</pre>"
        f'<div class="sign">{sign}</div></body></html>\n'
    )


def restore_protocol_pdf(r: RestoreRecord, lang: str) -> bytes:
    def t(code: str, **params: object) -> str:
        return text(code, lang, **params)

    title = f"{t('restore.title')} – {r.practice}"
    doc = Document(t("restore.title"), r.practice, lang)
    doc.heading(title)
    doc.status(_level(r), t(f"restore.{r.status}"))
    doc.facts(_facts(r, lang))
    w = doc.width
    if r.missing:
        doc.section(t("restore.missing_head"))
        doc.bullets([("red", t("restore.missing", path=m)) for m in r.missing])
    doc.section(t("services"))
    if r.services:
        rows: list[list[CellLike]] = []
        for e in r.services:
            action = str(e.get("action", ""))
            level = "red" if "failed" in action else ""
            rows.append(
                [
                    Cell(clock(e.get("time"), lang), level),
                    str(e.get("service", "")),
                    Cell(localize.service_action(action, lang), level),
                    Cell(localize.phrase(str(e.get("detail", "")), lang), level),
                ]
            )
        doc.table(
            [t("col.time"), t("col.service"), t("col.action"), t("col.detail")],
            rows,
            [20, 42, 52, w - 114],
        )
    else:
        doc.paragraph(t("restore.no_services"))
    if r.items:
        doc.section(t("restore.items_head"))
        doc.paragraph(t("restore.items_note", root=r.target_root), size=9)
        doc.space(1)
        doc.table(
            [t("restore.col.item"), t("restore.col.kind"), t("restore.col.renamed_to")],
            [
                [Cell(below, mono=True), t("restore.kind." + kind), Cell(old or "–", mono=True)]
                for below, kind, old in _items(r)
            ],
            [w * 0.6, w * 0.1, w * 0.3],
            size=8,
        )
    if r.errors or r.warnings:
        doc.section(t("restore.problems_head"))
        doc.table(
            [t("col.file"), t("col.reason")],
            [
                [Cell(e["path"], level, mono=True), Cell(localize.phrase(e["reason"], lang), level)]
                for level, entries in (("red", r.errors), ("yellow", r.warnings))
                for e in entries
            ],
            [w * 0.55, w * 0.45],
            size=8.5,
        )
    doc.signature()
    return doc.output()
