"""Deriving the repository key while the command's modules load.

Opening a repository costs one scrypt derivation (about 0.35 s, by design) and a command's
modules take 0.15-0.3 s to load (the latter from a cold disk). They need not wait for each
other: scrypt releases the interpreter lock. So before anything else is loaded, ``main`` looks
at the command line for the repository and the passphrase *given to this command* (the
environment or an explicit file - never the credential store, never a prompt) and, on a
thread, reads the key slots and starts the derivation of the one that opening tries first
(:meth:`Repository.derive_ahead`). Opening takes that result; if the command opens nothing,
or with another passphrase, the result is not used.

Everything here may fail without consequence: the command opens the repository itself and
reports every problem there, in its own words.
"""

from __future__ import annotations

import os
import sys
import threading

from praxisbackup.engine import crypto

#: The command-line options whose value is the repository, and the passphrase file.
_REPO_OPTIONS = ("-r", "--repo")
_PASSWORD_FILE_OPTIONS = ("--password-file",)
ENV_REPOSITORY = "PRAXISBACKUP_REPOSITORY"


def option_value(args: list[str], names: tuple[str, ...]) -> str | None:
    """The value of the last of the options ``names`` on a command line (``-r X``,
    ``--repo X``, ``--repo=X``, ``-rX``), up to a ``--``."""
    value = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        for name in names:
            if arg == name and i + 1 < len(args):
                value = args[i + 1]
            elif name.startswith("--") and arg.startswith(name + "="):
                value = arg[len(name) + 1 :]
            elif not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
                value = arg[len(name) :]
    return value


def start(args: list[str]) -> None:
    """Start deriving the key for the repository this command line names, if it names one
    (option or environment) and the passphrase was given to the command."""
    location = option_value(args, _REPO_OPTIONS) or os.environ.get(ENV_REPOSITORY)
    if not location:
        return
    password_file = option_value(args, _PASSWORD_FILE_OPTIONS)
    crypto.expect_ahead()
    try:
        threading.Thread(
            target=_derive_ahead, args=(location, password_file), daemon=True, name="key-ahead"
        ).start()
    except RuntimeError:  # (no thread can be started: the command derives as usual)
        crypto.ahead_settled()


def main() -> None:
    """The ``praxisbackup`` program (its console script): the derivation starts, then the
    command line loads."""
    start(sys.argv[1:])
    from praxisbackup.cli.main import main as run  # noqa: PLC0415 - after the start

    run()


#: Why the last derivation ahead was not started (for a developer; the command reports the
#: problem itself when it opens the repository).
not_started: BaseException | None = None


def _derive_ahead(location: str, password_file: str | None) -> None:
    global not_started  # noqa: PLW0603 - one command per process
    try:
        from praxisbackup.credentials import given_passphrase  # noqa: PLC0415 - on this thread
        from praxisbackup.engine.repository import Repository  # noqa: PLC0415
        from praxisbackup.storage import open_backend  # noqa: PLC0415

        passphrase = given_passphrase(password_file=password_file)
        if passphrase is not None:
            Repository.derive_ahead(open_backend(location), passphrase)
    except Exception as exc:  # noqa: BLE001 - see the module docstring: opening reports it
        not_started = exc
    finally:
        crypto.ahead_settled()
