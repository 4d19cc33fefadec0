"""Stop services in order, start them again in reverse order, keep a timeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from praxisbackup.services.base import ServiceBackend, ServiceError


@dataclass
class ServiceEvent:
    time: str
    service: str
    action: str  # "found running", "found stopped", "stopped", "started", "stop failed", ...
    detail: str = ""


@dataclass
class ServiceTimeline:
    events: list[ServiceEvent] = field(default_factory=list)
    first_stop: float | None = None
    last_start: float | None = None
    failed_to_stop: list[str] = field(default_factory=list)
    failed_to_start: list[str] = field(default_factory=list)

    @property
    def downtime_seconds(self) -> float | None:
        if self.first_stop is None or self.last_start is None:
            return None
        return round(self.last_start - self.first_stop, 2)


class ServiceSequence:
    """Stops services in order; :meth:`start_all` restarts exactly those it stopped."""

    def __init__(
        self,
        services: list[tuple[ServiceBackend, float]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        self.timeline = ServiceTimeline()
        self._stopped: list[tuple[ServiceBackend, float]] = []
        self._clock = clock

    def _event(self, service: str, action: str, detail: str = "") -> None:
        self.timeline.events.append(
            ServiceEvent(
                datetime.now().astimezone().isoformat(timespec="seconds"), service, action, detail
            )
        )

    def stop_all(self) -> None:
        """Stop every running service; on the first failure raise (the caller then starts the
        ones already stopped)."""
        for backend, timeout in self.services:
            try:
                running = backend.is_running()
            except ServiceError as exc:
                self._event(backend.name, "query failed", str(exc))
                self.timeline.failed_to_stop.append(backend.name)
                raise
            if not running:
                self._event(backend.name, "found stopped", "left stopped afterwards")
                continue
            self._event(backend.name, "found running")
            stop_began = self._clock()
            try:
                backend.stop(timeout)
            except ServiceError as exc:
                self._event(backend.name, "stop failed", str(exc))
                self.timeline.failed_to_stop.append(backend.name)
                if self._went_down(backend):
                    # Half-stopped: it is down now, so start_all must bring it back.
                    self._stopped.append((backend, timeout))
                    self._went_down_at(stop_began)
                raise
            self._went_down_at(stop_began)
            self._stopped.append((backend, timeout))
            self._event(backend.name, "stopped")

    def _went_down_at(self, moment: float) -> None:
        if self.timeline.first_stop is None:
            self.timeline.first_stop = moment

    def _went_down(self, backend: ServiceBackend) -> bool:
        """After a failed stop: is the service down anyway? If it cannot be asked, assume so
        (starting a running service is harmless; leaving a stopped one down is not)."""
        try:
            return not backend.is_running()
        except ServiceError:
            return True

    def start_all(self) -> None:
        """Start what was stopped, in reverse order. Never raises: every failure is recorded
        (and each one is its own red alarm in the protocol)."""
        while self._stopped:
            backend, timeout = self._stopped.pop()
            try:
                backend.start(timeout)
            except ServiceError as exc:
                self._event(backend.name, "start failed", str(exc))
                self.timeline.failed_to_start.append(backend.name)
                continue
            except Exception as exc:  # noqa: BLE001 - a start must never abort the others
                self._event(backend.name, "start failed", f"{type(exc).__name__}: {exc}")
                self.timeline.failed_to_start.append(backend.name)
                continue
            self.timeline.last_start = self._clock()
            self._event(backend.name, "started")
        if self.timeline.first_stop is not None and self.timeline.last_start is None:
            self.timeline.last_start = self._clock()
