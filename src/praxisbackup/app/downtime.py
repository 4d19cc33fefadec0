"""The downtime window (seed S2, S13): stop the practice's services, make sure their files are
closed, do the work, start the services again - always.

The nightly job and restore-practice both need exactly this sequence, so it exists once. The
caller keeps the :class:`ServiceSequence` to put its timeline (who was stopped and started when,
the downtime) into its protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

from praxisbackup.app.interrupt import StopRequests
from praxisbackup.errors import PraxisError
from praxisbackup.model.config import ServiceConfig
from praxisbackup.practice.openfiles import open_files_below
from praxisbackup.services import ServiceBackend, ServiceError, ServiceSequence, make_service


class ServicesNotStoppedError(PraxisError):
    """A service could not be stopped (or queried); nothing was done."""

    def __init__(self, service: str, error: str) -> None:
        super().__init__(f"the service {service} could not be stopped: {error}")
        self.service = service
        self.error = error


class FilesStillOpenError(PraxisError):
    """After stopping the services, database files are still held open by some process."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(f"files are still open: {', '.join(paths[:5])}")
        self.paths = paths


def service_sequence(
    services: list[ServiceConfig],
    factory: Callable[[ServiceConfig], ServiceBackend] = make_service,
) -> ServiceSequence:
    """The configured services in stop order, each with its own timeout. ``factory`` makes
    the backend of each (the Windows lane passes one that reads dependents from the registry,
    which Wine's service manager does not track)."""
    return ServiceSequence([(factory(s), s.timeout_seconds) for s in services])


@contextmanager
def services_stopped(
    sequence: ServiceSequence, check_closed: list[str], stops: StopRequests | None = None
) -> Iterator[None]:
    """Stop the sequence's services and check that ``check_closed`` holds no open file; run
    the body; start again what was stopped - also after errors and stop requests (which are
    deferred while services start)."""
    try:
        try:
            sequence.stop_all()
        except ServiceError as exc:
            failed = sequence.timeline.failed_to_stop
            raise ServicesNotStoppedError(failed[-1] if failed else "?", str(exc)) from None
        still_open = open_files_below(check_closed)
        if still_open:
            raise FilesStillOpenError(still_open)
        yield
    finally:
        with stops.deferred() if stops is not None else nullcontext():
            sequence.start_all()
