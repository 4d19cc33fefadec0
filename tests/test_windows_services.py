"""Pure logic of the Windows service backend: numeric states only, dependents first.

The control path talks to the Service Control Manager API (tested against real services in the
Windows lane, tests/test_windows_scm.py); only saved ``sc.exe`` text is parsed, in any language.
"""

from __future__ import annotations

import pytest

from praxisbackup.services import ServiceError
from praxisbackup.services.windows import (
    RUNNING,
    STOP_PENDING,
    STOPPED,
    parse_state,
    stop_order,
)

GERMAN = """
SERVICE_NAME: OracleServiceM1
        TYP                : 10  WIN32_OWN_PROCESS
        STATUS             : 4  WIRD_AUSGEFÜHRT
                                (STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)
        WIN32_EXITCODE     : 0  (0x0)
"""
ENGLISH = """
SERVICE_NAME: OracleServiceM1
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 1  STOPPED
        WIN32_EXIT_CODE    : 0  (0x0)
"""
QUERYEX_STOP_PENDING = """
SERVICE_NAME: M1Hintergrund
        TYP                : 10  WIN32_OWN_PROCESS
        STATUS             : 3  STOP_AUSSTEHEND
                                (NOT_STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)
        WIN32_EXITCODE     : 0  (0x0)
        SERVICE_EXITCODE   : 0  (0x0)
        CHECKPOINT         : 0x2
        WAIT_HINT          : 0x7530
        PID                : 4711
        FLAGS              :
"""


def test_state_is_read_from_numbers_not_localized_words() -> None:
    assert parse_state(ENGLISH) == STOPPED
    # German Windows says STATUS and TYP: the fixture is parsed exactly as sc.exe prints it.
    assert parse_state(GERMAN) == RUNNING
    assert parse_state(QUERYEX_STOP_PENDING) == STOP_PENDING
    with pytest.raises(ServiceError, match="FEHLER 1060"):
        parse_state("[SC] OpenService FEHLER 1060:\n\nDer angegebene Dienst ist nicht installiert.")
    with pytest.raises(ServiceError):
        parse_state("")


def test_dependents_are_stopped_first_each_once() -> None:
    graph = {
        "OracleServiceM1": ["M1Hintergrund", "M1Drucken"],
        "M1Hintergrund": ["M1Drucken"],
        "M1Drucken": [],
    }
    assert stop_order("OracleServiceM1", graph) == ["M1Drucken", "M1Hintergrund", "OracleServiceM1"]
    cyclic = {"a": ["b"], "b": ["a"]}
    assert stop_order("a", cyclic) == ["b", "a"]
