"""Pure logic of the platform layer that must hold on Windows too (tested here on Linux)."""

from __future__ import annotations

from praxisbackup.engine.paths import normalize_snapshot_path, split_source
from praxisbackup.platform import _windows


def test_filetime_round_trip_keeps_100ns_precision() -> None:
    ns = 1_600_000_001_987_654_300
    low, high = _windows.filetime_from_ns(ns)
    assert _windows.ns_from_filetime(low, high) == ns
    # 1970-01-01 is 116444736000000000 ticks after 1601-01-01.
    assert _windows.filetime_from_ns(0) == (
        116_444_736_000_000_000 & 0xFFFFFFFF,
        116_444_736_000_000_000 >> 32,
    )


def test_windows_paths_map_to_snapshot_paths() -> None:
    assert split_source(r"C:\CompuMED\M1\Bin", windows=True) == ["C", "CompuMED", "M1", "Bin"]
    assert split_source(r"D:\\", windows=True) == ["D"]
    assert split_source(r"\\nas\praxis\Briefe", windows=True) == ["nas", "praxis", "Briefe"]
    assert split_source("/srv/praxis", windows=False) == ["srv", "praxis"]
    assert normalize_snapshot_path(r"C:\CompuMED\M1") == "/C/CompuMED/M1"
    assert normalize_snapshot_path("/C/CompuMED/") == "/C/CompuMED"
    assert normalize_snapshot_path("srv/praxis") == "/srv/praxis"


def test_snapshot_paths_are_shown_in_the_systems_form() -> None:
    from praxisbackup.engine.paths import native_path

    assert native_path("/D/pt/Brief Müller.txt", windows=True) == "D:\\pt\\Brief Müller.txt"
    assert native_path("/C", windows=True) == "C:\\"
    assert native_path("/nas/sicherung/x", windows=True) == "\\\\nas\\sicherung\\x"
    assert native_path("/srv/praxis/x", windows=False) == "/srv/praxis/x"
