"""The status page: Heute (today), Kontrolle bestätigen (confirm the check), Protokolle, Medien,
Abwesenheit; German by default, English on request (``?lang=en``).

Why Starlette: the page is a handful of server-rendered forms (jinja2) inside the backup
service, on an old practice PC. Starlette is a small, well-kept ASGI toolkit (routing, requests,
forms, static files) with few dependencies; FastAPI adds a JSON-API layer and OpenAPI the page
does not need, Litestar a larger framework. No JavaScript is sent at all.

Every handler only reads a request, calls the same application function as the command line
(``app.today.today``, ``app.daily.DailyCheck``, ``app.medium.move_medium``, ``app.plan``,
``app.evidence``) and renders the result; the reports come from ``report/``.

Security: on 127.0.0.1 (the default) only this computer reaches the page, and the Host header
must name it (a web site that rebinds its name to 127.0.0.1 gets nothing). On a network
address every page but the login needs an account (Argon2 hashes, ``app.accounts``). Every
visitor has a session (HttpOnly, SameSite=Strict cookie) whose CSRF token every form must
carry; a POST from another origin is refused. Pages without a login never show file names
(they can be patients' names).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from praxisbackup import __version__
from praxisbackup.app.accounts import Accounts
from praxisbackup.app.daily import DailyCheck
from praxisbackup.app.evidence import (
    evidence,
    parse_day,
    parse_period,
    previous_quarter,
    quarter_of,
)
from praxisbackup.app.medium import move_medium
from praxisbackup.app.plan import plan_rows
from praxisbackup.app.restore_practice import restore_records
from praxisbackup.app.today import today
from praxisbackup.catalog.drills import Drills
from praxisbackup.catalog.runs import Catalog
from praxisbackup.errors import PraxisError
from praxisbackup.media.register import Register
from praxisbackup.model.config import Config
from praxisbackup.model.drill import DrillRecord
from praxisbackup.model.locations import catalog_path
from praxisbackup.report import drill as drill_report
from praxisbackup.report import restore as restore_report
from praxisbackup.report.evidence import evidence_pdf
from praxisbackup.report.i18n import LANGUAGES, day, day_off_reason, number, size, text, when
from praxisbackup.report.plan import note as plan_note
from praxisbackup.report.plan import plan_pdf
from praxisbackup.report.render import finding_text, protocol_view, render_html, render_pdf
from praxisbackup.web.sessions import COOKIE, Session, Sessions

log = logging.getLogger("praxisbackup.web")

LANG_COOKIE = "pb_lang"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
RESTORE_NAME = re.compile(r"^restore-\d{8}-\d{6}$")
KEY = re.compile(r"^[0-9a-f]{16}$")
MOVABLE = ("practice", "offsite", "archive", "attached")
#: Where a form may send the browser back to after it was handled.
BACK = {"/": "/", "/medien": "/medien"}
MAX_FIELD = 200
#: The "done" notes a redirect after a form may ask for (``?ok=ack``).
DONE = ("ack", "move", "absence")
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
#: The stand-alone protocol HTML carries its own styles (it is also an e-mail attachment).
DOCUMENT_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


class ConfigCache:
    """The configuration, read again only when its file changed (an edit takes effect
    without restarting the service, and a page view does not parse TOML every time)."""

    def __init__(self, load: Callable[[], Config]) -> None:
        self.load = load
        self.config = load()
        self.stamp = self._stamp(self.config)

    @staticmethod
    def _stamp(config: Config) -> int:
        try:
            return os.stat(config.path).st_mtime_ns if config.path else 0
        except OSError:
            return 0

    def get(self) -> Config:
        if self._stamp(self.config) != self.stamp:
            self.config = self.load()
            self.stamp = self._stamp(self.config)
        return self.config


@dataclass
class Visit:
    """One request as the handlers see it: configuration, session, language."""

    request: Request
    config: Config
    session: Session
    lang: str
    new_session: bool
    chosen_lang: str | None  # set by ?lang=, stored in a cookie

    @property
    def logged_in(self) -> bool:
        return self.session.account is not None

    @property
    def with_files(self) -> bool:
        """File names (possibly patients' names) only for someone who logged in."""
        return self.logged_in

    @property
    def account(self) -> str:
        """Who made a change, for the record: the account, or "lokal" on the server itself."""
        return self.session.account.name if self.session.account else "lokal"

    @property
    def person(self) -> str:
        """The name a form suggests: the account's person, else the responsible person."""
        if self.session.account is not None:
            return self.session.account.shown
        return self.config.contacts.responsible.name

    @property
    def db(self) -> str:
        return catalog_path(self.config)

    def t(self, code: str, **params: Any) -> str:
        return text(code, self.lang, **params)


Handler = Callable[[Visit], Awaitable[Response]]


class Problem(Exception):
    """A request the page refuses, with the status and the message code to show."""

    def __init__(self, status: int, code: str, **params: Any) -> None:
        super().__init__(code)
        self.status, self.code, self.params = status, code, params


class Site:
    """The pages and their plumbing (one per running status page)."""

    def __init__(self, load_config: Callable[[], Config], login: bool, session_minutes: int):
        self.configs = ConfigCache(load_config)
        self.login = login
        self.sessions = Sessions(session_minutes)
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("praxisbackup.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    # -- plumbing -------------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        page = self.page
        return [
            Route("/", page(self.today_page)),
            Route("/kontrolle", page(self.confirm), methods=["POST"]),
            Route("/medien", page(self.media_page)),
            Route("/medien/bewegen", page(self.move), methods=["POST"]),
            Route("/medien/plan.pdf", page(self.plan_document)),
            Route("/protokolle", page(self.protocols_page)),
            Route("/protokolle/{run_id}", page(self.protocol_page)),
            Route("/protokolle/{run_id}/pdf", page(self.protocol_pdf)),
            Route("/protokolle/{run_id}/html", page(self.protocol_html)),
            Route("/ruecksicherungen/{name}/pdf", page(self.restore_pdf)),
            Route("/tests/{key}/pdf", page(self.drill_pdf)),
            Route("/nachweis.pdf", page(self.evidence_document)),
            Route("/abwesenheit", page(self.absence_page)),
            Route("/abwesenheit", page(self.add_absence), methods=["POST"]),
            Route("/anmelden", page(self.login_page, public=True)),
            Route("/anmelden", page(self.do_login, public=True), methods=["POST"]),
            Route("/abmelden", page(self.logout), methods=["POST"]),
            Mount("/static", StaticFiles(packages=[("praxisbackup.web", "static")]), name="static"),
        ]

    def page(
        self, handler: Handler, public: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler: host check, session, login, CSRF for POST, language, headers,
        and a readable page instead of any error."""

        async def endpoint(request: Request) -> Response:
            config = self.configs.get()
            lang_param = request.query_params.get("lang")
            chosen = lang_param if lang_param in LANGUAGES else None
            lang = chosen or request.cookies.get(LANG_COOKIE) or config.practice.language
            lang = lang if lang in LANGUAGES else "de"
            session = self.sessions.get(request.cookies.get(COOKIE))
            visit = Visit(
                request, config, session or self.sessions.new(), lang, session is None, chosen
            )
            try:
                self.check_host(request)
                if request.method == "POST":
                    self.check_origin(request)
                if self.login and not public and not visit.logged_in:
                    target = request.url.path
                    response: Response = RedirectResponse(
                        "/anmelden?" + urlencode({"next": target}), status_code=303
                    )
                else:
                    response = await handler(visit)
            except Problem as problem:
                response = self.error(visit, problem.status, problem.code, **problem.params)
            except PraxisError as exc:
                # An error staff may meet speaks their language (its catalogue code).
                detail = text(exc.code, visit.lang, **exc.params) if exc.code else str(exc)
                response = self.error(visit, 400, "web.error.action", detail=detail)
            except Exception:  # a person sees a sentence, the service log has the trace
                log.exception("status page: %s %s failed", request.method, request.url.path)
                response = self.error(visit, 500, "web.error.internal")
            return self.finish(visit, response)

        return endpoint

    def check_host(self, request: Request) -> None:
        """Without login only this computer's own names are answered (DNS rebinding)."""
        if self.login:
            return
        host = (request.url.hostname or "").strip("[]").casefold()
        if host not in LOCAL_HOSTS:
            raise Problem(400, "web.error.host")

    @staticmethod
    def check_origin(request: Request) -> None:
        """A form may only be sent from the page itself (browsers send Origin with POST)."""
        origin = request.headers.get("origin")
        if origin is None:
            return
        expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin != expected:
            raise Problem(403, "web.error.origin")

    async def form(self, visit: Visit) -> FormData:
        """The submitted form, refused (403) unless it carries this session's CSRF token."""
        form = await visit.request.form(max_files=0, max_fields=20, max_part_size=8192)
        token = form.get("csrf")
        if visit.new_session or not isinstance(token, str) or not visit.session.csrf_ok(token):
            raise Problem(403, "web.error.csrf")
        return form

    @staticmethod
    def field(form: FormData, name: str, required: bool = False) -> str:
        value = form.get(name)
        value = value.strip()[:MAX_FIELD] if isinstance(value, str) else ""
        if required and not value:
            raise Problem(400, "web.error.missing", field=name)
        return value

    def finish(self, visit: Visit, response: Response) -> Response:
        headers = response.headers
        headers.setdefault("content-security-policy", PAGE_CSP)
        headers["x-content-type-options"] = "nosniff"
        headers["x-frame-options"] = "DENY"
        # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on forms.
        headers["referrer-policy"] = "same-origin"
        headers["cache-control"] = "no-store"
        if visit.new_session:
            response.set_cookie(
                COOKIE, visit.session.token, httponly=True, samesite="strict", path="/"
            )
        if visit.chosen_lang:
            response.set_cookie(
                LANG_COOKIE,
                visit.chosen_lang,
                max_age=365 * 24 * 3600,
                httponly=True,
                samesite="strict",
                path="/",
            )
        return response

    def render(self, visit: Visit, template: str, status: int = 200, **context: Any) -> Response:
        lang = visit.lang
        path = visit.request.url.path
        base = {
            "t": visit.t,
            "lang": lang,
            "other_lang": "en" if lang == "de" else "de",
            "path": path,
            "practice": visit.config.practice.name,
            "account": visit.session.account,
            "login": self.login,
            "csrf": visit.session.csrf,
            "version": __version__,
            "when": lambda v: when(v, lang),
            "day": lambda v, weekday=True: day(v, lang, weekday),
            "number": lambda v: number(v, lang),
            "size": lambda v: size(v, lang),
            "ok": ok if (ok := visit.request.query_params.get("ok", "")) in DONE else "",
        }
        body = self.env.get_template(template).render(**base, **context)
        return HTMLResponse(body, status_code=status)

    def error(self, visit: Visit, status: int, code: str, **params: Any) -> Response:
        return self.render(visit, "error.html", status, message=visit.t(code, **params))

    @staticmethod
    def pdf(data: bytes, filename: str) -> Response:
        return Response(
            data,
            media_type="application/pdf",
            headers={"content-disposition": f"inline; filename*=UTF-8''{quote(filename)}"},
        )

    # -- Heute ----------------------------------------------------------------------------------
    async def today_page(self, visit: Visit) -> Response:
        now = datetime.now().astimezone()
        view = await run_in_threadpool(today, visit.config, now)
        reasons = [
            (r.level, finding_text(r.code, r.params, visit.lang, visit.with_files))
            for r in view.reasons()
        ]
        advice = [finding_text(a.code, a.params, visit.lang) for a in view.advice]
        register = {m.label: m for m in Register(visit.db).all()}
        return self.render(
            visit,
            "today.html",
            view=view,
            now=now,
            reasons=reasons,
            advice=advice,
            takeoff=[(label, register.get(label)) for label in view.take_offsite],
            day_off=day_off_reason(view.no_backup_reason, visit.lang)
            if view.no_backup_reason
            else "",
            person=visit.person,
        )

    async def confirm(self, visit: Visit) -> Response:
        form = await self.form(visit)
        by = self.field(form, "name") or visit.person or visit.account
        note = self.field(form, "note")
        now = datetime.now().astimezone()
        runs = await run_in_threadpool(DailyCheck(visit.config).ack, by, note, now)
        Accounts(visit.db).record_change(
            visit.account, "ack", f"{by}: {len(runs)} run(s)" + (f" – {note}" if note else ""), now
        )
        return RedirectResponse("/?ok=ack", status_code=303)

    # -- Medien ---------------------------------------------------------------------------------
    async def media_page(self, visit: Visit) -> Response:
        records = Register(visit.db).all()
        start = date.today()
        rows = []
        if visit.config.rotation is not None:
            rows = [
                (r, plan_note(r, visit.lang))
                for r in plan_rows(visit.config, start, 14, visit.lang)
                if r.day.weekday() < 5
            ]
        return self.render(
            visit,
            "media.html",
            records=records,
            active=[r for r in records if r.location != "retired"],
            movable=MOVABLE,
            plan=rows,
            person=visit.person,
        )

    async def move(self, visit: Visit) -> Response:
        form = await self.form(visit)
        medium = self.field(form, "medium", required=True)
        location = self.field(form, "location", required=True)
        if location not in MOVABLE:
            raise Problem(400, "web.error.location")
        by = self.field(form, "name", required=True)
        note = self.field(form, "note")
        back = BACK.get(self.field(form, "back"), "/medien")
        now = datetime.now().astimezone()
        record = move_medium(visit.config, medium, location, by, note, now)
        Accounts(visit.db).record_change(
            visit.account, "move", f"{record.label} -> {location} ({by})", now
        )
        return RedirectResponse(f"{back}?ok=move", status_code=303)

    async def plan_document(self, visit: Visit) -> Response:
        weeks = visit.request.query_params.get("weeks", "4")
        count = int(weeks) if weeks.isdigit() and 1 <= int(weeks) <= 13 else 4
        start = date.today() - timedelta(days=date.today().weekday())
        rows = plan_rows(visit.config, start, count * 7, visit.lang)
        override = visit.config.rotation.override_reason if visit.config.rotation else ""
        data = await run_in_threadpool(
            plan_pdf, rows, visit.config.practice.name, visit.lang, override
        )
        return self.pdf(data, f"{visit.t('plan.title')}-{start.isoformat()}.pdf")

    # -- Protokolle -----------------------------------------------------------------------------
    async def protocols_page(self, visit: Visit) -> Response:
        runs = Catalog(visit.db).runs(limit=120)
        lines = []
        for run in runs:
            worst = [f for f in run.findings if f.level == run.status and f.level != "green"]
            note = (
                finding_text(worst[0].code, worst[0].params, visit.lang, visit.with_files)
                if worst
                else ""
            )
            lines.append((run, note))
        drills = [(_drill_key(d), d) for d in reversed(Drills(visit.db).all())]
        today_ = date.today()
        return self.render(
            visit,
            "protocols.html",
            runs=lines,
            restores=restore_records(visit.config),
            drills=drills,
            periods=[quarter_of(today_), previous_quarter(today_)],
            quarter_first=day(parse_period(quarter_of(today_))[0], visit.lang, False),
            today=day(today_, visit.lang, False),
        )

    def _run(self, visit: Visit) -> Any:
        run_id = visit.request.path_params["run_id"]
        run = Catalog(visit.db).run(run_id) if RUN_ID.match(run_id) else None
        if run is None:
            raise Problem(404, "web.error.not_found")
        return run

    async def protocol_page(self, visit: Visit) -> Response:
        run = self._run(visit)
        view = protocol_view(run, visit.lang, visit.with_files)
        return self.render(visit, "protocol.html", run=run, v=view)

    async def protocol_pdf(self, visit: Visit) -> Response:
        run = self._run(visit)
        data = await run_in_threadpool(render_pdf, run, visit.lang, visit.with_files)
        return self.pdf(data, f"{visit.t('title')}-{run.run_id}.pdf")

    async def protocol_html(self, visit: Visit) -> Response:
        run = self._run(visit)
        body = render_html(run, visit.lang, visit.with_files)
        return HTMLResponse(body, headers={"content-security-policy": DOCUMENT_CSP})

    async def restore_pdf(self, visit: Visit) -> Response:
        name = visit.request.path_params["name"]
        found = [r for n, r in restore_records(visit.config) if n == name]
        if not RESTORE_NAME.match(name) or not found:
            raise Problem(404, "web.error.not_found")
        record = found[0] if visit.with_files else restore_report.without_files(found[0])
        data = await run_in_threadpool(restore_report.restore_protocol_pdf, record, visit.lang)
        return self.pdf(data, f"{name}.pdf")

    async def drill_pdf(self, visit: Visit) -> Response:
        key = visit.request.path_params["key"]
        found = (
            [d for d in Drills(visit.db).all() if _drill_key(d) == key] if KEY.match(key) else []
        )
        if not found:
            raise Problem(404, "web.error.not_found")
        record = found[0] if visit.with_files else drill_report.without_files(found[0])
        data = await run_in_threadpool(
            drill_report.drill_pdf, record, visit.config.practice.name, visit.lang
        )
        return self.pdf(data, f"{visit.t('drill.title')}-{record.time[:10]}.pdf")

    async def evidence_document(self, visit: Visit) -> Response:
        params = visit.request.query_params
        period = params.get("period", "")
        if params.get("from") or params.get("to"):
            first = parse_day(params.get("from", ""))
            last = parse_day(params.get("to", ""))
            name = f"{first.isoformat()}_{last.isoformat()}"
        else:
            first, last = parse_period(period or quarter_of(date.today()))
            name = period or quarter_of(date.today())
        lang = params.get("doc_lang", visit.lang)
        lang = lang if lang in LANGUAGES else visit.lang
        ev = await run_in_threadpool(evidence, visit.config, first, last, lang)
        data = await run_in_threadpool(evidence_pdf, ev, lang)
        return self.pdf(data, f"{text('evidence.file', lang)}-{name}.pdf")

    # -- Abwesenheit ----------------------------------------------------------------------------
    async def absence_page(self, visit: Visit) -> Response:
        absences = DailyCheck(visit.config).absences()
        return self.render(
            visit,
            "absence.html",
            absences=absences,
            deputy=visit.config.contacts.deputy_name(visit.lang),
            responsible=visit.config.contacts.responsible_name(visit.lang),
            person=visit.person,
            today=date.today().isoformat(),
        )

    async def add_absence(self, visit: Visit) -> Response:
        form = await self.form(visit)
        first = parse_day(self.field(form, "first", required=True))
        last = parse_day(self.field(form, "last", required=True))
        if last < first:
            raise Problem(400, "web.error.period")
        by = self.field(form, "name", required=True)
        note = self.field(form, "note")
        now = datetime.now().astimezone()
        DailyCheck(visit.config).add_absence(first, last, by, note, now)
        Accounts(visit.db).record_change(
            visit.account, "absence", f"{first.isoformat()}..{last.isoformat()} ({by})", now
        )
        return RedirectResponse("/abwesenheit?ok=absence", status_code=303)

    # -- Anmelden -------------------------------------------------------------------------------
    async def login_page(self, visit: Visit) -> Response:
        if not self.login:
            return RedirectResponse("/", status_code=303)
        return self.render(visit, "login.html", next=_next(visit), failed="")

    async def do_login(self, visit: Visit) -> Response:
        form = await self.form(visit)
        name = self.field(form, "name")
        password = form.get("password")
        password = password if isinstance(password, str) else ""
        client = visit.request.client.host if visit.request.client else "?"
        accounts = Accounts(visit.db)
        if accounts.login_blocked(name, client):
            return self.render(
                visit, "login.html", 429, next=_next(visit), failed=visit.t("web.login.blocked")
            )
        account = await run_in_threadpool(accounts.verify, name, password)
        if account is None:
            accounts.login_failed(name, client)
            return self.render(
                visit, "login.html", 401, next=_next(visit), failed=visit.t("web.login.failed")
            )
        accounts.login_succeeded(name)
        accounts.record_change(account.name, "login", client)
        # A new session (new token and CSRF token) for the logged-in person.
        self.sessions.drop(visit.session.token)
        visit.session = self.sessions.new(account)
        visit.new_session = True
        return RedirectResponse(_next(visit), status_code=303)

    async def logout(self, visit: Visit) -> Response:
        await self.form(visit)
        self.sessions.drop(visit.session.token)
        response = RedirectResponse("/anmelden" if self.login else "/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response


#: A page of this site to return to after the login (no "//host" or "/\\host" tricks).
NEXT = re.compile(r"^/[A-Za-z0-9/_.-]*$")


def _next(visit: Visit) -> str:
    """Where to go after the login: a path of this page, nothing else."""
    target = visit.request.query_params.get("next", "/")
    return target if NEXT.match(target) and not target.startswith("//") else "/"


def _drill_key(record: DrillRecord) -> str:
    return hashlib.sha256(
        f"{record.medium_id}|{record.time}|{record.machine}".encode()
    ).hexdigest()[:16]


def create_app(
    load_config: Callable[[], Config], login: bool = False, session_minutes: int = 480
) -> Starlette:
    """The ASGI application (``web.server`` runs it inside ``serve``)."""
    return Starlette(routes=Site(load_config, login, session_minutes).routes())
