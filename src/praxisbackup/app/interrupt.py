"""Stop requests during a run: SIGTERM (service stop, shutdown), SIGINT (Ctrl-C), SIGHUP, and
SIGBREAK / console close on Windows.

While work is in progress a request becomes :class:`Interrupted` at once, so the run ends
quickly and its protocol says why. While services are being started again the request is only
remembered (:meth:`StopRequests.deferred`): a database must never be left stopped because a
second Ctrl-C arrived during its restart. When the deferred section ends, the remembered
request is raised - unless an error is already on its way out, which it must not replace.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

from praxisbackup.platform import stops

_SIGNAL_NAMES = ("SIGTERM", "SIGINT", "SIGBREAK", "SIGHUP")


class Interrupted(Exception):
    """The run was asked to stop."""

    def __init__(self, signal_name: str) -> None:
        super().__init__("Ctrl-C" if signal_name == "SIGINT" else signal_name)


class StopRequests:
    """Context manager that turns stop signals into :class:`Interrupted` (main thread only;
    elsewhere signals cannot be handled and it does nothing)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._armed = True
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        first = self.received is None
        self.received = self.received or name
        if self._armed and first and not stops.defer(self._raise):
            self._raise()

    def _raise(self) -> None:
        """(After a lock step in progress, platform/stops.py; only if still armed then.)"""
        if self._armed and self.received is not None:
            raise Interrupted(self.received)

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for name in _SIGNAL_NAMES:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._previous.clear()

    def disarm(self) -> None:
        """From now on only remember stop requests (the run is recording its outcome)."""
        self._armed = False

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Only remember stop requests inside; raise a remembered one afterwards unless an
        exception is already propagating."""
        # Used in ``finally:`` blocks: an exception may already be on its way out.
        in_flight = sys.exc_info()[1] is not None
        was_armed, self._armed = self._armed, False
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            self._armed = was_armed
            if self.received and was_armed and not (failed or in_flight):
                raise Interrupted(self.received)
