"""The emergency sheet (Notfallblatt): the practice's recovery key with the steps to restore on
a new server, printed once and kept in the safe. Making it also gives every attached medium a
key slot for the recovery key, and remembers what the sheet says so the nightly run can tell
when media or services changed and the sheet must be printed again."""

from __future__ import annotations

from datetime import datetime

from praxisbackup.engine.repository import Repository
from praxisbackup.errors import WrongPasswordError
from praxisbackup.media import label as media
from praxisbackup.media.register import Register
from praxisbackup.model.config import Config
from praxisbackup.model.locations import catalog_path, state_dir
from praxisbackup.practice import profiles, recovery
from praxisbackup.report.sheet import SheetContent, SheetMedium, contacts_of, emergency_sheet_pdf
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
        try:
            repo = Repository.open(LocalBackend(m.repository_path), passphrase)
        except WrongPasswordError:
            continue  # another installation's medium: not ours to give the practice's key
        recovery.ensure_slot(repo, key)
        repo.close()
    register = Register(catalog_path(config))
    content = SheetContent(
        practice=config.practice.name,
        key=key,
        created=datetime.now(),
        media=[
            SheetMedium(r.label, r.role, r.location, r.repository_id)
            for r in register.all()
            if r.location != "retired"
        ],
        services=[(s.name, s.kind) for s in config.services],
        items=[
            "\\" + i.path.replace("/", "\\")
            for i in profiles.essential_items(profiles.VARIANT_U9, True)
            if i.required
        ],
        contacts=contacts_of(config),
    )
    pdf = emergency_sheet_pdf(content, language)
    recovery.remember_sheet(sdir, current_sheet_facts(config, register))
    return pdf
