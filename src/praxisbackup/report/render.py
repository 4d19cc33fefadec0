"""Render a :class:`RunProtocol` as console text, HTML or a printable A4 PDF."""

from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2

from praxisbackup.model.protocol import RunProtocol
from praxisbackup.report.i18n import text


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def finding_texts(p: RunProtocol, lang: str) -> list[dict[str, str]]:
    return [{"level": f.level, "text": text(f.code, lang, **f.params)} for f in p.findings]


def render_text(p: RunProtocol, lang: str = "de") -> str:
    def t(code: str) -> str:
        return text(code, lang)

    lines = [
        f"{t('title')} – {p.practice}",
        "=" * 60,
        t(f"status.{p.status}"),
        "",
        f"{t('what_to_do')} {t('todo.' + p.status)}",
        "",
        f"{t('started'):<24}{p.started}",
        f"{t('finished'):<24}{p.finished}",
        f"{t('host'):<24}{p.host}",
        f"{t('medium'):<24}{p.medium_label or '-'} {p.medium_path}",
        f"{t('snapshot'):<24}{p.snapshot_id[:8] or '-'}",
    ]
    if p.downtime_seconds is not None:
        lines.append(f"{t('downtime'):<24}{p.downtime_seconds} {t('seconds')}")
    lines += ["", t("findings") + ":"]
    marks = {"red": "!!", "yellow": " !", "info": "  "}
    lines += [f" {marks.get(f['level'], '  ')} {f['text']}" for f in finding_texts(p, lang)]
    lines += ["", t("sources") + ":"]
    for s in p.sources:
        lines.append(
            f"   {s.label}: {s.files} {t('files')}, {human_size(s.bytes)}, "
            f"{human_size(s.new_bytes)} {t('new_data')}  ({s.path})"
        )
    if p.services:
        lines += ["", t("services") + ":"]
        lines += [
            f"   {e['time']}  {e['service']}: {e['action']} {e['detail']}".rstrip()
            for e in p.services
        ]
    if p.hooks:
        lines += ["", t("hooks") + ":"]
        for h in p.hooks:
            lines.append(
                f"   {h['name']} ({h['when']} {h['stage']}): exit {h['exit']}, {h['seconds']} s"
            )
            lines += [f"      {out}" for out in str(h["output"]).strip().splitlines()[-5:]]
    problems = p.skipped + p.warnings
    if problems:
        lines += ["", t("problems") + ":"]
        lines += [f"   {s['path']}: {s['reason']}" for s in problems[:200]]
        if len(problems) > 200:
            lines.append(f"   … (+{len(problems) - 200})")
    return "\n".join(lines) + "\n"


def render_html(p: RunProtocol, lang: str = "de") -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    source = (
        resources.files("praxisbackup.report")
        .joinpath("templates/protocol.html")
        .read_text("utf-8")
    )
    template = env.from_string(source)
    ctx: dict[str, Any] = {
        "p": p,
        "lang": lang,
        "status": p.status,
        "findings": finding_texts(p, lang),
        "t": lambda code: text(code, lang),
        "size": human_size,
    }
    return template.render(**ctx)


def _latin1(s: str) -> str:
    """The PDF core fonts cover Latin-1 (all German letters); map the rest to close ASCII."""
    replacements = {"–": "-", "—": "-", "„": '"', "“": '"', "”": '"', "…": "...", "’": "'"}
    for a, b in replacements.items():
        s = s.replace(a, b)
    return s.encode("latin-1", "replace").decode("latin-1")


def render_pdf(p: RunProtocol, lang: str = "de") -> bytes:
    from fpdf import FPDF  # noqa: PLC0415 - imported only when a PDF is made

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    colors = {"green": (216, 240, 216), "yellow": (255, 243, 196), "red": (248, 208, 208)}
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(
        0, 9, _latin1(f"{text('title', lang)} - {p.practice}"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(2)
    pdf.set_fill_color(*colors.get(p.status, (230, 230, 230)))
    pdf.set_font("Helvetica", "B", 13)
    pdf.multi_cell(
        0, 10, _latin1(text(f"status.{p.status}", lang)), fill=True, new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 10)
    for line in render_text(p, lang).splitlines()[3:]:
        pdf.multi_cell(0, 5, _latin1(line) or " ", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def lines_pdf(lines: list[str], title_size: int = 14, qr: Any = None) -> bytes:
    """A plain A4 PDF of text lines (plans, emergency sheets); the first line is the title.
    ``qr`` (a segno QR code) is drawn at the top right."""
    import io  # noqa: PLC0415

    from fpdf import FPDF  # noqa: PLC0415

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    if qr is not None:
        png = io.BytesIO()
        qr.save(png, kind="png", scale=6, border=2)
        png.seek(0)
        pdf.image(png, x=160, y=10, w=40)
    pdf.set_font("Helvetica", "B", title_size)
    pdf.multi_cell(
        150 if qr is not None else 0,
        8,
        _latin1(lines[0] if lines else ""),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font("Courier", "", 9)
    for line in lines[1:]:
        pdf.multi_cell(0, 4.5, _latin1(line) or " ", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def lines_html(lines: list[str]) -> str:
    """A plain printable HTML page of text lines; the first line is the title."""
    import html  # noqa: PLC0415

    title = html.escape(lines[0] if lines else "")
    body = "\n".join(html.escape(line) for line in lines[1:])
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><pre>{body}</pre></body></html>\n"
    )
