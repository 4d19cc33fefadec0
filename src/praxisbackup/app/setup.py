"""Setting up a practice from nothing to a configuration that can run tonight.

The questions are the fields of :class:`SetupAnswers`. An interface fills them - the
interactive wizard asks them one by one (German by default), a service partner who sets up
many practices the same way writes them into an answer file (TOML) or passes them as flags -
and :func:`apply` does the rest: detect CGM M1 PRO, propose the other data and the services,
generate the repository passphrase and keep it where the nightly run (and nobody else) can read
it, prepare the media that are attached, store the SMTP password, send a test message, install
the schedule, write the configuration and the emergency sheet, and end with the readiness check.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from praxisbackup.app import readiness
from praxisbackup.app.emergency import emergency_sheet
from praxisbackup.app.notify import send_test_message
from praxisbackup.credentials import read_secret_file, store_secret
from praxisbackup.engine.crypto import generate_recovery_key
from praxisbackup.errors import PraxisError
from praxisbackup.media.label import read_label
from praxisbackup.media.register import Register
from praxisbackup.media.selection import plan_from_config, prepare_medium
from praxisbackup.model.config import Config, GermanState, parse_config
from praxisbackup.model.example import config_toml
from praxisbackup.model.locations import catalog_path, state_dir
from praxisbackup.platform import schedule
from praxisbackup.platform.private import private_dir, write_private_file
from praxisbackup.practice import profiles

#: Service names of a standard CGM M1 PRO server, in stop order: the M1 background service
#: first, then the Oracle database and its listener.
DEFAULT_WINDOWS_SERVICES = [
    "M1Hintergrunddienst",
    "OracleServiceM1",
    "OracleOraDb11g_home1TNSListener",
]
DEFAULT_DAILY = ["Mo", "Di", "Mi", "Do", "Fr"]
DEFAULT_QUARTER_END = [f"Quartal {n}" for n in range(1, 10)]
PASSPHRASE_FILE = "passphrase.txt"
SMTP_PASSWORD_FILE = "smtp-password.txt"


class SetupError(PraxisError):
    """The answers cannot produce a configuration (a required answer is missing or wrong)."""


class PersonAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    phone: str = ""
    email: str = ""


class SourceAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1)
    path: str = Field(min_length=1)


class SetupAnswers(BaseModel):
    """Everything ``setup`` asks; the answer file has exactly these keys."""

    model_config = ConfigDict(extra="forbid")

    language: Literal["de", "en"] = "de"
    practice_name: str = ""
    state: GermanState = "NW"
    #: Where CompuMED is looked for (default: every drive / "/").
    search_roots: list[str] = Field(default_factory=list)
    #: The CompuMED folder, if it should not be detected.
    compumed: str | None = None
    mode: Literal["full", "minimal"] = "full"
    #: Further data; None: what was found next to CompuMED (ifap, archive, scheduler, DMP).
    extra_sources: list[SourceAnswer] | None = None
    service_kind: Literal["windows", "systemd", "command"] | None = None
    #: Service names in stop order (windows/systemd); None: the standard M1 PRO services.
    services: list[str] | None = None
    #: kind "command": the database's stop/start/is-running commands.
    command_stop: str = ""
    command_start: str = ""
    command_is_running: str = ""
    #: An existing passphrase file to use instead of generating a passphrase.
    passphrase_file: str | None = None
    media_candidates: list[str] | None = None
    daily: list[str] = Field(default_factory=lambda: list(DEFAULT_DAILY))
    biweekly: list[str] = Field(default_factory=list)
    month_end: list[str] = Field(default_factory=list)
    quarter_end: list[str] = Field(default_factory=lambda: list(DEFAULT_QUARTER_END))
    closed: list[str] = Field(default_factory=list)
    #: Media to prepare now: label -> folder (drive root of a USB disk, NAS folder).
    prepare_media: dict[str, str] = Field(default_factory=dict)
    #: Demonstrations only: media on the same disk as the practice data.
    allow_same_disk: bool = False
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_sender: str = ""
    #: Stored in the credential store (or a private file), never in the configuration.
    smtp_password: str = ""
    smtp_ca_file: str | None = None
    send_test_mail: bool = True
    responsible: PersonAnswer = PersonAnswer()
    deputy: PersonAnswer = PersonAnswer()
    owner: PersonAnswer = PersonAnswer()
    service_partner: PersonAnswer = PersonAnswer()
    schedule_at: str = Field(default="22:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    install_schedule: bool = True
    #: Where the catalog and logs live (default: the platform's place).
    state_dir: str | None = None
    #: Accept a rotation plan that breaks a rule, in writing (repeated in every protocol).
    override_reason: str = ""


def load_answers(path: str) -> SetupAnswers:
    """An answer file (TOML); errors name the key."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SetupError(
            f"cannot read the answer file {path}: {exc.strerror}",
            code="error.answers_unreadable",
            path=path,
            error=exc.strerror or str(exc),
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SetupError(
            f"{path}: not valid TOML: {exc} (Windows paths in single quotes: 'C:\\Praxis')",
            code="error.answers_toml",
            path=path,
            error=str(exc),
        ) from None
    try:
        return SetupAnswers.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"'{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors()
        )
        raise SetupError(f"{path}: {problems}") from None


