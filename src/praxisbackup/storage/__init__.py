"""Storage backends: the only code that touches the backup medium.

The engine talks to a medium exclusively through :class:`Backend`, so S3 and SFTP backends can be
added without touching the engine. Objects are addressed by a *kind* (a namespace such as
``data`` or ``index``) and a name. Every write is atomic and durable: after ``write`` returns, the
object is complete on the medium, and a crash before that leaves no trace of it under its name.
"""

from __future__ import annotations

from praxisbackup.storage.base import KINDS, Backend, ObjectInfo
from praxisbackup.storage.local import LocalBackend


def open_backend(location: str) -> Backend:
    """Return the backend for a repository location (a folder path for now)."""
    return LocalBackend(location)


__all__ = ["KINDS", "Backend", "LocalBackend", "ObjectInfo", "open_backend"]
