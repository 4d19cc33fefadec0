"""``praxisbackup setup``: the wizard from nothing to a configuration that can run tonight.

Each question can also be answered by a flag or in an answer file (``--answers FILE``, the
keys of :class:`praxisbackup.app.setup.SetupAnswers`); with ``--yes`` nothing is asked and a
missing required answer is an error. The questions are German unless ``--lang en``.
"""

from __future__ import annotations

import os
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from praxisbackup import platform
from praxisbackup.app import setup as setup_app
from praxisbackup.cli.ask import confirm
from praxisbackup.cli.context import Ctx
from praxisbackup.errors import ExitCode, PraxisError
from praxisbackup.model.config import Config, GermanState, load_config, resolve_config_path
from praxisbackup.report.i18n import text

pass_ctx = click.make_pass_decorator(Ctx)
ROLES = ("responsible", "deputy", "owner", "service_partner")


class Wizard:
    """Asks what the answers leave open (nothing with ``--yes``)."""

    def __init__(self, answers: setup_app.SetupAnswers, ask: bool) -> None:
        self.a = answers
        self.ask = ask
        self.lang = answers.language

    def t(self, code: str, **params: Any) -> str:
        return text(code, self.lang, **params)

    def say(self, code: str, **params: Any) -> None:
        click.echo(self.t(code, **params))

    def value(self, field: str, code: str, hide: bool = False, **params: Any) -> None:
        current = getattr(self.a, field)
        if not self.ask:
            return
        answer = click.prompt(
            self.t(code, **params),
            default=current if current not in (None, "") else "",
            hide_input=hide,
            show_default=not hide,
        )
        setattr(self.a, field, answer.strip() if isinstance(answer, str) else answer)

    def yes(self, code: str, default: bool = True, **params: Any) -> bool:
        """A yes/no question that accepts German answers (j/ja/n/nein) as well as y/n."""
        return confirm(self.t(code, **params), self.lang, default) if self.ask else default

    def choose(self, field: str, code: str, choices: list[str]) -> None:
        """A question with fixed answers (case does not matter); asked again until valid."""
        if not self.ask:
            return
        answer: str = click.prompt(
            self.t(code),
            type=click.Choice(choices, case_sensitive=False),
            default=getattr(self.a, field),
            show_choices=False,
        )
        setattr(self.a, field, next(c for c in choices if c.casefold() == answer.casefold()))

    def valid(self, field: str, code: str, check: Callable[[str], str | None]) -> None:
        """A free answer, asked again (with the reason) until ``check`` accepts it."""
        if not self.ask:
            return
        while True:
            self.value(field, code)
            problem = check(str(getattr(self.a, field) or ""))
            if problem is None:
                return
            self.say(problem)

    def labels(self, field: str, code: str, minimum: int = 1) -> None:
        """A list of medium labels: comma-separated, each once, at least ``minimum``."""
        if not self.ask:
            return
        while True:
            raw = click.prompt(self.t(code), default=", ".join(getattr(self.a, field)))
            labels = [x.strip() for x in raw.split(",") if x.strip()]
            if len(set(labels)) != len(labels):
                self.say("setup.bad.duplicate_labels")
            elif len(labels) < minimum:
                self.say("setup.bad.too_few_labels", count=minimum)
            else:
                setattr(self.a, field, labels)
                return

    def run(self) -> setup_app.Detected:
        a = self
        a.say("setup.welcome")
        a.valid("practice_name", "setup.q.practice", self._not_empty)
        a.choose("state", "setup.q.state", list(typing.get_args(GermanState)))
        found = setup_app.detect(self.a)
        if found.installation is None:
            a.say("setup.m1_missing")
            a.value("compumed", "setup.q.compumed")
            found = setup_app.detect(self.a)
        if found.installation is not None:
            a.say(
                "setup.m1_found",
                path=found.installation.compumed,
                variant=found.installation.variant,
            )
        if self.ask and found.extra_sources and self.a.extra_sources is None:
            kept = []
            for src in found.extra_sources:
                if a.yes("setup.q.extra", label=src.label, path=src.path):
                    kept.append(src)
            self.a.extra_sources = kept
        self._services(found)
        self._people()
        self._mail()
        self._media(found)
        a.valid("schedule_at", "setup.q.at", self._clock_time)
        return setup_app.detect(self.a)

    def _not_empty(self, value: str) -> str | None:
        return None if value.strip() else self.t("setup.bad.empty")

    def _clock_time(self, value: str) -> str | None:
        return None if re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value) else self.t("setup.bad.time")

    def _services(self, found: setup_app.Detected) -> None:
        if not self.ask:
            return
        self.a.service_kind = click.prompt(
            self.t("setup.q.service_kind"),
            type=click.Choice(["windows", "systemd", "command"]),
            default=found.service_kind,
        )
        if self.a.service_kind == "command":
            self.valid("command_stop", "setup.q.stop", self._not_empty)
            self.valid("command_start", "setup.q.start", self._not_empty)
            self.valid("command_is_running", "setup.q.is_running", self._not_empty)
            return
        while True:
            names = click.prompt(
                self.t("setup.q.services"),
                default=", ".join(self.a.services or found.services),
            )
            self.a.services = [n.strip() for n in names.split(",") if n.strip()]
            if self.a.services:
                return
            self.say("setup.bad.no_services")

    def _people(self) -> None:
        if not self.ask:
            return
        for role in ROLES:
            person = getattr(self.a, role)
            role_name = self.t(f"setup.role.{role}")
            person.name = click.prompt(self.t("setup.q.name", role=role_name), default=person.name)
            person.phone = click.prompt(
                self.t("setup.q.phone", role=role_name), default=person.phone
            )
            person.email = click.prompt(
                self.t("setup.q.email", role=role_name), default=person.email
            )

    def _mail(self) -> None:
        if not self.ask:
            return
        self.value("smtp_host", "setup.q.smtp_host")
        if not self.a.smtp_host:
            return
        self.a.smtp_port = click.prompt(self.t("setup.q.smtp_port"), default=self.a.smtp_port)
        self.a.smtp_security = click.prompt(
            self.t("setup.q.smtp_security"),
            type=click.Choice(["starttls", "tls", "none"]),
            default=self.a.smtp_security,
        )
        self.value("smtp_username", "setup.q.smtp_user")
        self.value("smtp_sender", "setup.q.smtp_sender")
        if self.a.smtp_username and not self.a.smtp_password:
            self.a.smtp_password = click.prompt(
                self.t("setup.q.smtp_password"), hide_input=True, default="", show_default=False
            )

    def _media(self, found: setup_app.Detected) -> None:
        if not self.ask:
            return
        places = click.prompt(
            self.t("setup.q.candidates"),
            default=", ".join(self.a.media_candidates or found.media_candidates),
        )
        self.a.media_candidates = [p.strip() for p in places.split(",") if p.strip()]
        self.labels("daily", "setup.q.daily", minimum=5)
        self.labels("quarter_end", "setup.q.quarter", minimum=1)
        for label in [*self.a.daily, *self.a.quarter_end]:
            if label in self.a.prepare_media:
                continue
            path = click.prompt(
                self.t("setup.q.prepare", label=label), default="", show_default=False
            ).strip()
            if not path:
                break  # the rest later with "praxisbackup medium init"
            self.a.prepare_media[label] = path


