"""Stop requests (Ctrl-C, SIGTERM, SIGHUP) that must not land inside a few short steps.

A stop request ends a command through an exception raised wherever the main thread happens
to be. A handful of steps must not be cut in half by it: writing and naming a repository lock,
and removing it again - cut there, a lock is left on the medium (found by an outsider: about
one stop in forty of a backup left its lock). Such steps run inside :func:`uninterrupted`; a
request arriving meanwhile is remembered and acted on when the step is complete.

The signal handlers themselves belong to the interface (the command line, the nightly job);
they ask :func:`defer` first.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_depth = 0
_pending: Callable[[], None] | None = None


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def defer(action: Callable[[], None]) -> bool:
    """Called by a signal handler (which runs in the main thread): inside an uninterrupted
    step, remember ``action`` (it raises the handler's exception) for the step's end and
    return True; else return False and let the handler act now."""
    global _pending  # noqa: PLW0603 - one main thread, one pending request
    if _depth:
        if _pending is None:
            _pending = action
        return True
    return False


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Run a short step to its end before a stop request takes effect (main thread only;
    signal handlers run nowhere else)."""
    global _depth, _pending  # noqa: PLW0603
    if not _in_main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending is not None:
            action, _pending = _pending, None
            if sys.exc_info()[1] is None:  # an error on its way out is not replaced
                action()
