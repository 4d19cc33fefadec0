"""Sessions of the status page: a random token in an HttpOnly, SameSite=Strict cookie, the
account that logged in with it, and the CSRF token every form of that session carries.

Why kept in memory: a restart of the service only asks people to log in again, and nothing
secret is ever written to disk. Every visitor gets a session (also without login), so every
form - the confirmation on the practice server itself included - has a CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from praxisbackup.app.accounts import Account

COOKIE = "pb_session"
#: At most this many sessions are kept; the least recently used go first.
MAX_SESSIONS = 500


@dataclass
class Session:
    token: str
    csrf: str
    account: Account | None = None
    last_seen: float = field(default_factory=time.monotonic)

    def csrf_ok(self, submitted: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), submitted.encode())


class Sessions:
    def __init__(self, minutes: int) -> None:
        self.lifetime = minutes * 60.0
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (touched), or None when unknown or expired."""
        if not token:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if now - session.last_seen > self.lifetime:
                del self._by_token[token]
                return None
            session.last_seen = now
            return session

    def new(self, account: Account | None = None) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), account)
        with self._lock:
            now = time.monotonic()
            for token, old in list(self._by_token.items()):
                if now - old.last_seen > self.lifetime:
                    del self._by_token[token]
            while len(self._by_token) >= MAX_SESSIONS:
                oldest = min(self._by_token.values(), key=lambda s: s.last_seen)
                del self._by_token[oldest.token]
            self._by_token[session.token] = session
        return session

    def drop(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)
