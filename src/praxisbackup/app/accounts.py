"""Accounts of the status page, the login throttle, and the record of every change made
through the page.

Why here (the application layer) and not in the web interface: the service partner manages
accounts with the command line (``praxisbackup web user add NAME``) and the page checks them,
so both call these functions. Passwords are kept only as Argon2id hashes (argon2-cffi, its
recommended parameters; a hash made with older parameters is renewed at the next login).

The throttle counts failed logins per account name and per client address in the catalog, so
restarting the service does not reset it: after ``MAX_FAILURES`` failures within ``WINDOW``
further attempts are refused until the window has passed, even with the right password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from praxisbackup.catalog.store import SqliteStore
from praxisbackup.errors import PraxisError, UsageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_accounts (
    name TEXT PRIMARY KEY, full_name TEXT NOT NULL, hash TEXT NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_login_failures (key TEXT NOT NULL, time TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS web_login_failures_key ON web_login_failures(key, time);
CREATE TABLE IF NOT EXISTS web_changes (
    time TEXT NOT NULL, account TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL
);
"""

#: Failed logins (per name and per address) before further attempts are refused ...
MAX_FAILURES = 5
#: ... for the rest of this window.
WINDOW = timedelta(minutes=15)
MIN_PASSWORD = 10
NAME = re.compile(r"^[A-Za-z0-9._-]{1,40}$")

_hasher = PasswordHasher()


class AccountError(PraxisError):
    """An account cannot be created, changed or found."""


@dataclass(frozen=True)
class Account:
    name: str
    full_name: str
    created: str

    @property
    def shown(self) -> str:
        """How the page names the person: the full name if one was given."""
        return self.full_name or self.name


def _now() -> datetime:
    return datetime.now().astimezone()


def check_password(password: str) -> None:
    """Refuse passwords a practice should not use for a page with patients' backup status."""
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"the password needs at least {MIN_PASSWORD} characters")


class Accounts(SqliteStore):
    SCHEMA = SCHEMA

    # -- accounts ---------------------------------------------------------------------------
    def add(
        self, name: str, password: str, full_name: str = "", now: datetime | None = None
    ) -> Account:
        if not NAME.match(name):
            raise UsageError(
                "an account name has 1 to 40 letters, digits, '.', '_' or '-' (no spaces)"
            )
        check_password(password)
        created = (now or _now()).isoformat(timespec="seconds")
        with self._db() as db:
            if db.execute("SELECT 1 FROM web_accounts WHERE name=?", (name,)).fetchone():
                raise AccountError(f"the account {name!r} exists already")
            db.execute(
                "INSERT INTO web_accounts VALUES (?,?,?,?)",
                (name, full_name, _hasher.hash(password), created),
            )
        return Account(name, full_name, created)

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        with self._db() as db:
            changed = db.execute(
                "UPDATE web_accounts SET hash=? WHERE name=?", (_hasher.hash(password), name)
            ).rowcount
        if not changed:
            raise AccountError(f"no account {name!r}")

    def remove(self, name: str) -> None:
        with self._db() as db:
            if not db.execute("DELETE FROM web_accounts WHERE name=?", (name,)).rowcount:
                raise AccountError(f"no account {name!r}")

    def all(self) -> list[Account]:
        with self._db() as db:
            rows = db.execute(
                "SELECT name, full_name, created FROM web_accounts ORDER BY name"
            ).fetchall()
        return [Account(*r) for r in rows]

    def get(self, name: str) -> Account | None:
        return next((a for a in self.all() if a.name == name), None)

    def verify(self, name: str, password: str) -> Account | None:
        """The account if ``password`` is its password, else None (same answer for an
        unknown name, which is hashed against too, so timing does not tell names apart)."""
        with self._db() as db:
            row = db.execute(
                "SELECT name, full_name, created, hash FROM web_accounts WHERE name=?", (name,)
            ).fetchone()
        stored = row[3] if row else _dummy_hash()
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if _hasher.check_needs_rehash(stored):
            with self._db() as db:
                db.execute(
                    "UPDATE web_accounts SET hash=? WHERE name=?", (_hasher.hash(password), name)
                )
        return Account(row[0], row[1], row[2])

    # -- the login throttle -------------------------------------------------------------------
    def login_blocked(self, name: str, address: str, now: datetime | None = None) -> bool:
        """Too many recent failures for this name or from this address."""
        since = ((now or _now()) - WINDOW).isoformat()
        with self._db() as db:
            for key in (f"name:{name.casefold()}", f"addr:{address}"):
                (count,) = db.execute(
                    "SELECT COUNT(*) FROM web_login_failures WHERE key=? AND time>=?",
                    (key, since),
                ).fetchone()
                if count >= MAX_FAILURES:
                    return True
        return False

    def login_failed(self, name: str, address: str, now: datetime | None = None) -> None:
        moment = now or _now()
        with self._db() as db:
            db.executemany(
                "INSERT INTO web_login_failures VALUES (?,?)",
                [
                    (f"name:{name.casefold()}", moment.isoformat()),
                    (f"addr:{address}", moment.isoformat()),
                ],
            )
            db.execute(
                "DELETE FROM web_login_failures WHERE time < ?", ((moment - WINDOW).isoformat(),)
            )

    def login_succeeded(self, name: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM web_login_failures WHERE key=?", (f"name:{name.casefold()}",))

    # -- changes made through the page ----------------------------------------------------------
    def record_change(
        self, account: str, action: str, detail: str, now: datetime | None = None
    ) -> None:
        """Who changed what through the page (evidence: every change with its account)."""
        with self._db() as db:
            db.execute(
                "INSERT INTO web_changes VALUES (?,?,?,?)",
                ((now or _now()).isoformat(timespec="seconds"), account, action, detail),
            )

    def changes(self) -> list[dict[str, str]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT time, account, action, detail FROM web_changes ORDER BY time"
            ).fetchall()
        return [dict(zip(("time", "account", "action", "detail"), r, strict=True)) for r in rows]


@cache
def _dummy_hash() -> str:
    """Verified against when a name is unknown, so a wrong name costs as long as a wrong
    password (made on first use: hashing takes a noticeable moment)."""
    return _hasher.hash("praxisbackup: no such account")
