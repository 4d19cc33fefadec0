"""Stopping and starting the practice's database and background services (seed S2).

Every backend offers the same three operations. :class:`ServiceSequence` stops the configured
services in order and starts them again in reverse order - always, whatever happened in
between - and keeps a timeline of every state change for the protocol. A service that was not
running before the backup is left stopped.

The sequence is built so that a file-system snapshot step (VSS on Windows, LVM/btrfs on
Linux) can sit between "all stopped" and "start again": the job calls ``stop_all``, takes the
snapshot, calls ``start_all``, and reads from the snapshot - the downtime becomes the
snapshot's seconds.
"""

from __future__ import annotations

from praxisbackup.model.config import ServiceConfig
from praxisbackup.services.base import ServiceBackend, ServiceError
from praxisbackup.services.command import CommandService
from praxisbackup.services.sequence import ServiceEvent, ServiceSequence, ServiceTimeline
from praxisbackup.services.systemd import SystemdService
from praxisbackup.services.windows import WindowsService

__all__ = [
    "ServiceBackend",
    "ServiceError",
    "ServiceEvent",
    "ServiceSequence",
    "ServiceTimeline",
    "make_service",
]


def make_service(cfg: ServiceConfig) -> ServiceBackend:
    """The backend for a configured service."""
    if cfg.kind == "windows":
        return WindowsService(cfg.name)
    if cfg.kind == "systemd":
        return SystemdService(cfg.name)
    assert cfg.stop and cfg.start and cfg.is_running
    return CommandService(cfg.name, cfg.stop, cfg.start, cfg.is_running)