@dataclass
class Detected:
    """What setup found on this server, as proposals for the questions."""

    installation: profiles.Installation | None
    extra_sources: list[SourceAnswer]
    service_kind: str
    services: list[str]
    media_candidates: list[str]


def default_media_candidates() -> list[str]:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        return [f"{d}:\\" for d in "EFGHIJ"]
    return ["/media/*/*", "/mnt/*"]


def detect(answers: SetupAnswers) -> Detected:
    roots = answers.search_roots or profiles.default_roots()
    inst = None
    if answers.compumed:
        # The CompuMED folder itself (as a configured source is), or the folder that holds it.
        given = os.path.abspath(answers.compumed)
        inst = profiles.detect_source(given) or profiles.detect(given)
    else:
        found = profiles.detect_all(roots)
        inst = found[0] if found else None
    extra = []
    if inst is not None:
        extra = [SourceAnswer(label=lbl, path=p) for lbl, p in propose_extra_sources(inst)]
    kind = answers.service_kind or ("windows" if sys.platform == "win32" else "command")
    services = answers.services
    if services is None:
        services = list(DEFAULT_WINDOWS_SERVICES) if kind == "windows" else []
    return Detected(
        inst,
        extra,
        kind,
        services,
        answers.media_candidates or default_media_candidates(),
    )


def propose_extra_sources(inst: profiles.Installation) -> list[tuple[str, str]]:
    """ifap and other application data found next to CompuMED."""
    found = []
    ifap = profiles.resolve_ci(inst.root, ["ifapDB"])
    if ifap:
        found.append(("ifap praxisCENTER", ifap))
    for name, label in (
        ("Praxisarchiv", "CGM PRAXISARCHIV"),
        ("PraxisTimer", "CGM PRAXISTIMER"),
        ("DMP", "CGM DMP"),
    ):
        path = profiles.resolve_ci(inst.root, [name])
        if path and os.path.isdir(path):
            found.append((label, path))
    return found


def database_folder(compumed: str) -> str | None:
    return profiles.resolve_ci(compumed, ["M1", "Orant", "DB_M1", "Database"]) or (
        profiles.resolve_ci(compumed, ["M1", "Orant", "Database"])
    )


def build_config(
    answers: SetupAnswers,
    found: Detected,
    password_file: str | None,
    smtp_password_file: str | None,
) -> Config:
    """The configuration the answers describe (validated like any configuration file)."""
    if not answers.practice_name.strip():
        raise SetupError("the practice's name is required (practice_name / --practice)")
    if found.installation is None:
        where = answers.compumed or ", ".join(answers.search_roots or profiles.default_roots())
        raise SetupError(
            f"no CGM M1 PRO installation (CompuMED\\M1) found in {where}",
            code="error.no_m1_found",
            where=where,
        )
    inst = found.installation
    extra = found.extra_sources if answers.extra_sources is None else answers.extra_sources
    main: dict[str, object] = {"label": "CGM M1 PRO", "path": inst.compumed}
    main |= {"profile": profiles.PROFILE, "mode": answers.mode}
    sources: list[dict[str, object]] = [main]
    sources += [{"label": s.label, "path": s.path} for s in extra]
    db = database_folder(inst.compumed)
    services: list[dict[str, object]] = []
    if found.service_kind == "command":
        if not (answers.command_stop and answers.command_start and answers.command_is_running):
            raise SetupError(
                "the database's stop, start and is-running commands are required for "
                "service kind 'command' (command_stop, command_start, command_is_running)"
            )
        services.append(
            {
                "name": "Datenbank",
                "kind": "command",
                "stop": answers.command_stop,
                "start": answers.command_start,
                "is_running": answers.command_is_running,
            }
            | ({"check_closed": [db]} if db else {})
        )
    else:
        for name in found.services:
            entry: dict[str, object] = {"name": name, "kind": found.service_kind}
            if db and ("oracleservice" in name.lower() or len(found.services) == 1):
                entry["check_closed"] = [db]
            services.append(entry)
    doc: dict[str, object] = {
        "practice": {
            "name": answers.practice_name.strip(),
            "language": answers.language,
            "state": answers.state,
        },
        "repository": {"password_file": password_file} if password_file else {},
        "sources": sources,
        "services": services,
        "media": {
            "candidates": found.media_candidates,
            "allow_same_disk": answers.allow_same_disk,
        },
        "schedule": {"at": answers.schedule_at},
        "rotation": {
            "daily": answers.daily,
            "biweekly": answers.biweekly,
            "month_end": answers.month_end,
            "quarter_end": answers.quarter_end,
            "closed": answers.closed,
            "override_reason": answers.override_reason,
        },
        "notify": _notify(answers, smtp_password_file),
        "contacts": {
            role: {"name": p.name, "phone": p.phone} for role, p in _people(answers).items()
        },
    }
    if answers.state_dir:
        doc["state_dir"] = answers.state_dir
    try:
        config = Config.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise SetupError(f"the answers give no valid configuration: {problems}") from None
    plan_from_config(config)  # a plan that breaks a rotation rule is refused, naming the rule
    return config


