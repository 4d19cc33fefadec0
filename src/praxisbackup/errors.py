"""Error types shared by every layer.

Each error carries the process exit code the CLI uses for it, so that scripts written by a
service partner can tell "wrong passphrase" from "repository damaged" without parsing text.
Messages are written for a human: they say what is wrong and, where possible, what to do.
"""

from __future__ import annotations


class ExitCode:
    """Process exit codes (documented in the README)."""

    OK = 0
    WARNINGS = 1
    FAILURE = 2
    WRONG_PASSWORD = 3
    LOCKED = 4
    DAMAGED = 5
    #: An unexpected error (a bug): one line on the terminal, the full trace in a log file.
    INTERNAL = 70


class PraxisError(Exception):
    """Base class of every error praxisbackup reports to a user.

    ``str(error)`` is the technical English text (logs, service partners). An error that
    staff may meet also carries a message ``code`` (and its parameters) from the text
    catalogue, which the interfaces show in the practice's language instead.
    """

    exit_code: int = ExitCode.FAILURE

    def __init__(self, *args: object, code: str | None = None, **params: object) -> None:
        super().__init__(*args)
        self.code = code
        self.params = params


class UsageError(PraxisError):
    """The command was called with arguments that cannot work."""


class StorageError(PraxisError):
    """The backup medium could not be read or written (missing, full, read-only, I/O error)."""


class RepositoryNotFoundError(StorageError):
    """There is no praxisbackup repository at the given location."""


class RepositoryExistsError(PraxisError):
    """`init` was asked to create a repository where one already exists."""


class WrongPasswordError(PraxisError):
    """The passphrase opens none of the repository's key slots."""

    exit_code = ExitCode.WRONG_PASSWORD


class RepositoryLockedError(PraxisError):
    """Another process holds a conflicting lock on the repository."""

    exit_code = ExitCode.LOCKED


class IntegrityError(PraxisError):
    """Data read from the medium failed authentication, a hash check, or parsing."""

    exit_code = ExitCode.DAMAGED


class SnapshotNotFoundError(PraxisError):
    """No snapshot matches the given id or prefix."""


class SourceError(PraxisError):
    """A backup source path does not exist or cannot be opened at all."""


class UnsafeTargetError(PraxisError):
    """A restore would have to write through a link (symlink, junction) below its target."""

    def __init__(self, path: str, target: str) -> None:
        super().__init__(
            f"{path} is a link (to {target}); restore never writes through a link below its "
            "target unless that link is allowed explicitly"
        )
        self.path = path
        self.target = target
