"""Is this installation ready for a green night? (``praxisbackup config check``)

A configuration can be valid and still unable to produce a green night: no services to stop,
no passphrase the scheduled run can read, no schedule, a rotation plan that breaks its rules,
media the plan names but nobody prepared, missing CGM M1 PRO items, e-mail never tested. Each
check is an :class:`Item` with a message code (German or English through the catalogue);
``ready`` is true only when no item is missing.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from typing import Any

from praxisbackup.app.emergency import current_sheet_facts
from praxisbackup.app.job import SAFETY_MARGIN
from praxisbackup.app.notify import MAIL_TESTED, all_recipients, mail_fingerprint
from praxisbackup.catalog.facts import Facts
from praxisbackup.catalog.runs import Catalog
from praxisbackup.credentials import repository_passphrase, smtp_password
from praxisbackup.engine.repository import Repository
from praxisbackup.errors import PraxisError, WrongPasswordError
from praxisbackup.media import label as media
from praxisbackup.media.register import Register
from praxisbackup.media.rotation import RotationRuleError
from praxisbackup.media.selection import plan_from_config
from praxisbackup.model.config import Config
from praxisbackup.model.locations import catalog_path, state_dir
from praxisbackup.platform import schedule
from praxisbackup.practice import profiles, recovery
from praxisbackup.report.units import human_size
from praxisbackup.services import ServiceError, make_service
from praxisbackup.services.windows import WindowsService
from praxisbackup.storage import LocalBackend

OK, NOTE, MISSING = "ok", "note", "missing"

#: The Windows service that runs ``praxisbackup serve`` (registered by the installer).
WINDOWS_SERVICE = "praxisbackup"


@dataclass
class Item:
    level: str  # ok | note | missing
    code: str  # message code "ready.<...>"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Readiness:
    items: list[Item] = field(default_factory=list)

    def add(self, level: str, code: str, **params: Any) -> None:
        self.items.append(Item(level, code, params))

    @property
    def ready(self) -> bool:
        return all(i.level != MISSING for i in self.items)

    @property
    def exit_code(self) -> int:
        """0 ready, 1 ready with notes, 2 not ready (a night would not be green)."""
        if not self.ready:
            return 2
        return 1 if any(i.level == NOTE for i in self.items) else 0


def check(config: Config, schedule_root: str = "/") -> Readiness:
    r = Readiness()
    _sources(config, r)
    _services(config, r)
    passphrase = _passphrase(config, r)
    _schedule(config, r, schedule_root)
    _rotation_and_media(config, r, passphrase)
    _mail(config, r)
    _people(config, r)
    _state(config, r)
    return r


def _sources(config: Config, r: Readiness) -> None:
    for src in config.sources:
        problem = profiles.source_problem(src.path)
        if problem is not None:
            code, params = problem
            r.add(MISSING, f"ready.{code}", label=src.label, path=src.path, **params)
            continue
        if src.profile != profiles.PROFILE:
            r.add(OK, "ready.source", label=src.label, path=src.path)
            continue
        inst = profiles.detect_source(src.path)
        if inst is None:
            r.add(MISSING, "ready.m1_not_found", path=src.path)
            continue
        result = profiles.check_installation(inst, [s.path for s in config.sources])
        for item in result.missing_required:
            r.add(MISSING, "ready.m1_item_missing", item=item)
        for item in result.not_covered:
            r.add(MISSING, "ready.m1_item_not_covered", item=item)
        if result.ok:
            r.add(OK, "ready.m1_ok", variant=inst.variant, count=len(result.present))


def _services(config: Config, r: Readiness) -> None:
    if not config.services:
        r.add(MISSING, "ready.no_services")
        return
    names = ", ".join(s.name for s in config.services)
    usable = True
    for svc in config.services:
        # Asking for the state changes nothing and proves the service can be controlled here.
        try:
            make_service(svc).is_running()
        except (ServiceError, OSError) as exc:
            r.add(MISSING, "ready.service_unusable", service=svc.name, error=str(exc))
            usable = False
    if usable:
        r.add(OK, "ready.services", names=names)
    if not any(s.check_closed for s in config.services):
        r.add(NOTE, "ready.no_check_closed")


def _passphrase(config: Config, r: Readiness) -> str | None:
    try:
        secret = repository_passphrase(config)  # as the scheduled run reads it: no prompt
    except PraxisError as exc:
        r.add(MISSING, "ready.no_passphrase", error=str(exc))
        return None
    r.add(OK, "ready.passphrase")
    return secret


def _schedule(config: Config, r: Readiness, root: str) -> None:
    how = None
    if sys.platform == "win32" and _windows_service_exists():  # pragma: no cover
        # The installer's way (asked through the SCM API): no scheduler command to wait for.
        how = f"Windows service '{WINDOWS_SERVICE}' (praxisbackup serve)"
    if how is None:
        try:
            how = schedule.installed(root, config.path)
        except PraxisError as exc:
            r.add(MISSING, "ready.schedule_unknown", error=str(exc), at=config.schedule.at)
            return
    if how is None:
        r.add(MISSING, "ready.no_schedule", at=config.schedule.at)
    else:
        r.add(OK, "ready.schedule", how=how, at=config.schedule.at)


def _windows_service_exists() -> bool:  # pragma: no cover - Windows only
    try:
        WindowsService(WINDOWS_SERVICE).is_running()
    except ServiceError:
        return False
    return True


def _rotation_and_media(config: Config, r: Readiness, passphrase: str | None) -> None:
    register = Register(catalog_path(config))
    known = {m.label for m in register.all() if m.location != "retired"}
    try:
        plan = plan_from_config(config)
    except RotationRuleError as exc:
        r.add(MISSING, "ready.rotation_broken", error=str(exc))
        return
    if plan is None:
        if not known:
            r.add(MISSING, "ready.no_media")
        else:
            r.add(NOTE, "ready.no_rotation", media=", ".join(sorted(known)))
    else:
        if plan.overridden:
            r.add(NOTE, "ready.rotation_override", reason=plan.s.override_reason)
        wanted = [*plan.s.daily, *plan.s.biweekly, *plan.s.month_end, *plan.s.quarter_end]
        missing = [label for label in wanted if label not in known]
        if missing:
            r.add(MISSING, "ready.media_unregistered", labels=", ".join(missing))
        else:
            r.add(OK, "ready.media", count=len(wanted))
    if config.media.allow_same_disk:
        r.add(NOTE, "ready.same_disk_allowed")
    if not config.media.candidates:
        r.add(MISSING, "ready.no_candidates")
        return
    found, problems = media.discover(config.media.candidates)
    for problem in problems:
        r.add(NOTE, "ready.medium_problem", problem=problem)
    if not found:
        r.add(NOTE, "ready.none_attached", places=", ".join(config.media.candidates))
        return
    labels = ", ".join(m.label.label for m in found)
    r.add(
        OK if len(found) == 1 else NOTE,
        "ready.attached" if len(found) == 1 else "ready.several_attached",
        labels=labels,
    )
    catalog = Catalog(catalog_path(config))
    needed = int(catalog.last_new_bytes() * config.media.free_space_factor) + SAFETY_MARGIN
    for m in found:
        if passphrase is not None:
            try:
                Repository.open(LocalBackend(m.repository_path), passphrase).close()
            except WrongPasswordError:
                r.add(MISSING, "ready.passphrase_wrong", label=m.label.label)
            except PraxisError as exc:
                r.add(MISSING, "ready.medium_unreadable", label=m.label.label, error=str(exc))
        free = shutil.disk_usage(m.root).free
        if free < needed:
            r.add(
                MISSING,
                "ready.medium_small",
                label=m.label.label,
                free=human_size(free),
                needed=human_size(needed),
            )


def _mail(config: Config, r: Readiness) -> None:
    smtp = config.notify.smtp
    if smtp is None:
        r.add(MISSING, "ready.no_smtp")
        return
    try:
        password, warnings = smtp_password(smtp)
    except PraxisError as exc:
        r.add(MISSING, "ready.smtp_password", error=str(exc))
        return
    for w in warnings:
        r.add(NOTE, "ready.smtp_warning", warning=w)
    if smtp.username and not password:
        r.add(MISSING, "ready.smtp_no_password", user=smtp.username)
    recipients = config.notify.recipients
    if not recipients.responsible:
        r.add(MISSING, "ready.no_responsible_mail")
    if not recipients.service_partner:
        r.add(MISSING, "ready.no_partner_mail")
    if not recipients.deputy:
        r.add(NOTE, "ready.no_deputy_mail")
    tested = Facts(catalog_path(config)).get(MAIL_TESTED)
    if tested is None or tested[0] != mail_fingerprint(config):
        r.add(MISSING, "ready.mail_untested", recipients=", ".join(all_recipients(config)))
    else:
        r.add(OK, "ready.mail_tested", time=tested[1])


def _people(config: Config, r: Readiness) -> None:
    c = config.contacts
    for role in ("responsible", "deputy"):
        person = getattr(c, role)
        if not person.name:
            r.add(MISSING, f"ready.no_{role}")
    if not c.service_partner.phone:
        r.add(NOTE, "ready.no_partner_phone")


def _state(config: Config, r: Readiness) -> None:
    sdir = str(state_dir(config))
    facts = current_sheet_facts(config, Register(catalog_path(config)))
    sheet = recovery.sheet_state(sdir, facts)
    if sheet != "current":
        r.add(NOTE, "ready.sheet", state=sheet)
