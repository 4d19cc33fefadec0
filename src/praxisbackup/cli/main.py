"""The ``praxisbackup`` command line.

Exit codes: 0 success, 1 finished with warnings, 2 failure, 3 wrong passphrase,
4 repository locked, 5 repository damaged, 70 internal error (see README). No traceback ever
reaches the terminal: an error a user can cause is one line; anything unexpected is one line
naming the log file that holds the full trace.
"""

from __future__ import annotations

import sys

from praxisbackup.cli import keyahead

if __name__ == "__main__":  # (``python -m``): the key is derived while the rest loads
    keyahead.begin(sys.argv[1:])

import _thread
import errno
import os
import signal
import sqlite3
import tempfile
import threading
import traceback
from datetime import datetime
from types import FrameType
from typing import Any, NoReturn

import click

from praxisbackup import __version__, platform
from praxisbackup.cli.context import Ctx
from praxisbackup.errors import ExitCode, PraxisError
from praxisbackup.platform import stops

#: The repository commands (cli/engine_commands.py): run without loading the practice, media,
#: notification and document modules (their imports cost more than a small backup).
ENGINE_COMMANDS = frozenset(
    {"init", "backup", "snapshots", "ls", "diff", "restore", "check", "forget", "prune"}
    | {"stats", "repair", "key"}
)


def text(code: str, lang: str, **params: Any) -> str:
    """A message from the catalogue (loaded only when there is one to show: Babel and the
    catalogues cost the engine commands more than a small backup)."""
    from praxisbackup.report.i18n import text as catalogue_text  # noqa: PLC0415

    return catalogue_text(code, lang, **params)


def crash_log_dir() -> str:
    """Where the full trace of an unexpected error is kept: ``PRAXISBACKUP_LOG_DIR``, else the
    user's log folder (platformdirs), else the temporary folder."""
    explicit = os.environ.get("PRAXISBACKUP_LOG_DIR")
    if explicit:
        return explicit
    import platformdirs  # noqa: PLC0415 - only after a crash

    return str(platformdirs.user_log_dir("praxisbackup", appauthor=False))


def write_crash_log(exc: BaseException, trace: str = "") -> str:
    """Write the trace (it may name patients' files: private to this user) and return where.
    ``trace`` is a report from another process (a worker's) to keep before this one's."""
    name = f"crash-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
    text = (
        f"praxisbackup {__version__} {datetime.now().isoformat(timespec='seconds')}\n"
        f"command: {' '.join(sys.argv)}\n\n"
        + (f"{trace}\n" if trace else "")
        + "".join(traceback.format_exception(exc))
    )
    for folder in (crash_log_dir(), tempfile.gettempdir()):
        path = os.path.join(folder, name)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
                fh.write(text)
            return path
        except OSError:
            continue
    return "(nowhere: no writable log folder)"


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error the user can do something about."""
    where = f": {exc.filename}" if exc.filename else ""
    what = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"permission denied{where} - run this as the account of the backup service or as "
            "an administrator"
        )
    return f"{what}{where}"


def _fail(message: str, code: int, lang: str = "en") -> NoReturn:
    click.echo(f"praxisbackup: {text('error.prefix', lang)}: {message}", err=True)
    sys.exit(code)


def _message(exc: PraxisError, lang: str) -> str:
    """Staff read errors in the practice's language; an error without a catalogue code is
    the technical text (for the service partner)."""
    return text(exc.code, lang, **exc.params) if exc.code else str(exc)


def _option_names(command: click.Command) -> set[str]:
    """Every option spelling a command (and, for a group, its subcommands) defines."""
    names = {n for p in command.params if isinstance(p, click.Option) for n in p.opts}
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            names |= _option_names(sub)
    return names


class PraxisGroup(click.Group):
    """Global options are accepted after the subcommand too (``praxisbackup snapshots --repo
    X``, as restic users type it); every exception becomes one line and its exit code (no
    traceback)."""

    _engine_loaded = False
    _all_loaded = False

    def _load(self, names: list[str]) -> None:
        """Register the commands: only the engine's when the command line names one of them
        (or nothing that could be another command), else all of them."""
        first = keyahead.command_name(names)
        if not self._engine_loaded:
            from praxisbackup.cli import engine_commands  # noqa: PLC0415

            engine_commands.register(self)
            self._engine_loaded = True
        if first is not None and first not in ENGINE_COMMANDS:
            self._load_all()

    def _load_all(self) -> None:
        if self._all_loaded:
            return
        self._all_loaded = True
        from praxisbackup.cli import (  # noqa: PLC0415
            media_commands,
            notify_commands,
            practice_commands,
            restore_commands,
            web_commands,
        )
        from praxisbackup.cli.demo_command import demo  # noqa: PLC0415
        from praxisbackup.cli.setup_command import setup  # noqa: PLC0415

        for command in (
            practice_commands.COMMANDS
            + media_commands.COMMANDS
            + notify_commands.COMMANDS
            + restore_commands.COMMANDS
            + web_commands.COMMANDS
        ):
            self.add_command(command)
        self.add_command(demo)
        self.add_command(setup)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load([])
        self._load_all()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self._load_all()
        return super().get_command(ctx, cmd_name)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """A stop request while the command is being loaded (its modules are imported here)
        is an interruption like any other - not click's "Aborted!" with exit 1, which means
        "finished with warnings" (and counts as success for a service manager)."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt:
            _fail(text("error.interrupted", "de"), ExitCode.FAILURE, "de")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        self._load(args)
        return super().parse_args(ctx, self._hoist_global_options(args))

    def _hoist_global_options(self, args: list[str]) -> list[str]:
        takes_value = {
            n: not p.is_flag for p in self.params if isinstance(p, click.Option) for n in p.opts
        }
        position = next(
            (
                i
                for i, a in enumerate(args)
                if a in self.commands and not keyahead.is_value(args, i)
            ),
            None,
        )
        if position is None:
            return args
        own = _option_names(self.commands[args[position]])
        head, tail, moved = args[: position + 1], args[position + 1 :], []
        rest: list[str] = []
        i = 0
        while i < len(tail):
            arg = tail[i]
            if arg == "--":
                rest += tail[i:]
                break
            name = arg.split("=", 1)[0]
            if name in takes_value and name not in own:
                if takes_value[name] and "=" not in arg and i + 1 < len(tail):
                    moved += tail[i : i + 2]
                    i += 2
                    continue
                moved.append(arg)
            else:
                rest.append(arg)
            i += 1
        return moved + head + rest

    def invoke(self, ctx: click.Context) -> Any:
        lang = "de"
        try:
            return super().invoke(ctx)
        except click.Abort:
            lang = ctx.obj.lang if isinstance(ctx.obj, Ctx) else lang
            _fail(text("error.interrupted", lang), ExitCode.FAILURE, lang)
        except (click.exceptions.ClickException, click.exceptions.Exit):
            raise  # click reports these itself (usage errors: exit code 2)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes one line
            lang = ctx.obj.lang if isinstance(ctx.obj, Ctx) else lang
            self._report(exc, lang)

    @staticmethod
    def _report(exc: BaseException, lang: str) -> None:
        if isinstance(exc, PraxisError):
            message = _message(exc, lang)
            trace = getattr(exc, "trace", "")
            if trace:  # a worker process's report: kept for the service partner, not shown
                message += f"; the full report is in {write_crash_log(exc, trace)}"
            # (a technical text without a catalogue code keeps an English prefix: one language)
            _fail(message, exc.exit_code, lang if exc.code else "en")
        if isinstance(exc, KeyboardInterrupt):
            _fail(text("error.interrupted", lang), ExitCode.FAILURE, lang)
        if isinstance(exc, sqlite3.Error):
            if "readonly" in str(exc) or "unable to open" in str(exc):
                _fail(text("error.no_rights", lang, detail=str(exc)), ExitCode.FAILURE, lang)
            _fail(f"the local state database cannot be used: {exc}", ExitCode.FAILURE, lang)
        if isinstance(exc, BrokenPipeError) and _reader_gone():
            # `praxisbackup ls latest | head`: the reader stopped reading - nothing failed.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(ExitCode.OK)
        if isinstance(exc, OSError):
            if exc.errno in (errno.EACCES, errno.EPERM):
                _fail(text("error.no_rights", lang, detail=describe_os_error(exc)), 2, lang)
            _fail(describe_os_error(exc), ExitCode.FAILURE, lang)
        if isinstance(exc, SystemExit):
            raise exc
        log = write_crash_log(exc)
        _fail(
            f"internal error ({type(exc).__name__}: {exc}); the full report is in {log}",
            ExitCode.INTERNAL,
            lang,
        )


