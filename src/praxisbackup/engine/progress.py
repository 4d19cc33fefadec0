"""Progress reporting hooks for long operations (backup, restore, check).

The engine only calls these methods; the CLI supplies a rich progress bar on a terminal and the
silent default otherwise.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_gc() -> Iterator[None]:
    """No cyclic garbage collection during a long engine loop: it makes tens of thousands of
    short-lived objects per second, none of them in reference cycles, and every full
    collection would walk the whole heap (the index, the trees) again. Collected at the end."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Progress:
    """Silent progress sink; subclasses render it."""

    def set_total(self, files: int, size: int) -> None:
        """Total work, once known (may never be called)."""

    def advance(self, files: int = 0, size: int = 0) -> None:
        """Work done since the last call."""

    def note(self, message: str) -> None:
        """A short status line (e.g. the current phase)."""

    def close(self) -> None:
        """Called once at the end, also after errors."""
