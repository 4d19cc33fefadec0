"""Where secrets come from: the repository passphrase and the SMTP password.

One resolver per secret, used by every interface (command line, web page, the nightly job), so
that a passphrase that works for ``run`` also works for ``find`` and ``restore-practice``.
Secrets never come from the command line itself (other users could read them in the process
list); they come from an environment variable, a private file, or the operating system's
credential store (Windows Credential Manager, macOS Keychain, Secret Service on Linux).
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from praxisbackup import platform
from praxisbackup.errors import PraxisError, UsageError, WrongPasswordError
from praxisbackup.platform.private import write_private_file

if TYPE_CHECKING:  # only in annotations: the configuration model (pydantic) loads slowly
    from praxisbackup.model.config import Config, SmtpSection

#: Credential-store entries: (service, user).
REPOSITORY_CREDENTIAL = ("praxisbackup", "repository")
SMTP_SERVICE = "praxisbackup-smtp"

ENV_PASSWORD = "PRAXISBACKUP_PASSWORD"
ENV_PASSWORD_FILE = "PRAXISBACKUP_PASSWORD_FILE"


class SecretError(PraxisError):
    """A secret exists but cannot be read safely."""


def keyring_get(service: str, user: str) -> str | None:
    """The stored secret, or None when there is none or no usable credential store."""
    try:
        import keyring  # noqa: PLC0415 - imported only when a secret is needed
        from keyring.errors import KeyringError  # noqa: PLC0415
    except ImportError:
        return None
    try:
        value = keyring.get_password(service, user)
    except (KeyringError, RuntimeError, OSError):
        return None
    return value or None


def keyring_set(service: str, user: str, value: str) -> None:
    """Store a secret in the OS credential store; a clear error when there is none."""
    try:
        import keyring  # noqa: PLC0415
        from keyring.errors import KeyringError  # noqa: PLC0415
    except ImportError:
        raise SecretError("no credential store is available (package keyring missing)") from None
    try:
        keyring.set_password(service, user, value)
    except (KeyringError, RuntimeError, OSError) as exc:
        raise SecretError(f"the credential store refused the secret: {exc}") from None


#: A secret file written by :func:`store_secret` on Windows: DPAPI-protected for the machine.
DPAPI_PREFIX = "dpapi:"


def read_secret_file(
    path: str, what: str, private: bool = False, regular_only: bool = False
) -> str:
    """First line of a file, without the line break; it must be text and not empty. A line
    written by :func:`store_secret` on Windows is decrypted with the machine's DPAPI key.
    ``private``: on POSIX the file must not be readable by other users (a secret others can
    read is no secret; say how to fix it rather than use it). ``regular_only``: only a
    regular file is read - never a pipe, which could be read only once (``<(echo ...)``) or
    would wait for a writer."""
    try:
        # (looked at before it is opened: opening a FIFO would take a waiting writer's line)
        if regular_only and not stat.S_ISREG(os.stat(path).st_mode):
            raise UsageError(f"the {what} file {path} is not a regular file")
        with open(path, encoding="utf-8", opener=_nonblocking if regular_only else None) as fh:
            if regular_only and not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise UsageError(f"the {what} file {path} is not a regular file")
            if private and os.name != "nt":
                mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
                if mode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise SecretError(
                        f"the {what} file {path} is readable by other users (mode {mode:o}); "
                        f"run: chmod 600 {path}",
                        code="error.secret_readable",
                        path=path,
                        mode=f"{mode:o}",
                    )
            line = fh.readline()
    except UnicodeDecodeError:
        raise UsageError(f"the {what} file {path} is not a text file (UTF-8)") from None
    except PermissionError:
        raise SecretError(
            f"no right to read the {what} file {path}",
            code="error.no_rights",
            detail=path,
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None
    value = line.rstrip("\r\n")
    if value.startswith(DPAPI_PREFIX):
        try:
            raw = platform.unprotect_secret(base64.b64decode(value[len(DPAPI_PREFIX) :]))
            value = raw.decode("utf-8")
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"the {what} file {path} cannot be decrypted on this machine ({exc}); it was "
                "written on another computer or is damaged"
            ) from None
    if not value:
        raise UsageError(f"the {what} file {path} is empty")
    return value


def store_secret(path: str, value: str) -> None:
    """Write a secret so that only the nightly run and administrators can read it: mode 0600
    on POSIX; on Windows an SYSTEM/Administrators-only file, DPAPI-encrypted for this machine
    (so a copy of the file, e.g. in a file backup, is useless elsewhere)."""
    data = value.encode("utf-8")
    if platform.IS_WINDOWS:  # pragma: no cover - Windows only (tested in the Windows lane)
        data = (DPAPI_PREFIX + base64.b64encode(platform.protect_secret(data)).decode()).encode()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_private_file(path, data + b"\n")


def _nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def given_passphrase(
    env_name: str = ENV_PASSWORD, password_file: str | None = None, regular_only: bool = False
) -> str | None:
    """The passphrase given to this one command, if any: in the environment (``env_name`` or
    ``PRAXISBACKUP_PASSWORD``) or in an explicit file (``--password-file`` or
    ``PRAXISBACKUP_PASSWORD_FILE``; with ``regular_only`` a regular file only, see
    :func:`read_secret_file`)."""
    for name in dict.fromkeys((env_name, ENV_PASSWORD)):
        value = os.environ.get(name)
        if value:
            return value
    explicit = password_file or os.environ.get(ENV_PASSWORD_FILE)
    if explicit:
        return read_secret_file(explicit, "passphrase", regular_only=regular_only)
    return None


def repository_passphrase(
    config: Config | None = None,
    password_file: str | None = None,
    prompt: Callable[[], str] | None = None,
) -> str:
    """The repository passphrase, from the first source that has one:

    1. the environment variable the configuration names (default ``PRAXISBACKUP_PASSWORD``);
    2. an explicit file (``--password-file`` or ``PRAXISBACKUP_PASSWORD_FILE``);
    3. the configured ``repository.password_file``;
    4. the OS credential store (where ``setup`` puts it);
    5. ``prompt`` - given by an interface only when a person is at a console.

    Without any, a clear error at once: a scheduled run must never wait for a prompt.
    """
    env_name = config.repository.password_env if config is not None else ENV_PASSWORD
    given = given_passphrase(env_name, password_file)
    if given is not None:
        return given
    if config is not None and config.repository.password_file:
        try:
            return read_secret_file(config.repository.password_file, "passphrase", private=True)
        except UsageError as exc:
            raise WrongPasswordError(str(exc)) from None
    stored = keyring_get(*REPOSITORY_CREDENTIAL)
    if stored:
        return stored
    if prompt is not None:
        return prompt()
    raise WrongPasswordError(
        f"no repository passphrase: set {env_name}, use --password-file, set "
        "repository.password_file in the configuration, store it with 'praxisbackup setup', "
        "or run the command at a console to type it",
        code="error.no_passphrase",
    )


def smtp_password(smtp: SmtpSection) -> tuple[str | None, list[str]]:
    """(password or None, warnings): credential store, environment, private file, and - with
    a warning - a password written into the configuration file."""
    warnings: list[str] = []
    if smtp.username:
        value = keyring_get(SMTP_SERVICE, smtp.username)
        if value:
            return value, warnings
    env = os.environ.get(smtp.password_env)
    if env:
        return env, warnings
    if smtp.password_file:
        try:
            return read_secret_file(smtp.password_file, "SMTP password", private=True), warnings
        except UsageError as exc:
            raise SecretError(str(exc)) from None
    if smtp.password:
        warnings.append(
            "the SMTP password is written in the configuration file in plain text; "
            "move it to the keyring, an environment variable or a private file"
        )
        return smtp.password, warnings
    return None, warnings
