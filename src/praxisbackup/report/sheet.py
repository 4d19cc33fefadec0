"""The emergency sheet (Notfallblatt) as a page: the recovery key, who may read it and how it is
handed over, whom to call, the restore steps, the services, the media in use, and the items
that come back.

Why this layout: the sheet is read on the worst day of a practice, by someone who may never
have seen it. Sections are numbered and the steps refer to them by number (never "see below"
on a page whose order might change); the QR code sits beside the title in its own column so it
never covers text; steps are a numbered table so wrapped lines stay under their own text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime

import segno

from praxisbackup.model.config import Config
from praxisbackup.report.i18n import text, when
from praxisbackup.report.pdf import MARGIN, Cell, Document

QR_SIZE = 36.0
STEPS = 7


@dataclass
class SheetMedium:
    label: str
    role: str
    location: str
    repository_id: str


@dataclass
class SheetContent:
    """What the sheet says; the application layer gathers it (key, register, configuration)."""

    practice: str
    key: str
    created: datetime
    media: list[SheetMedium] = field(default_factory=list)  # retired ones already left out
    services: list[tuple[str, str]] = field(default_factory=list)  # name, kind
    items: list[str] = field(default_factory=list)
    contacts: list[tuple[str, str, str, str]] = field(default_factory=list)  # role code, ...


def contacts_of(config: Config) -> list[tuple[str, str, str, str]]:
    """(role, name, phone, e-mail addresses) for the four people the sheet names."""
    mail = config.notify.recipients
    addresses = {
        "responsible": mail.responsible,
        "deputy": mail.deputy,
        "owner": mail.owner,
        "service_partner": mail.service_partner,
    }
    people = config.contacts
    return [
        (role, person.name, person.phone, ", ".join(addresses[role]))
        for role, person in (
            ("responsible", people.responsible),
            ("deputy", people.deputy),
            ("owner", people.owner),
            ("service_partner", people.service_partner),
        )
    ]


def _qr_png(key: str) -> bytes:
    png = io.BytesIO()
    segno.make(key, error="m").save(png, kind="png", scale=6, border=2)
    return png.getvalue()


def emergency_sheet_pdf(content: SheetContent, lang: str) -> bytes:
    def t(code: str, **params: object) -> str:
        return text(code, lang, **params)

    title = f"{t('sheet.title')} – {content.practice}"
    doc = Document(t("sheet.title"), content.practice, lang, created=content.created)
    pdf = doc.pdf
    # The QR code has the right-hand column beside the title block to itself.
    qr_x = pdf.w - MARGIN - QR_SIZE
    doc.image_png(_qr_png(content.key), x=qr_x, y=MARGIN, w=QR_SIZE)
    pdf.set_font("dejavu", "", 7)
    pdf.set_xy(qr_x - 4, MARGIN + QR_SIZE + 0.5)
    pdf.multi_cell(QR_SIZE + 8, 3, t("sheet.qr"), align="C")
    column = doc.width - QR_SIZE - 6
    pdf.set_xy(MARGIN, MARGIN)
    doc.heading(title, size=15, width=column)
    doc.paragraph(t("sheet.created", date=when(content.created, lang)), width=column)
    doc.space(1)
    doc.paragraph(t("sheet.keep"), bold=True, width=column)
    pdf.set_y(max(doc.y, MARGIN + QR_SIZE + 8))

    names = {role: name for role, name, _phone, _mail in content.contacts}
    doc.section(t("sheet.key"))
    doc.paragraph(content.key, mono=True, size=15, bold=False)
    doc.space(1)
    doc.paragraph(t("sheet.key.note"), size=9)
    doc.space(3)
    doc.paragraph(t("sheet.handover"), bold=True)
    doc.space(1)
    doc.paragraph(
        t(
            "sheet.handover.body",
            owner=names.get("owner") or t("sheet.nobody"),
            partner=names.get("service_partner") or t("sheet.nobody"),
        ),
        size=9,
    )
    doc.space(5)
    doc.paragraph(t("sheet.kept_at") + " " + "_" * 60, size=9)
    doc.space(2)
    w = doc.width
    doc.table(
        [t("sheet.handed_to"), t("doc.date"), t("doc.signature"), t("sheet.handed_back")],
        [["", "", "", ""]] * 3,
        [w * 0.34, w * 0.16, w * 0.28, w * 0.22],
        borders="ALL",
        row_height=10,
    )

    doc.section(t("sheet.contacts"))
    doc.table(
        [t("sheet.col.role"), t("sheet.col.name"), t("sheet.col.phone"), t("sheet.col.email")],
        [
            [
                t(f"sheet.contact.{role}"),
                Cell(name or t("sheet.nobody"), bold=bool(name)),
                Cell(phone or "–", bold=bool(phone)),
                mail or "–",
            ]
            for role, name, phone, mail in content.contacts
        ],
        [w * 0.27, w * 0.28, w * 0.19, w * 0.26],
    )

    doc.section(t("sheet.steps"))
    doc.table(
        [],
        [[Cell(f"{n}.", bold=True), t(f"sheet.step.{n}")] for n in range(1, STEPS + 1)],
        [8, w - 8],
        ["R", "L"],
        borders="NONE",
        size=9.5,
    )

    doc.section(t("sheet.services"))
    if content.services:
        doc.table(
            [t("col.service"), t("sheet.col.kind")],
            [[name, t(f"sheet.kind.{kind}")] for name, kind in content.services],
            [w * 0.6, w * 0.4],
        )
    else:
        doc.paragraph(t("sheet.no_services"), level="red")

    doc.section(t("sheet.media"))
    doc.table(
        [
            t("sheet.col.label"),
            t("sheet.col.medium_role"),
            t("sheet.col.location"),
            t("sheet.col.repository"),
        ],
        [
            [
                Cell(m.label, bold=True),
                t(f"role.{m.role}"),
                t(f"location.{m.location}"),
                Cell(m.repository_id[:16], mono=True),
            ]
            for m in content.media
        ],
        [w * 0.16, w * 0.38, w * 0.2, w * 0.26],
    )

    doc.section(t("sheet.items"))
    doc.table([], [[Cell(item, mono=True)] for item in content.items], [w], size=8.5)
    return doc.output()
