"""The emergency sheet (Notfallblatt): the practice's recovery key with the steps to restore on
a new server, printed once and kept in the safe. Making it also gives every attached medium a
key slot for the recovery key, and remembers what the sheet says so the nightly run can tell
when media or services changed and the sheet must be printed again."""

from __future__ import annotations

from datetime import datetime

import segno

from praxisbackup.engine.repository import Repository
from praxisbackup.media import label as media
from praxisbackup.media.register import Register
from praxisbackup.model.config import Config
from praxisbackup.model.locations import catalog_path, state_dir
from praxisbackup.practice import profiles, recovery
from praxisbackup.report.i18n import lines as text_lines
from praxisbackup.report.i18n import text
from praxisbackup.report.render import lines_pdf
from praxisbackup.storage import LocalBackend


def current_sheet_facts(config: Config, register: Register) -> str:
    """What the printed sheet depends on: the media in service and the services."""
    return recovery.sheet_facts(
        [(r.id, r.label, r.role) for r in register.all() if r.location != "retired"],
        [s.name for s in config.services],
    )


def emergency_sheet(config: Config, passphrase: str, lang: str | None = None) -> bytes:
    """The sheet as PDF; creates the recovery key on first use and adds it to attached media."""
    language = lang or config.practice.language
    sdir = str(state_dir(config))
    key = recovery.load_or_create(sdir, passphrase)
    found, _problems = media.discover(config.media.candidates)
    for m in found:
        repo = Repository.open(LocalBackend(m.repository_path), passphrase)
        recovery.ensure_slot(repo, key)
        repo.close()
    register = Register(catalog_path(config))

    def t(code: str, **params: object) -> str:
        return text(code, language, **params)

    lines = [
        f"{t('sheet.title')} - {config.practice.name}",
        t("sheet.created", date=f"{datetime.now():%d.%m.%Y %H:%M}"),
        "",
        t("sheet.key"),
        f"    {key}",
        "",
        t("sheet.media"),
        *(
            f"    {r.label:<12} {r.role:<12} {r.location:<10} repository {r.repository_id}"
            for r in register.all()
        ),
        "",
        t("sheet.services"),
        *(f"    {s.name} ({s.kind})" for s in config.services),
        "",
        t("sheet.items"),
        *(
            f"    \\{i.path.replace('/', chr(92))}"
            for i in profiles.essential_items(profiles.VARIANT_U9, True)
            if i.required
        ),
        "",
        t("sheet.steps"),
        *text_lines("sheet.steps.body", language),
        "",
        t("sheet.contacts"),
        *(
            f"    {role}: {', '.join(addrs)}"
            for role, addrs in config.notify.recipients.model_dump().items()
            if addrs
        ),
    ]
    pdf = lines_pdf(lines, qr=segno.make(key, error="m"))
    recovery.remember_sheet(sdir, current_sheet_facts(config, register))
    return pdf
