"""Where the SMTP password comes from: OS keyring, environment, or a private file - never the
command line, logs or protocols; a password written into the config file is accepted with a
warning."""

from __future__ import annotations

import os
import stat

from praxisbackup.errors import PraxisError
from praxisbackup.practice.config import SmtpSection

KEYRING_SERVICE = "praxisbackup-smtp"


class SecretError(PraxisError):
    """The SMTP password cannot be read safely."""


def _from_keyring(username: str) -> str | None:
    try:
        import keyring  # noqa: PLC0415 - optional: not every server has a keyring backend
        from keyring.errors import KeyringError  # noqa: PLC0415
    except ImportError:
        return None
    try:
        value = keyring.get_password(KEYRING_SERVICE, username)
    except (KeyringError, RuntimeError):
        return None
    return value or None


def smtp_password(smtp: SmtpSection) -> tuple[str | None, list[str]]:
    """(password or None, warnings)."""
    warnings: list[str] = []
    if smtp.username:
        value = _from_keyring(smtp.username)
        if value:
            return value, warnings
    env = os.environ.get(smtp.password_env)
    if env:
        return env, warnings
    if smtp.password_file:
        try:
            st = os.stat(smtp.password_file)
        except OSError as exc:
            raise SecretError(
                f"cannot read the SMTP password file {smtp.password_file}: {exc.strerror}"
            ) from None
        if os.name != "nt" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(
                f"the SMTP password file {smtp.password_file} is readable by other users "
                f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {smtp.password_file}"
            )
        try:
            with open(smtp.password_file, encoding="utf-8") as fh:
                return fh.readline().rstrip("\r\n") or None, warnings
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise SecretError(
                f"cannot read the SMTP password file {smtp.password_file}: {why}"
            ) from None
    if smtp.password:
        warnings.append(
            "the SMTP password is written in the configuration file in plain text; "
            "move it to the keyring, an environment variable or a private file"
        )
        return smtp.password, warnings
    return None, warnings