def _reader_gone() -> bool:
    """Standard output is a pipe whose reader has closed it (POSIX; False where unknown)."""
    try:
        import select  # noqa: PLC0415 - only after a broken pipe

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


@click.group(cls=PraxisGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-r",
    "--repo",
    "repo",
    metavar="PATH",
    help="Repository location [env: PRAXISBACKUP_REPOSITORY].",
)
@click.option(
    "--password-file",
    metavar="FILE",
    help="Read the passphrase from the first line of FILE [env: PRAXISBACKUP_PASSWORD_FILE].",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    help="Configuration file [env: PRAXISBACKUP_CONFIG; default: platform location].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.version_option(__version__, prog_name="praxisbackup")
@click.pass_context
def cli(
    ctx: click.Context,
    repo: str | None,
    password_file: str | None,
    config_path: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Encrypted, deduplicated, verified backups for a medical practice.

    The passphrase comes from PRAXISBACKUP_PASSWORD, --password-file, or a prompt - never
    from the command line.
    """
    ctx.obj = Ctx(repo, password_file, as_json, quiet, config_path)


_stopping = False


def _raise_interrupt() -> None:
    raise KeyboardInterrupt


def _inside_import(frame: FrameType | None) -> bool:
    """Python's import machinery is on the stack: an exception raised there can land in one
    of its clean-up callbacks, where Python prints it ("Exception ignored in ...", with a
    traceback) and drops it - the stop would be lost."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _stop_requested(_signum: int, frame: FrameType | None) -> None:
    """The first stop request ends the command (after a lock step in progress, see
    platform/stops.py; after an import in progress); further ones change nothing - it is
    already ending."""
    global _stopping  # noqa: PLW0603 - one command per process
    if _stopping:
        return
    if _inside_import(frame):
        # Asked again shortly, as a Ctrl-C in the main thread (seen under load in a test:
        # a traceback and the command running on).
        again = threading.Timer(0.02, _thread.interrupt_main, (signal.SIGINT,))
        again.daemon = True
        again.start()
        return
    _stopping = True
    if not stops.defer(_raise_interrupt):
        _raise_interrupt()


def main() -> None:
    platform.tune_memory()
    # Ctrl-C and a stop request (kill, a logout, a service manager) end a command the same way:
    # worker processes ended, locks removed, "interrupted" and exit 2 - not a silent death with
    # a lock left behind. `run` and `serve` install their own handling on top. A request that
    # came while the command loaded was held (cli/keyahead.py) and ends it now.
    try:
        keyahead.held_stop()
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is not None:
                signal.signal(sig, _stop_requested)
        if keyahead.held_stop() is not None:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        _fail(text("error.interrupted", "de"), ExitCode.FAILURE, "de")
    cli(prog_name="praxisbackup")


if __name__ == "__main__":
    main()