def _people(answers: SetupAnswers) -> dict[str, PersonAnswer]:
    return {
        "responsible": answers.responsible,
        "deputy": answers.deputy,
        "owner": answers.owner,
        "service_partner": answers.service_partner,
    }


def _notify(answers: SetupAnswers, smtp_password_file: str | None) -> dict[str, object]:
    recipients = {role: [p.email] if p.email else [] for role, p in _people(answers).items()}
    if not answers.smtp_host:
        return {"recipients": recipients}
    smtp: dict[str, object] = {
        "host": answers.smtp_host,
        "port": answers.smtp_port,
        "security": answers.smtp_security,
        "username": answers.smtp_username,
        "sender": answers.smtp_sender or answers.smtp_username,
    }
    if smtp_password_file:
        smtp["password_file"] = smtp_password_file
    if answers.smtp_ca_file:
        smtp["ca_file"] = answers.smtp_ca_file
    return {"smtp": smtp, "recipients": recipients}


@dataclass
class SetupResult:
    config_path: str
    config: Config
    passphrase: str | None  # newly generated: shown once, never again
    passphrase_stored: str  # where it is kept
    media: list[str] = field(default_factory=list)  # labels prepared
    media_kept: list[str] = field(default_factory=list)  # prepared by an earlier setup
    media_errors: list[str] = field(default_factory=list)
    mail: str = ""  # "sent", "skipped", or the error
    schedule: str = ""
    sheet: str = ""
    readiness: readiness.Readiness | None = None


def answers_from_config(config: Config) -> SetupAnswers:
    """The answers an existing configuration gave: setup run again starts from them, so a
    re-run changes what is asked about and keeps everything else."""
    a = SetupAnswers(
        language=config.practice.language,
        practice_name=config.practice.name,
        state=config.practice.state,
        schedule_at=config.schedule.at,
        state_dir=config.state_dir,
        media_candidates=list(config.media.candidates) or None,
        allow_same_disk=config.media.allow_same_disk,
    )
    profile = [s for s in config.sources if s.profile]
    if profile:
        a.compumed, a.mode = profile[0].path, profile[0].mode
    a.extra_sources = [
        SourceAnswer(label=s.label, path=s.path) for s in config.sources if not s.profile
    ]
    if config.services:
        kinds = {s.kind for s in config.services}
        a.service_kind = config.services[0].kind if len(kinds) == 1 else None
        command = next((s for s in config.services if s.kind == "command"), None)
        if command is not None:
            a.command_stop = command.stop or ""
            a.command_start = command.start or ""
            a.command_is_running = command.is_running or ""
        else:
            a.services = [s.name for s in config.services]
    if config.rotation is not None:
        r = config.rotation
        a.daily, a.biweekly, a.month_end = list(r.daily), list(r.biweekly), list(r.month_end)
        a.quarter_end, a.closed = list(r.quarter_end), list(r.closed)
        a.override_reason = r.override_reason
    if config.repository.password_file:
        a.passphrase_file = config.repository.password_file
    smtp = config.notify.smtp
    if smtp is not None:
        a.smtp_host, a.smtp_port, a.smtp_security = smtp.host, smtp.port, smtp.security
        a.smtp_username, a.smtp_sender, a.smtp_ca_file = smtp.username, smtp.sender, smtp.ca_file
    recipients = config.notify.recipients
    for role in ("responsible", "deputy", "owner", "service_partner"):
        person = getattr(config.contacts, role)
        emails = getattr(recipients, role)
        setattr(
            a,
            role,
            PersonAnswer(name=person.name, phone=person.phone, email=emails[0] if emails else ""),
        )
    return a