def _merge_flags(answers: setup_app.SetupAnswers, flags: dict[str, Any]) -> None:
    for key, value in flags.items():
        if value in (None, (), []):
            continue
        if key == "persons":
            for role, name, phone, email in value:
                setattr(answers, role, setup_app.PersonAnswer(name=name, phone=phone, email=email))
        elif key == "prepare":
            for item in value:
                label, sep, path = item.partition("=")
                if not sep:
                    raise PraxisError(f"--prepare expects LABEL=FOLDER, not {item!r}")
                answers.prepare_media[label.strip()] = path.strip()
        elif isinstance(value, tuple):
            setattr(answers, key, list(value))
        else:
            setattr(answers, key, value)


@click.command()
@click.option("--answers", "answer_file", help="Answer file (TOML) with the setup's answers.")
@click.option("--lang", type=click.Choice(["de", "en"]), help="Language of the questions.")
@click.option("--root", "search_roots", multiple=True, help="Where to look for CompuMED.")
@click.option("--compumed", help="The CompuMED folder (if not found automatically).")
@click.option("--practice", "practice_name", help="Name of the practice.")
@click.option("--state", help="Federal state (holidays), e.g. NW, BY.")
@click.option("--minimal", "mode", flag_value="minimal", help="Only the vendor's essential items.")
@click.option("--medium", "media_candidates", multiple=True, help="Where media appear (E:\\).")
@click.option("--service", "services", multiple=True, help="Service to stop (in stop order).")
@click.option("--service-kind", type=click.Choice(["windows", "systemd", "command"]))
@click.option("--stop", "command_stop", help="kind command: the database's stop command.")
@click.option("--start", "command_start", help="kind command: its start command.")
@click.option("--is-running", "command_is_running", help="kind command: exits 0 while running.")
@click.option("--passphrase-file", help="Use this passphrase file instead of generating one.")
@click.option("--prepare", multiple=True, metavar="LABEL=FOLDER", help="Prepare a medium now.")
@click.option("--allow-same-disk", is_flag=True, default=None, help="Demonstrations only.")
@click.option("--smtp-host")
@click.option("--smtp-port", type=int)
@click.option("--smtp-security", type=click.Choice(["starttls", "tls", "none"]))
@click.option("--smtp-user", "smtp_username")
@click.option("--smtp-sender")
@click.option("--smtp-ca-file")
@click.option(
    "--person",
    "persons",
    multiple=True,
    type=(click.Choice(ROLES), str, str, str),
    metavar="ROLE NAME PHONE EMAIL",
    help="responsible / deputy / owner / service_partner with name, phone, e-mail.",
)
@click.option("--at", "schedule_at", help="Time of the nightly run (HH:MM).")
@click.option("--no-schedule", "install_schedule", flag_value=False, default=None)
@click.option("--no-test-mail", "send_test_mail", flag_value=False, default=None)
@click.option("--state-dir", help="Catalog and logs (default: the platform's place).")
@click.option("--schedule-root", default="/", hidden=True, help="Install below this root (tests).")
@click.option("--output", "-o", help="Where to write the configuration.")
@click.option("--yes", is_flag=True, help="Ask nothing: use the answers, flags and detection.")
@pass_ctx
def setup(
    ctx: Ctx,
    /,
    answer_file: str | None,
    lang: str | None,
    schedule_root: str,
    output: str | None,
    yes: bool,
    **flags: Any,
) -> None:
    """Set up praxisbackup for this practice: data, services, passphrase, media, e-mail,
    people, schedule - then check that tonight can be green."""
    target = Path(output) if output else resolve_config_path(ctx.config_path)
    given = setup_app.load_answers(answer_file) if answer_file else setup_app.SetupAnswers()
    if lang:
        given.language = lang  # type: ignore[assignment]
    _merge_flags(given, flags)
    # Run again: start from what the existing configuration says; answers given now win.
    existing = _existing_config(target)
    answers = (
        setup_app.merge_answers(setup_app.answers_from_config(existing), given)
        if existing is not None
        else given
    )
    if not answers.smtp_password:
        answers.smtp_password = os.environ.get("PRAXISBACKUP_SMTP_PASSWORD", "")
    interactive = not yes and platform.has_console()
    if not yes and not interactive and not answer_file:
        raise PraxisError("setup needs a console, an answer file (--answers) or --yes")
    wizard = Wizard(answers, interactive)
    ctx.lang = answers.language
    wizard.run()
    if target.exists() and not wizard.yes("setup.q.replace", default=False, path=target):
        raise PraxisError("nothing was written", code="setup.nothing_written")

    def progress(step: str, params: dict[str, str]) -> None:
        wizard.say(step, **params)
        if step == "setup.step.passphrase_new":
            # Shown at once: whatever happens later in setup, it has been seen.
            click.echo(f"\n    {params['passphrase']}\n")

    result = setup_app.apply(answers, str(target), schedule_root, progress)
    _report(wizard, result)
    assert result.readiness is not None
    if not result.readiness.ready:
        sys.exit(ExitCode.FAILURE)


