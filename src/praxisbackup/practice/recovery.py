"""The practice's recovery key: one random key that opens every medium of the practice.

It is created once, kept on the server only sealed under the daily passphrase
(``<state>/recovery-key.sealed``), added as a key slot to every medium (at ``emergency-sheet``
and by the nightly job for media that lack it), and printed on the emergency sheet.
Regenerating the sheet reads it back; it never changes keys.
"""

from __future__ import annotations

import os

from praxisbackup.engine import crypto
from praxisbackup.engine.repository import Repository
from praxisbackup.errors import PraxisError, StorageError, WrongPasswordError
from praxisbackup.platform.private import open_private, private_dir

MARKER = "recovery-slot"


def _path(state_dir: str) -> str:
    return os.path.join(state_dir, "recovery-key.sealed")


def load(state_dir: str, passphrase: str) -> str | None:
    try:
        with open(_path(state_dir), "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None
    value = crypto.open_secret(passphrase, raw)
    if value is None:
        raise WrongPasswordError("the daily passphrase does not open the stored recovery key")
    return value


def load_or_create(state_dir: str, passphrase: str) -> str:
    existing = load(state_dir, passphrase)
    if existing is not None:
        return existing
    key = crypto.generate_recovery_key()
    private_dir(state_dir)
    tmp = _path(state_dir) + ".tmp"
    with open_private(tmp, "wb") as fh:
        fh.write(crypto.seal_secret(passphrase, key))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, _path(state_dir))
    return key


def _has_marker(repo: Repository) -> bool:
    try:
        repo.read_meta(MARKER)
    except (StorageError, PraxisError):
        return False
    return True


def ensure_slot(repo: Repository, recovery_key: str) -> bool:
    """Add the recovery key to a repository unless it already has it; True if added."""
    if _has_marker(repo):
        return False
    try:
        Repository.open(repo.backend, recovery_key)
    except WrongPasswordError:
        repo.add_key(recovery_key, "recovery key")
    repo.write_meta(MARKER, b"1")
    return True


def sheet_facts(media: list[tuple[str, str, str]], services: list[str]) -> str:
    """A fingerprint of what the emergency sheet states (media, services)."""
    import hashlib  # noqa: PLC0415

    text = repr((sorted(media), list(services)))
    return hashlib.sha256(text.encode()).hexdigest()


def _facts_path(state_dir: str) -> str:
    return os.path.join(state_dir, "emergency-sheet.facts")


def remember_sheet(state_dir: str, facts: str) -> None:
    with open(_facts_path(state_dir), "w", encoding="ascii") as fh:
        fh.write(facts)


def sheet_state(state_dir: str, facts: str) -> str:
    """ "current", "outdated" or "missing"."""
    try:
        with open(_facts_path(state_dir), encoding="ascii") as fh:
            return "current" if fh.read().strip() == facts else "outdated"
    except FileNotFoundError:
        return "missing"