def merge_answers(base: SetupAnswers, overlay: SetupAnswers) -> SetupAnswers:
    """``base`` with every answer ``overlay`` gives explicitly (an answer file, flags)."""
    merged = base.model_copy(deep=True)
    for name in overlay.model_fields_set:
        setattr(merged, name, getattr(overlay, name))
    return merged


def apply(
    answers: SetupAnswers,
    output: str,
    schedule_root: str = "/",
    progress: Callable[[str, dict[str, str]], None] = lambda _step, _params: None,
) -> SetupResult:
    """Do everything the answers ask for; returns what was done and the readiness check.
    Nothing is created before the answers are known to make a valid configuration."""
    found = detect(answers)
    folder = Path(output).resolve().parent
    password_file = answers.passphrase_file or str(folder / PASSPHRASE_FILE)
    smtp_file = str(folder / SMTP_PASSWORD_FILE) if answers.smtp_password else None
    config = build_config(answers, found, password_file, smtp_file)  # raises for bad answers
    text = config_toml(config)
    parse_config(text, output)  # what setup writes must read back as the same configuration
    folder.mkdir(parents=True, exist_ok=True)
    passphrase: str | None = None
    if not os.path.exists(password_file):
        # A new installation. Setup run again keeps the passphrase: the media are encrypted
        # with it, and the recovery key is sealed with it.
        passphrase = generate_recovery_key()
        store_secret(password_file, passphrase)
        progress("setup.step.passphrase_new", {"passphrase": passphrase})
    else:
        progress("setup.step.passphrase_kept", {"path": password_file})
    if smtp_file is not None:
        # Not in the configuration: a private file (DPAPI-protected on Windows), which the
        # nightly run can read as SYSTEM/root - unlike a person's credential store.
        store_secret(smtp_file, answers.smtp_password)
    target = Path(output)
    if target.exists():
        backup = target.with_name(f"{target.name}.bak-{datetime.now():%Y%m%d-%H%M%S}")
        shutil.copy2(target, backup)
        progress("setup.step.config_backup", {"path": str(backup)})
    target.write_text(text, encoding="utf-8")
    config = parse_config(text, output)
    private_dir(str(state_dir(config)))
    result = SetupResult(output, config, passphrase, password_file)
    progress("setup.step.config", {"path": output})
    secret = passphrase or read_secret_file(password_file, "passphrase")
    for label, path in answers.prepare_media.items():
        _prepare(config, answers, label, path, secret, result)
    if result.media:
        progress("setup.step.media", {"labels": ", ".join(result.media)})
    result.mail = _test_mail(config, answers)
    if answers.install_schedule:
        try:
            result.schedule = schedule.install(output, answers.schedule_at, schedule_root)
        except (PraxisError, OSError) as exc:
            result.schedule = f"not installed: {exc}"
    sheet = folder / "Notfallblatt.pdf"
    write_private_file(str(sheet), emergency_sheet(config, secret, answers.language))
    result.sheet = str(sheet)
    result.readiness = readiness.check(config, schedule_root)
    return result


def _prepare(
    config: Config,
    answers: SetupAnswers,
    label: str,
    path: str,
    secret: str,
    result: SetupResult,
) -> None:
    """Prepare one medium; one that setup prepared before (same label, same place) counts."""
    existing = read_label(path) if os.path.isdir(path) else None
    if existing is not None and existing.label == label:
        registered = {m.id for m in Register(catalog_path(config)).all()}
        if existing.medium_id in registered:
            result.media_kept.append(label)
            return
    try:
        prepare_medium(config, path, label, secret, allow_same_disk=answers.allow_same_disk)
    except PraxisError as exc:
        result.media_errors.append(f"{label}: {exc}")
    else:
        result.media.append(label)


def _test_mail(config: Config, answers: SetupAnswers) -> str:
    if config.notify.smtp is None or not answers.send_test_mail:
        return "skipped"
    try:
        send_test_message(config)
    except PraxisError as exc:
        return str(exc.params.get("detail") or exc)
    return "sent"
