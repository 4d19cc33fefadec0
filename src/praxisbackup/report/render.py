"""Render a :class:`RunProtocol` as console text, HTML or a printable A4 PDF.

All three are made from one :class:`ProtocolView` (the protocol's facts already in the reader's
language: local dates, German numbers and sizes, translated service actions), so the screen,
the e-mail attachment and the filed paper say the same thing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import jinja2

from praxisbackup.model.protocol import RunProtocol
from praxisbackup.report import localize
from praxisbackup.report.i18n import clock, day, number, size, text, when
from praxisbackup.report.pdf import Cell, Document

#: Problem lines shown at most (a broken disk can list thousands of unreadable files).
MAX_PROBLEMS = 200
FAILED_ACTIONS = ("stop failed", "start failed", "query failed")


def finding_text(code: str, params: dict[str, Any], lang: str, with_files: bool = True) -> str:
    """One finding (or warning) as a sentence in ``lang``; without ``with_files`` the file
    names a lower layer put into it are cut (pages anyone at the server can open)."""
    return text(code, lang, **localize.params(params, lang, with_files))


def finding_texts(p: RunProtocol, lang: str, with_files: bool = True) -> list[dict[str, str]]:
    return [
        {"level": f.level, "text": finding_text(f.code, f.params, lang, with_files)}
        for f in p.findings
    ]


@dataclass
class ProtocolView:
    """A run protocol as its reader sees it; every string is final."""

    title: str
    status: str
    status_text: str
    todo: str
    facts: list[tuple[str, str]]
    findings: list[tuple[str, str]]
    source_head: list[str]
    sources: list[tuple[str, str, str, str, str]]  # label, path, files, size, new
    service_head: list[str]
    services: list[tuple[str, str, str, str, str]]  # level, time, service, action, detail
    hook_head: list[str]
    hooks: list[tuple[str, str, str, str, str]]  # name, when, exit, seconds, output
    problem_head: list[str]
    problems: list[tuple[str, str]]
    problems_more: int
    #: Without file names (``with_files=False``): how many file lines were left out.
    problems_hidden: int
    footer: str
    practice: str
    started: str
    labels: dict[str, str] = field(default_factory=dict)


def _hook_when(h: dict[str, Any], lang: str) -> str:
    moment = text("hook.when." + str(h["when"]), lang)
    return f"{moment} {text('hook.stage.' + str(h['stage']), lang)}"


def protocol_view(p: RunProtocol, lang: str = "de", with_files: bool = True) -> ProtocolView:
    """``with_files=False`` leaves out everything that can name a patient's file (the list of
    skipped and changed files, hook output, paths inside messages): for the status page
    where nobody has logged in."""

    def t(code: str, **params: Any) -> str:
        return text(code, lang, **params)

    facts = [
        (t("started"), when(p.started, lang)),
        (t("finished"), when(p.finished, lang)),
        (t("host"), p.host),
        (
            t("medium"),
            f"{t('doc.quoted', text=p.medium_label)} ({p.medium_path})" if p.medium_label else "–",
        ),
    ]
    if p.expected_medium and p.expected_medium != p.medium_label:
        facts.append((t("expected_medium"), t("doc.quoted", text=p.expected_medium)))
    facts.append((t("snapshot"), p.snapshot_id[:8] or "–"))
    if p.hold_until:
        facts.append((t("hold_until"), day(p.hold_until, lang)))
    if p.downtime_seconds is not None:
        facts.append((t("downtime"), f"{number(p.downtime_seconds, lang)} {t('seconds')}"))
    v = p.verification
    if v.level:
        facts.append(
            (
                t("verification"),
                t(
                    "verification.ok" if v.ok else "verification.failed",
                    scope=t("verification." + v.level),
                    packs=number(v.packs_read, lang),
                    size=size(v.bytes_read, lang),
                ),
            )
        )
    services = []
    for e in p.services:
        action = str(e.get("action", ""))
        services.append(
            (
                "red" if action in FAILED_ACTIONS else "",
                clock(e.get("time"), lang),
                str(e.get("service", "")),
                localize.service_action(action, lang),
                localize.phrase(str(e.get("detail", "")), lang),
            )
        )
    hooks = [
        (
            str(h["name"]),
            _hook_when(h, lang),
            str(h["exit"]),
            f"{number(float(h['seconds']), lang)} s",
            "\n".join(str(h.get("output", "")).strip().splitlines()[-5:]) if with_files else "",
        )
        for h in p.hooks
    ]
    problems_all = p.skipped + p.warnings
    shown = problems_all if with_files else []
    return ProtocolView(
        title=f"{t('title')} – {p.practice}",
        status=p.status,
        status_text=t(f"status.{p.status}"),
        todo=t("todo." + p.status),
        facts=facts,
        findings=[(f["level"], f["text"]) for f in finding_texts(p, lang, with_files)],
        source_head=[t("col.source"), t("files"), t("size"), t("new_data")],
        sources=[
            (
                s.label,
                s.path,
                number(s.files, lang),
                size(s.bytes, lang),
                size(s.new_bytes, lang),
            )
            for s in p.sources
        ],
        service_head=[t("col.time"), t("col.service"), t("col.action"), t("col.detail")],
        services=services,
        hook_head=[t("col.command"), t("col.when"), t("col.exit"), t("col.duration")],
        hooks=hooks,
        problem_head=[t("col.file"), t("col.reason")],
        problems=[
            (str(s.get("path", "")), localize.phrase(str(s.get("reason", "")), lang))
            for s in shown[:MAX_PROBLEMS]
        ],
        problems_more=max(0, len(shown) - MAX_PROBLEMS),
        problems_hidden=len(problems_all) - len(shown),
        footer=t("protocol.footer", version=p.program_version, run=p.run_id),
        practice=p.practice,
        started=p.started,
        labels={
            k: t(k) for k in ("what_to_do", "findings", "sources", "services", "hooks", "problems")
        }
        | {"files_hidden": t("protocol.files_hidden", count=number(len(problems_all), lang))},
    )


def render_text(p: RunProtocol, lang: str = "de") -> str:
    v = protocol_view(p, lang)
    lab = v.labels
    width = max(len(label) for label, _ in v.facts) + 2
    lines = [v.title, "=" * 60, v.status_text, "", f"{lab['what_to_do']} {v.todo}", ""]
    lines += [f"{label:<{width}}{value}" for label, value in v.facts]
    lines += ["", lab["findings"] + ":"]
    marks = {"red": "!!", "yellow": " !", "info": "  "}
    lines += [f" {marks.get(level, '  ')} {body}" for level, body in v.findings]
    if v.sources:
        lines += ["", lab["sources"] + ":"]
        for label, path, files, total, new in v.sources:
            lines.append(
                f"   {label}: {files} {v.source_head[1]}, {total}, {new} {v.source_head[3]}"
                f"  ({path})"
            )
    if v.services:
        lines += ["", lab["services"] + ":"]
        lines += [
            f"   {time}  {service}: {action}" + (f" – {detail}" if detail else "")
            for _level, time, service, action, detail in v.services
        ]
    if v.hooks:
        lines += ["", lab["hooks"] + ":"]
        for name, moment, code, seconds, output in v.hooks:
            lines.append(f"   {name} ({moment}): {v.hook_head[2]} {code}, {seconds}")
            lines += [f"      {out}" for out in output.splitlines()]
    if v.problems:
        lines += ["", lab["problems"] + ":"]
        lines += [f"   {path}: {reason}" for path, reason in v.problems]
        if v.problems_more:
            lines.append(f"   … (+{v.problems_more})")
    return "\n".join(lines) + "\n"


def render_html(p: RunProtocol, lang: str = "de", with_files: bool = True) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    source = (
        resources.files("praxisbackup.report")
        .joinpath("templates/protocol.html")
        .read_text("utf-8")
    )
    template = env.from_string(source)
    view = protocol_view(p, lang, with_files)
    return template.render(v=view, lang=lang, day=day(p.started[:10], lang))


def render_pdf(p: RunProtocol, lang: str = "de", with_files: bool = True) -> bytes:
    """The protocol as the practice files it: status box, facts, findings, tables, signature."""
    v = protocol_view(p, lang, with_files)
    lab = v.labels
    doc = Document(v.title, v.practice, lang)
    doc.heading(v.title)
    doc.status(v.status, v.status_text)
    doc.paragraph(f"{lab['what_to_do']} {v.todo}", bold=True)
    doc.space(2)
    doc.facts(v.facts)
    doc.section(lab["findings"])
    doc.bullets(v.findings)
    w = doc.width
    if v.sources:
        doc.section(lab["sources"])
        doc.table(
            v.source_head,
            [[f"{lab_}\n{path}", files, total, new] for lab_, path, files, total, new in v.sources],
            [w - 100, 25, 30, 45],
            ["L", "R", "R", "R"],
        )
    if v.services:
        doc.section(lab["services"])
        doc.table(
            v.service_head,
            [
                [Cell(time, level), service, Cell(action, level), Cell(detail, level)]
                for level, time, service, action, detail in v.services
            ],
            [20, 42, 52, w - 114],
        )
    if v.hooks:
        doc.section(lab["hooks"])
        doc.table(
            v.hook_head,
            [[name, moment, code, seconds] for name, moment, code, seconds, _out in v.hooks],
            [w - 110, 50, 30, 30],
            ["L", "L", "R", "R"],
        )
        for name, _moment, _code, _seconds, output in v.hooks:
            if output:
                doc.paragraph(f"{name}:", bold=True, size=8.5)
                doc.paragraph(output, mono=True, size=7.5, indent=4)
    if v.problems:
        doc.section(lab["problems"])
        doc.table(
            v.problem_head,
            [[Cell(path, mono=True), reason] for path, reason in v.problems],
            [w * 0.6, w * 0.4],
            size=8.5,
        )
        if v.problems_more:
            doc.paragraph(f"… (+{v.problems_more})")
    if v.problems_hidden:
        doc.section(lab["problems"])
        doc.paragraph(lab["files_hidden"], level="info")
    doc.signature()
    doc.space(4)
    doc.paragraph(v.footer, size=7.5, level="info")
    return doc.output()


def lines_pdf(lines: list[str], practice: str = "", lang: str = "de") -> bytes:
    """A plain A4 PDF of text lines (the first line is the title), in the documents' font and
    with their footer; for short notes that need no tables."""
    doc = Document(lines[0] if lines else "", practice, lang, created=datetime.now())
    doc.heading(lines[0] if lines else "")
    for line in lines[1:]:
        doc.paragraph(line)
    return doc.output()


def lines_html(lines: list[str]) -> str:
    """A plain printable HTML page of text lines; the first line is the title."""
    title = html.escape(lines[0] if lines else "")
    body = "\n".join(html.escape(line) for line in lines[1:])
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><pre>{body}</pre></body></html>\n"
    )
