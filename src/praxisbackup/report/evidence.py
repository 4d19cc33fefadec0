"""The audit evidence report: one PDF for a period that a doctor hands to an auditor or the
data-protection officer.

Why this shape: the auditor's questions come in a fixed order - what is your backup concept,
did it run every night, who checked it, where are the media, were restores tested, what is
still open - and ends with the points of the rules they audit against (KBV IT security
guideline, BSI IT-Grundschutz CON.3). Each section answers one question from the records;
a short mapping table points from each rule to the section that shows it. The page layout is
the one every praxisbackup paper shares (``report.pdf``); file names of patients never
appear (messages are cut to their first folder).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from praxisbackup.model.evidence import Evidence, Night
from praxisbackup.model.protocol import RED, YELLOW, RunProtocol
from praxisbackup.report.i18n import day, number, size, text, when
from praxisbackup.report.pdf import Cell, CellLike, Document
from praxisbackup.report.render import finding_text

#: The mapping table: (requirement code, how praxisbackup meets it, sections that show it).
MAPPING = (
    ("evidence.map.regular", "evidence.map.regular.how", "3, 4"),
    ("evidence.map.kind", "evidence.map.kind.how", "2"),
    ("evidence.map.protect", "evidence.map.protect.how", "2, 7, 8"),
    ("evidence.map.responsible", "evidence.map.responsible.how", "5, 6"),
    ("evidence.map.test", "evidence.map.test.how", "3, 9"),
    ("evidence.map.concept", "evidence.map.concept.how", "2"),
)
NOTE_LIMIT = 220


def _short(value: str, limit: int = NOTE_LIMIT) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


class _Writer:
    """One report in one language; the sections are numbered in order."""

    def __init__(self, ev: Evidence, lang: str) -> None:
        self.ev, self.lang = ev, lang
        self.number = 0
        practice = ev.config.practice.name
        created = datetime.fromisoformat(ev.created)
        self.doc = Document(self.t("evidence.title"), practice, lang, created=created)

    def t(self, code: str, **params: object) -> str:
        return text(code, self.lang, **params)

    def section(self, code: str) -> None:
        self.number += 1
        self.doc.section(f"{self.number}. {self.t(code)}")

    def finding(self, code: str, params: dict[str, object]) -> str:
        return finding_text(code, dict(params), self.lang, with_files=False)

    # -- the sections -------------------------------------------------------------------------
    def write(self) -> bytes:
        ev, doc, t = self.ev, self.doc, self.t
        doc.heading(f"{t('evidence.title')} – {ev.config.practice.name}")
        period = t(
            "evidence.period",
            first=day(ev.first, self.lang, with_weekday=False),
            last=day(ev.last, self.lang, with_weekday=False),
        )
        doc.paragraph(period, bold=True, size=11)
        doc.space(2)
        level, verdict = self.verdict()
        doc.status(level, verdict)
        for step in (
            self.summary,
            self.concept,
            self.nights,
            self.gaps,
            self.acks,
            self.escalations,
            self.media,
            self.holds,
            self.tests,
            self.open_points,
            self.changes,
            self.mapping,
        ):
            step()
        doc.signature()
        return doc.output()

    def verdict(self) -> tuple[str, str]:
        ev = self.ev
        working, gaps = len(ev.working_nights), len(ev.nights_without_backup)
        red_open = any(f.level == RED for f in ev.open_findings)
        if gaps or red_open:
            level = RED
        elif ev.open_findings or any(r.status == YELLOW for n in ev.nights for r in n.runs):
            level = YELLOW
        else:
            level = "green"
        backed = working - gaps
        return level, self.t(
            f"evidence.verdict.{level}",
            backed=number(backed, self.lang),
            working=number(working, self.lang),
        )

    def summary(self) -> None:
        ev, t, n = self.ev, self.t, self.number_of
        self.section("evidence.summary")
        working = ev.working_nights
        statuses = [max(n_.runs, key=lambda r: _rank(r.status)).status for n_ in working if n_.runs]
        acked_days = {datetime.fromisoformat(a["time"]).astimezone().date() for a in ev.acks}
        drills_ok = sum(1 for d in ev.drills if d.ok) + sum(
            1 for d in ev.drill_events if d["verdict"] == "ok"
        )
        drills = len(ev.drills) + len(ev.drill_events)
        self.doc.facts(
            [
                (t("evidence.sum.working"), n(len(working))),
                (
                    t("evidence.sum.backed"),
                    t(
                        "evidence.sum.backed_value",
                        green=n(sum(1 for x in working if _best(x) == "green")),
                        yellow=n(sum(1 for x in working if _best(x) == YELLOW)),
                    ),
                ),
                (
                    t("evidence.sum.gaps"),
                    Cell(n(len(ev.nights_without_backup)), RED if ev.nights_without_backup else ""),
                ),
                (t("evidence.sum.red_runs"), n(statuses.count(RED))),
                (
                    t("evidence.sum.acks"),
                    t(
                        "evidence.sum.acks_value",
                        days=n(sum(1 for x in working if x.day in acked_days)),
                        working=n(len(working)),
                        count=n(len(ev.acks)),
                    ),
                ),
                (t("evidence.sum.escalations"), n(len(ev.escalations))),
                (
                    t("evidence.sum.drills"),
                    t("evidence.sum.drills_value", count=n(drills), ok=n(drills_ok)),
                ),
                (t("evidence.sum.restores"), n(len(ev.restores))),
                (
                    t("evidence.sum.open"),
                    Cell(n(len(ev.open_findings)), YELLOW if ev.open_findings else ""),
                ),
            ],
            label_width=70,
        )

    def number_of(self, value: int) -> str:
        return number(value, self.lang)

    def concept(self) -> None:
        cfg, t = self.ev.config, self.t
        self.section("evidence.concept")
        sources = "\n".join(
            f"{s.label}: {s.path}"
            + (f" ({t('evidence.concept.profile_' + s.mode)})" if s.profile else "")
            for s in cfg.sources
        )
        r = cfg.rotation
        if r is not None:
            parts = [t("evidence.concept.daily", media=", ".join(r.daily))]
            if r.biweekly:
                parts.append(t("evidence.concept.biweekly", media=", ".join(r.biweekly)))
            if r.month_end:
                parts.append(
                    t(
                        "evidence.concept.month_end",
                        media=", ".join(r.month_end),
                        days=self.number_of(r.month_end_retention_days),
                    )
                )
            if r.quarter_end:
                parts.append(
                    t(
                        "evidence.concept.quarter_end",
                        media=", ".join(r.quarter_end),
                        days=self.number_of(r.quarter_end_retention_days),
                    )
                )
            rotation = "\n".join(parts)
        else:
            rotation = t("evidence.concept.no_rotation")
        closed = ", ".join(r.closed) if r is not None and r.closed else "–"
        verify = (
            t("evidence.concept.verify_full")
            if cfg.verify.level == "full"
            else t("evidence.concept.verify_new", days=self.number_of(cfg.verify.full_cycle_days))
        )
        services = ", ".join(s.name for s in cfg.services) or t("evidence.concept.no_services")
        c = cfg.contacts
        people = t(
            "evidence.concept.people",
            responsible=c.responsible_name(self.lang),
            deputy=c.deputy_name(self.lang),
            owner=c.owner.name or "–",
            partner=c.service_partner.name or "–",
        )
        d = cfg.daily_check
        self.doc.facts(
            [
                (t("evidence.concept.what"), sources),
                (
                    t("evidence.concept.when"),
                    t(
                        "evidence.concept.when_value",
                        at=cfg.schedule.at,
                        state=cfg.practice.state,
                        closed=closed,
                    ),
                ),
                (t("evidence.concept.kind"), t("evidence.concept.kind_value")),
                (t("evidence.concept.services"), services),
                (t("evidence.concept.where"), rotation),
                (t("evidence.concept.encryption"), t("evidence.concept.encryption_value")),
                (t("evidence.concept.verification"), verify),
                (t("evidence.concept.offsite"), t("evidence.concept.offsite_value")),
                (t("evidence.concept.people_label"), people),
                (
                    t("evidence.concept.check"),
                    t(
                        "evidence.concept.check_value",
                        ack_by=d.ack_by,
                        escalate_by=d.escalate_by,
                    ),
                ),
            ],
            label_width=48,
        )

    def nights(self) -> None:
        ev, t, doc = self.ev, self.t, self.doc
        self.section("evidence.nights")
        rows: list[list[CellLike]] = []
        weekends = 0
        for night in ev.nights:
            if not night.working and not night.runs:
                if night.day_off == "weekend":
                    weekends += 1
                    continue
                rows.append(
                    [
                        Cell(day(night.day, self.lang), "muted"),
                        Cell("–", "muted"),
                        Cell(t("evidence.no_backup_planned"), "muted"),
                        "",
                        "",
                        Cell(self.day_off(night.day_off), "muted"),
                    ]
                )
                continue
            if not night.runs:
                note = t("evidence.not_run")
                if night.missed_reported:
                    note += " " + t(
                        "evidence.reported", time=when(night.missed_reported, self.lang)
                    )
                rows.append(
                    [
                        Cell(day(night.day, self.lang), RED),
                        night.planned or "–",
                        Cell(t("evidence.status.none"), RED),
                        "–",
                        "–",
                        Cell(note, RED),
                    ]
                )
                continue
            for run in night.runs:
                rows.append(
                    [
                        Cell(
                            day(night.day, self.lang), run.status if run.status != "green" else ""
                        ),
                        night.planned or "–",
                        Cell(t(f"evidence.status.{run.status}"), run.status),
                        run.medium_label or "–",
                        self.verification(run),
                        Cell(self.run_note(run), run.status if run.status == RED else ""),
                    ]
                )
        w = doc.width
        doc.table(
            [
                t("plan.col.date"),
                t("evidence.col.planned"),
                t("evidence.col.status"),
                t("medium"),
                t("verification"),
                t("evidence.col.note"),
            ],
            rows,
            [30, 17, 19, 18, 25, w - 109],
            size=8,
        )
        if weekends:
            doc.paragraph(t("evidence.weekends", count=self.number_of(weekends)), size=8.5)
        reported = ev.nights[-1].day if ev.nights else ev.first - timedelta(days=1)
        if reported < ev.last:
            doc.paragraph(
                t("evidence.not_yet", day=day(reported + timedelta(days=1), self.lang)), size=8.5
            )

    def day_off(self, reason: str) -> str:
        return text(reason, self.lang) if reason in ("weekend", "closed") else reason

    def verification(self, run: RunProtocol) -> Cell:
        v = run.verification
        if not v.level:
            return Cell("–")
        if not v.ok:
            return Cell(self.t("evidence.verify.failed"), RED)
        return Cell(self.t(f"evidence.verify.{'full' if v.level == 'full' else 'new'}"))

    def run_note(self, run: RunProtocol) -> str:
        worst = [f for f in run.findings if f.level == run.status and f.level in (RED, YELLOW)]
        if not worst:
            held = (
                self.t("evidence.held_until", date=day(run.hold_until, self.lang, False))
                if run.hold_until
                else ""
            )
            return held
        first = self.finding(worst[0].code, worst[0].params)
        more = f" (+{len(worst) - 1})" if len(worst) > 1 else ""
        return _short(first) + more

    def gaps(self) -> None:
        ev, t = self.ev, self.t
        self.section("evidence.gaps")
        gaps = ev.nights_without_backup
        if not gaps:
            self.doc.paragraph(t("evidence.gaps.none"))
            return
        rows: list[list[CellLike]] = []
        for night in gaps:
            if night.runs:
                reds = [f for r in night.runs for f in r.findings if f.level == RED]
                why = "; ".join(self.finding(f.code, f.params) for f in reds[:3])
            else:
                why = t("evidence.not_run_why")
            reported = when(night.missed_reported, self.lang) if night.missed_reported else "–"
            rows.append([day(night.day, self.lang), Cell(_short(why, 400), RED), reported])
        w = self.doc.width
        self.doc.table(
            [t("plan.col.date"), t("evidence.col.why"), t("evidence.col.reported")],
            rows,
            [27, w - 67, 40],
            size=8.5,
        )

    def acks(self) -> None:
        ev, t = self.ev, self.t
        self.section("evidence.acks")
        if not ev.acks:
            self.doc.paragraph(t("evidence.acks.none"), level=YELLOW if ev.working_nights else "")
            return
        w = self.doc.width
        self.doc.table(
            [t("evidence.col.when"), t("evidence.col.by"), t("evidence.col.note")],
            [[when(a["time"], self.lang), a["by"], a["note"] or "–"] for a in ev.acks],
            [40, 60, w - 100],
            size=8.5,
        )

    def escalations(self) -> None:
        ev, t = self.ev, self.t
        self.section("evidence.escalations")
        if not ev.escalations:
            self.doc.paragraph(t("evidence.escalations.none"))
            return
        w = self.doc.width
        self.doc.table(
            [t("evidence.col.when"), t("evidence.col.what"), t("evidence.col.to")],
            [
                [when(e["time"], self.lang), t(f"evidence.escalation.{e['kind']}"), e["recipients"]]
                for e in ev.escalations
            ],
            [40, 70, w - 110],
            size=8.5,
        )

    def media(self) -> None:
        ev, t, doc = self.ev, self.t, self.doc
        self.section("evidence.media")
        w = doc.width
        doc.table(
            [
                t("medium"),
                t("evidence.col.role"),
                t("evidence.col.location_end"),
                t("evidence.col.uses"),
                t("evidence.col.full_verify"),
                t("evidence.col.drill"),
            ],
            [
                [
                    Cell(m.label, bold=True),
                    t("role." + m.role),
                    t("location." + m.location_end) if m.location_end else "–",
                    self.number_of(m.uses),
                    day(m.last_full_verify[:10], self.lang, False) if m.last_full_verify else "–",
                    day(m.last_drill[:10], self.lang, False) if m.last_drill else "–",
                ]
                for m in ev.media
            ],
            [24, w - 136, 32, 16, 32, 32],
            ["L", "L", "L", "R", "L", "L"],
            size=8.5,
        )
        moves = sorted(
            ((e, m.label) for m in ev.media for e in m.events), key=lambda pair: pair[0]["time"]
        )
        doc.paragraph(t("evidence.moves"), bold=True, size=9.5)
        doc.space(1)
        if not moves:
            doc.paragraph(t("evidence.moves.none"), size=9)
            return
        doc.table(
            [
                t("evidence.col.when"),
                t("medium"),
                t("evidence.col.what"),
                t("evidence.col.location"),
                t("evidence.col.by"),
                t("evidence.col.note"),
            ],
            [
                [
                    when(e["time"], self.lang),
                    label,
                    t(f"evidence.move.{e['kind']}"),
                    t("location." + e["location"]),
                    e["by"] or "–",
                    e["note"] or "–",
                ]
                for e, label in moves
            ],
            [37, 22, 24, 28, 36, w - 147],
            size=8,
        )

    def holds(self) -> None:
        ev, t = self.ev, self.t
        self.section("evidence.holds")
        if not ev.holds:
            self.doc.paragraph(t("evidence.holds.none"))
            return
        self.doc.table(
            [t("evidence.col.made"), t("medium"), t("snapshot"), t("hold_until")],
            [
                [
                    day(h.day, self.lang),
                    Cell(h.medium, bold=True),
                    Cell(h.snapshot, mono=True),
                    day(h.until, self.lang),
                ]
                for h in ev.holds
            ],
            [40, 40, 40, 40],
            size=8.5,
        )

    def tests(self) -> None:
        ev, t, doc = self.ev, self.t, self.doc
        self.section("evidence.tests")
        doc.paragraph(t("evidence.tests.why"), size=8.5)
        doc.space(1)
        if not ev.drills and not ev.drill_events:
            doc.paragraph(t("evidence.tests.none"), level=YELLOW)
        else:
            rows: list[list[CellLike]] = [
                [
                    when(d.time, self.lang),
                    d.machine,
                    d.medium_label,
                    t("drill.amount", files=self.number_of(d.files), size=size(d.bytes, self.lang)),
                    t("drill.seconds", seconds=number(d.seconds, self.lang)),
                    Cell(
                        t("evidence.test.ok" if d.ok else "evidence.test.failed"),
                        "" if d.ok else RED,
                    ),
                ]
                for d in ev.drills
            ]
            rows += [
                [
                    when(d["time"], self.lang),
                    d["machine"] or "–",
                    d["medium"],
                    "–",
                    "–",
                    Cell(
                        t("evidence.test.ok" if d["verdict"] == "ok" else "evidence.test.failed"),
                        "" if d["verdict"] == "ok" else RED,
                    ),
                ]
                for d in ev.drill_events
            ]
            w = doc.width
            doc.table(
                [
                    t("evidence.col.when"),
                    t("drill.machine"),
                    t("medium"),
                    t("restore.amount"),
                    t("evidence.col.duration"),
                    t("evidence.col.result"),
                ],
                rows,
                [34, 34, 22, w - 140, 25, 25],
                size=8,
            )
        if ev.restores:
            doc.paragraph(t("evidence.restores"), bold=True, size=9.5)
            doc.space(1)
            doc.table(
                [
                    t("evidence.col.when"),
                    t("restore.by"),
                    t("medium"),
                    t("restore.amount"),
                    t("evidence.col.result"),
                ],
                [
                    [
                        when(r.started, self.lang),
                        r.by or "–",
                        r.medium_label,
                        t(
                            "evidence.restore.amount",
                            files=self.number_of(r.files),
                            size=size(r.bytes, self.lang),
                            seconds=number(r.seconds, self.lang),
                        ),
                        Cell(t(f"restore.{r.status}"), "" if r.status == "complete" else RED),
                    ]
                    for r in ev.restores
                ],
                [34, 36, 22, 48, doc.width - 140],
                size=8,
            )

    def open_points(self) -> None:
        ev, t = self.ev, self.t
        self.section("evidence.open")
        if not ev.open_findings:
            self.doc.paragraph(t("evidence.open.none"))
            return
        self.doc.bullets(
            [
                (f.level if f.level in (RED, YELLOW) else "info", self.finding(f.code, f.params))
                for f in ev.open_findings
            ],
            size=9,
        )

    def changes(self) -> None:
        ev, t = self.ev, self.t
        if not ev.changes:
            return
        self.section("evidence.changes")
        w = self.doc.width
        self.doc.table(
            [t("evidence.col.when"), t("evidence.col.account"), t("evidence.col.what")],
            [
                [when(c["time"], self.lang), c["account"], _short(c["detail"] or c["action"])]
                for c in ev.changes
            ],
            [40, 40, w - 80],
            size=8,
        )

    def mapping(self) -> None:
        t = self.t
        self.doc.keep_together(90)  # the table and its note on one page
        self.section("evidence.mapping")
        w = self.doc.width
        self.doc.table(
            [t("evidence.col.requirement"), t("evidence.col.how"), t("evidence.col.sections")],
            [
                [Cell(t(req), bold=True), t(how, at=self.ev.config.schedule.at), where]
                for req, how, where in MAPPING
            ],
            [58, w - 80, 22],
            size=8,
        )
        self.doc.paragraph(t("evidence.mapping.note"), size=7.5, level="muted")


def _rank(status: str) -> int:
    return {"green": 0, YELLOW: 1, RED: 2}.get(status, 2)


def _best(night: Night) -> str:
    """The best status among a night's runs (a red run followed by a green rerun is green)."""
    return min((r.status for r in night.runs), key=_rank, default=RED)


def evidence_pdf(ev: Evidence, lang: str = "de") -> bytes:
    """The report as one PDF in ``lang`` (German by default)."""
    return _Writer(ev, lang).write()