def _existing_config(path: Path) -> Config | None:
    """The configuration setup would replace, if there is a readable one."""
    if not path.is_file():
        return None
    try:
        return load_config(str(path))
    except PraxisError:
        return None  # unreadable or invalid: setup writes a new one (keeping a copy)


def _report(w: Wizard, r: setup_app.SetupResult) -> None:
    click.echo("")
    w.say("setup.written", path=r.config_path)
    if r.passphrase:
        w.say("setup.passphrase", stored=r.passphrase_stored)
        click.echo(f"\n    {r.passphrase}\n")
        w.say("setup.passphrase_once")
    for label in r.media:
        w.say("setup.medium_ready", label=label)
    for label in r.media_kept:
        w.say("setup.medium_kept", label=label)
    for error in r.media_errors:
        w.say("setup.medium_failed", error=error)
    w.say(
        f"setup.mail.{r.mail}" if r.mail in ("sent", "skipped") else "setup.mail.failed",
        error=r.mail,
    )
    if r.schedule:
        w.say("setup.schedule", how=r.schedule)
    w.say("setup.sheet", path=r.sheet)
    assert r.readiness is not None
    click.echo("")
    w.say(("ready.yes", "ready.yes_notes", "ready.no")[r.readiness.exit_code])
    for item in r.readiness.items:
        if item.level != "ok":
            click.echo(f"  {w.t('ready.level.' + item.level)}  {w.t(item.code, **item.params)}")
