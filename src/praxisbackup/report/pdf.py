"""The printed page: one A4 layout for every document a practice files (run protocol, plan,
restore protocol, drill result, emergency sheet).

Why one module: a doctor files these next to each other and an auditor compares them, so they
share the font (DejaVu Sans, embedded, so „German quotes“, dashes and umlauts print as typed on
any printer), the footer (practice, "Seite 1 von 2", when the paper was made), tables with
aligned columns, the colours of the status, and the signature line. The documents' modules say
*what* is on a page; this one says how it looks.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

from fpdf import FPDF
from fpdf.enums import TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace

from praxisbackup.report.i18n import text, when

FONT = "dejavu"
MONO = "dejavumono"

#: Fill colours of a status box and text colours of findings, as in the HTML protocol.
FILL = {"green": (216, 240, 216), "yellow": (255, 243, 196), "red": (248, 208, 208)}
GREY = (110, 110, 110)
INK = {
    "green": (20, 82, 20),
    "yellow": (107, 82, 0),
    "red": (122, 11, 11),
    "info": (34, 34, 34),
    "muted": GREY,
}
HEAD_FILL = (234, 234, 234)

MARGIN = 15.0
FOOTER_SPACE = 18.0
#: Longest text of one table cell: a table row must fit on one page (a folder tree 40 levels
#: deep gives a path of thousands of characters); longer texts keep their start and end.
MAX_CELL = 400


def shorten(value: str, limit: int = MAX_CELL) -> str:
    """``value`` cut in the middle with "…" when longer than ``limit`` characters."""
    if len(value) <= limit:
        return value
    head = limit * 2 // 5
    return f"{value[:head]} … {value[-(limit - head - 3) :]}"


@dataclass(frozen=True)
class Cell:
    """One table cell with its look: ``level`` red/yellow colours (red also bold)."""

    text: str
    level: str = ""
    bold: bool = False
    mono: bool = False
    size: float | None = None  # font size in points (default: the table's)


CellLike = str | Cell


def _font_path(name: str) -> str:
    return str(resources.files("praxisbackup.report").joinpath(f"fonts/{name}"))


class _Page(FPDF):  # type: ignore[misc,unused-ignore]  # fpdf ships no type information
    """FPDF with the footer every document carries."""

    footer_left = ""
    footer_right = ""
    page_template = "{page}/{pages}"

    def footer(self) -> None:
        self.set_y(-12)
        self.set_draw_color(*GREY)
        self.line(MARGIN, self.get_y() - 1.5, self.w - MARGIN, self.get_y() - 1.5)
        self.set_font(FONT, "", 8)
        self.set_text_color(*GREY)
        third = (self.w - 2 * MARGIN) / 3
        self.set_x(MARGIN)
        self.cell(third, 5, self.footer_left, align="L")
        page = self.page_template.format(page=self.page_no(), pages=self.alias_nb_pages_str)
        self.cell(third, 5, page, align="C")
        self.cell(third, 5, self.footer_right, align="R")
        self.set_text_color(0, 0, 0)

    @property
    def alias_nb_pages_str(self) -> str:
        return str(self.str_alias_nb_pages)


class Document:
    """An A4 document with the practice's footer; methods add blocks top to bottom."""

    def __init__(
        self,
        title: str,
        practice: str,
        lang: str,
        created: datetime | None = None,
    ) -> None:
        self.lang = lang
        self.title = title
        pdf = _Page(format="A4")
        pdf.set_margins(MARGIN, MARGIN, MARGIN)
        pdf.set_auto_page_break(True, margin=FOOTER_SPACE)
        pdf.add_font(FONT, "", _font_path("DejaVuSans.ttf"))
        pdf.add_font(FONT, "B", _font_path("DejaVuSans-Bold.ttf"))
        pdf.add_font(MONO, "", _font_path("DejaVuSansMono.ttf"))
        pdf.alias_nb_pages()
        pdf.footer_left = practice
        pdf.footer_right = text("doc.created", lang, time=when(created or datetime.now(), lang))
        pdf.page_template = text("doc.page", lang, page="{page}", pages="{pages}")
        pdf.set_title(f"{title} – {practice}")
        pdf.set_author(practice)
        pdf.set_creator("praxisbackup")
        pdf.set_lang(lang)
        pdf.add_page()
        self.pdf = pdf

    # -- geometry --------------------------------------------------------------------------
    @property
    def width(self) -> float:
        """Usable width between the margins (mm)."""
        return float(self.pdf.w - 2 * MARGIN)

    @property
    def y(self) -> float:
        return float(self.pdf.get_y())

    def space(self, mm: float = 3) -> None:
        self.pdf.ln(mm)

    def keep_together(self, height: float) -> None:
        """Start a new page unless ``height`` mm still fit (a signature block never splits)."""
        if self.pdf.get_y() + height > self.pdf.h - FOOTER_SPACE:
            self.pdf.add_page()

    # -- blocks ----------------------------------------------------------------------------
    def heading(self, title: str, size: float = 16, width: float = 0) -> None:
        """The document's title (``width`` leaves room at the right, e.g. for a QR code)."""
        self.pdf.set_font(FONT, "B", size)
        self.pdf.multi_cell(width, size * 0.5, title, align="L", new_x=XPos.LMARGIN)
        self.space(2)

    def section(self, title: str) -> None:
        self.keep_together(16)
        self.space(3)
        self.pdf.set_font(FONT, "B", 11.5)
        self.pdf.multi_cell(0, 6, title, align="L", new_x=XPos.LMARGIN)
        self.space(1)

    def paragraph(
        self,
        body: str,
        *,
        level: str = "",
        bold: bool = False,
        size: float = 10,
        width: float = 0,
        mono: bool = False,
        indent: float = 0,
    ) -> None:
        pdf = self.pdf
        pdf.set_font(MONO if mono else FONT, "B" if bold or level == "red" else "", size)
        pdf.set_text_color(*INK.get(level, (0, 0, 0)))
        pdf.set_x(MARGIN + indent)
        w = width or (self.width - indent)
        pdf.multi_cell(w, size * 0.5, body or " ", align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)

    def status(self, level: str, body: str) -> None:
        """The coloured box that tells green / yellow / red at one glance."""
        pdf = self.pdf
        pdf.set_fill_color(*FILL.get(level, (230, 230, 230)))
        pdf.set_text_color(*INK.get(level, (0, 0, 0)))
        pdf.set_font(FONT, "B", 13)
        pdf.multi_cell(0, 7, body, fill=True, align="L", padding=(3, 3), new_x=XPos.LMARGIN)
        pdf.set_text_color(0, 0, 0)
        pdf.set_fill_color(255, 255, 255)
        self.space(2)

    def bullets(self, items: Sequence[tuple[str, str]], size: float = 10) -> None:
        """(level, text) lines; red ones bold and red, yellow ones dark yellow, as in HTML."""
        marks = {"red": "!", "yellow": "!", "info": "•"}
        for level, body in items:
            pdf = self.pdf
            pdf.set_font(FONT, "B" if level == "red" else "", size)
            pdf.set_text_color(*INK.get(level, (0, 0, 0)))
            pdf.set_x(MARGIN)
            pdf.cell(6, size * 0.5, marks.get(level, "•"))
            pdf.multi_cell(
                self.width - 6, size * 0.5, body, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
            )
            pdf.ln(0.8)
        self.pdf.set_text_color(0, 0, 0)

    def facts(self, rows: Sequence[tuple[str, CellLike]], label_width: float = 55) -> None:
        """Label / value pairs in two aligned columns."""
        self.table(
            [],
            [[Cell(label, bold=True), value] for label, value in rows],
            [label_width, self.width - label_width],
            borders="NONE",
        )

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[CellLike]],
        widths: Sequence[float],
        align: Sequence[str] | None = None,
        *,
        size: float = 9.5,
        borders: str = "HORIZONTAL_LINES",
        line_height: float | None = None,
        row_height: float | None = None,
    ) -> None:
        """A table whose columns line up across rows and pages (headers repeat)."""
        pdf = self.pdf
        pdf.set_font(FONT, "", size)
        pdf.set_draw_color(170, 170, 170)
        pdf.set_line_width(0.2)
        aligns = list(align or ["L"] * len(widths))
        heads = FontFace(emphasis="BOLD", fill_color=HEAD_FILL)
        options: dict[str, Any] = {
            "col_widths": tuple(widths),
            "width": min(sum(widths), float(pdf.epw)),
            "align": "LEFT",
            "text_align": tuple(aligns),
            "first_row_as_headings": bool(headers),
            "headings_style": heads,
            "borders_layout": getattr(TableBordersLayout, borders),
            "line_height": line_height or size * 0.52,
            "padding": (1.2, 1.5),
            "v_align": "MIDDLE" if row_height else "TOP",
            "min_row_height": row_height,
        }
        with pdf.table(**options) as table:
            if headers:
                head = table.row()
                for h in headers:
                    head.cell(h)
            for cells in rows:
                row = table.row()
                for i, cell in enumerate(cells):
                    c = cell if isinstance(cell, Cell) else Cell(cell)
                    style = FontFace(
                        family=MONO if c.mono else None,
                        # The monospaced face is vendored in one weight only.
                        emphasis="BOLD" if (c.bold or c.level == "red") and not c.mono else None,
                        color=INK.get(c.level) if c.level else None,
                        size_pt=c.size,
                    )
                    row.cell(shorten(c.text), style=style, align=aligns[i])
        self.space(2)

    def signature(self, lines: int = 1) -> None:
        """ "geprüft von / Datum / Unterschrift": where the person who checked signs."""
        pdf = self.pdf
        labels = [text("doc.checked_by", self.lang), text("doc.date", self.lang)]
        labels.append(text("doc.signature", self.lang))
        widths = [self.width * 0.38, self.width * 0.2, self.width * 0.42]
        self.keep_together(26 * lines)
        self.space(4)
        pdf.set_font(FONT, "B", 10)
        pdf.multi_cell(0, 5, text("doc.sign_here", self.lang), align="L", new_x=XPos.LMARGIN)
        for _ in range(lines):
            self.space(11)
            y = pdf.get_y()
            x = MARGIN
            pdf.set_draw_color(0, 0, 0)
            pdf.set_line_width(0.3)
            for w in widths:
                pdf.line(x, y, x + w - 5, y)
                x += w
            pdf.set_font(FONT, "", 8.5)
            pdf.set_text_color(*GREY)
            x = MARGIN
            for label, w in zip(labels, widths, strict=True):
                pdf.set_xy(x, y + 0.8)
                pdf.cell(w - 5, 4, label)
                x += w
            pdf.set_text_color(0, 0, 0)
            pdf.set_xy(MARGIN, y + 5)

    def image_png(self, png: bytes, x: float, y: float, w: float) -> None:
        self.pdf.image(io.BytesIO(png), x=x, y=y, w=w)

    def output(self) -> bytes:
        return bytes(self.pdf.output())
