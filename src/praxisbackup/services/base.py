"""What every service backend offers, and the error it raises."""

from __future__ import annotations

from typing import Protocol

from praxisbackup.errors import PraxisError


class ServiceError(PraxisError):
    """A service could not be stopped, started or queried."""


class ServiceBackend(Protocol):
    name: str

    def is_running(self) -> bool: ...

    def stop(self, timeout: float) -> None:
        """Stop and wait until stopped; raise ServiceError on failure or timeout."""
        ...

    def start(self, timeout: float) -> None:
        """Start and wait until running; raise ServiceError on failure or timeout."""
        ...
