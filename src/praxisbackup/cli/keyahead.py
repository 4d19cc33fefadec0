"""Deriving the repository key while the command's modules load.

Opening a repository costs one scrypt derivation (about 0.35 s, by design) and a command's
modules take 0.15-0.3 s to load (the latter from a cold disk). They need not wait for each
other: scrypt releases the interpreter lock. So before anything else is loaded, ``main`` looks
at the command line for the repository and the passphrase *given to this command* (the
environment or a regular file - never a pipe, the credential store or a prompt) and, on a
thread, reads the key slots and starts the derivation of the one that opening tries first
(:meth:`Repository.derive_ahead`). Opening takes that result; if the command opens nothing,
or with another passphrase, the result is not used.

Everything here may fail without consequence: the command opens the repository itself and
reports every problem there, in its own words.

Stop requests (Ctrl-C, SIGTERM, SIGHUP) that arrive while the modules load are held until
the command's own handling is in place (:func:`hold_stops`, :func:`held_stop`): an
interruption raised in the middle of an import, while the derivation's thread imported too,
left Python's import locks broken and the process hanging (found by an outsider); before, a
stop in that half second also gave a traceback or a silent death instead of "abgebrochen".
"""

from __future__ import annotations

import os
import signal
import sys
import threading

#: The command-line options whose value is the repository, and the passphrase file.
_REPO_OPTIONS = ("-r", "--repo")
_PASSWORD_FILE_OPTIONS = ("--password-file",)
#: The command line's own options that take a value (cli/main.py's group: ``-r``, ``-c``,
#: ``--password-file``); its short options without one, which may be combined with those with
#: one (``-qr PATH``), and those with one.
VALUE_OPTIONS = frozenset({"-r", "--repo", "--password-file", "-c", "--config"})
_SHORT_FLAGS = frozenset("qh")
_SHORT_VALUES = frozenset("rc")
ENV_REPOSITORY = "PRAXISBACKUP_REPOSITORY"
#: Commands that open no existing repository.
_NO_OPENING = frozenset({"init"})
_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

#: The first stop request that arrived while the command loaded, if any.
_held: int | None = None
#: Set when the derivation's thread has loaded what it needs (or is not started).
_loaded = threading.Event()
_loaded.set()


def option_value(args: list[str], names: tuple[str, ...]) -> str | None:
    """The value of the last of the options ``names`` on a command line (``-r X``,
    ``--repo X``, ``--repo=X``, ``-rX``, ``-qr X``), up to a ``--``."""
    value = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        following = args[i + 1] if i + 1 < len(args) else None
        for name in names:
            if name.startswith("--"):
                if arg == name and following is not None:
                    value = following
                elif arg.startswith(name + "="):
                    value = arg[len(name) + 1 :]
            elif arg.startswith("-") and not arg.startswith("--"):
                found = _short_value(arg, name[1], following)
                if found is not None:
                    value = found
    return value


def _short_value(arg: str, letter: str, following: str | None) -> str | None:
    """The value of short option ``letter`` in ``arg`` (``-r X``, ``-rX``, ``-qr X``, ``-qrX``;
    None if ``arg`` does not give it)."""
    for pos, char in enumerate(arg[1:], start=1):
        if char == letter:
            return arg[pos + 1 :] or following
        if char not in _SHORT_FLAGS:
            return None  # another option's value, or not the command line's own options
    return None


def takes_next_value(arg: str) -> bool:
    """``arg`` is a cluster of the command line's short options whose last one takes the next
    argument as its value (``-qr`` in ``-qr PATH``)."""
    return (
        len(arg) > 2
        and arg[0] == "-"
        and arg[1] != "-"
        and arg[-1] in _SHORT_VALUES
        and all(c in _SHORT_FLAGS for c in arg[1:-1])
    )


def is_value(args: list[str], i: int) -> bool:
    """Is ``args[i]`` the value of a preceding option of the command line's own (``-c
    run.toml``, ``-qr PATH``)?"""
    return i > 0 and (args[i - 1] in VALUE_OPTIONS or takes_next_value(args[i - 1]))


def command_name(args: list[str]) -> str | None:
    """The command's name: the first argument that is neither an option nor its value."""
    return next(
        (a for i, a in enumerate(args) if not a.startswith("-") and not is_value(args, i)), None
    )


def hold_stops() -> None:
    """Hold stop requests until :func:`held_stop` is asked (see the module docstring)."""
    for name in _STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, _hold)


def _hold(signum: int, _frame: object) -> None:
    global _held  # noqa: PLW0603 - one command per process
    if _held is None:
        _held = signum


def held_stop() -> int | None:
    """The stop request that arrived while the command loaded (None if none did), once the
    derivation's thread has loaded what it needs: from now on, an interruption raised in the
    main thread cannot cut an import the two threads share."""
    _loaded.wait()
    return _held


def start(args: list[str]) -> None:
    """Start deriving the key for the repository this command line names, if it names one
    (option or environment), opens it, and the passphrase was given to the command."""
    location = option_value(args, _REPO_OPTIONS) or os.environ.get(ENV_REPOSITORY)
    if not location or command_name(args) in _NO_OPENING:
        return
    password_file = option_value(args, _PASSWORD_FILE_OPTIONS)
    # (imported here: stops are held before anything heavier than this module loads)
    from praxisbackup.engine import crypto  # noqa: PLC0415

    crypto.expect_ahead()
    _loaded.clear()
    try:
        threading.Thread(
            target=_derive_ahead, args=(location, password_file), daemon=True, name="key-ahead"
        ).start()
    except RuntimeError:  # (no thread can be started: the command derives as usual)
        _loaded.set()
        crypto.ahead_settled()


def begin(args: list[str]) -> None:
    """What a command does first: hold stop requests, start the derivation."""
    hold_stops()
    start(args)


def main() -> None:
    """The ``praxisbackup`` program (its console script): the derivation starts, then the
    command line loads."""
    begin(sys.argv[1:])
    from praxisbackup.cli.main import main as run  # noqa: PLC0415 - after the start

    run()


#: Why the last derivation ahead was not started (for a developer; the command reports the
#: problem itself when it opens the repository).
not_started: BaseException | None = None


def _derive_ahead(location: str, password_file: str | None) -> None:
    global not_started  # noqa: PLW0603 - one command per process
    from praxisbackup.engine import crypto  # noqa: PLC0415 - loaded by start() already

    try:
        try:
            from praxisbackup.credentials import given_passphrase  # noqa: PLC0415
            from praxisbackup.engine.repository import Repository  # noqa: PLC0415
            from praxisbackup.storage import open_backend  # noqa: PLC0415
        finally:
            _loaded.set()
        passphrase = given_passphrase(password_file=password_file, regular_only=True)
        if passphrase is not None:
            Repository.derive_ahead(open_backend(location), passphrase)
    except Exception as exc:  # noqa: BLE001 - see the module docstring: opening reports it
        not_started = exc
    finally:
        crypto.ahead_settled()
