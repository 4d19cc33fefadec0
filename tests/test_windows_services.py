"""Pure logic of the Windows service backend: numeric states only, dependents first."""

from __future__ import annotations

import pytest

from praxisbackup.services import ServiceError
from praxisbackup.services.windows import (
    RUNNING,
    STOPPED,
    parse_dependents,
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
ENUMDEPEND = """
Enum: entriesRead = 2

SERVICE_NAME: M1Hintergrund
DISPLAY_NAME: M1 Hintergrunddienst
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 4  RUNNING

SERVICE_NAME: M1Drucken
DISPLAY_NAME: M1 Druckdienst
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 4  RUNNING
"""


def test_state_is_read_from_numbers_not_localized_words() -> None:
    assert parse_state(ENGLISH) == STOPPED
    # German Windows says STATUS, not STATE: the numeric code is still found.
    assert parse_state(GERMAN.replace("STATUS", "STATE")) == RUNNING
    with pytest.raises(ServiceError):
        parse_state("[SC] OpenService FEHLER 1060:")


def test_dependents_are_stopped_first_each_once() -> None:
    assert parse_dependents(ENUMDEPEND) == ["M1Hintergrund", "M1Drucken"]
    graph = {
        "OracleServiceM1": ["M1Hintergrund", "M1Drucken"],
        "M1Hintergrund": ["M1Drucken"],
        "M1Drucken": [],
    }
    assert stop_order("OracleServiceM1", graph) == ["M1Drucken", "M1Hintergrund", "OracleServiceM1"]
    cyclic = {"a": ["b"], "b": ["a"]}
    assert stop_order("a", cyclic) == ["b", "a"]
