"""The CGM M1 PRO profile: detection, variants, essential items, case-insensitive paths."""

from __future__ import annotations

import os
from pathlib import Path

from praxisbackup.practice import profiles
from praxisbackup.practice.sample import generate


def make_u7(root: Path, usys: str = "wnt") -> None:
    """A Uniface 7 installation whose folder names differ in case from the vendor's list."""
    m1 = root / "COMPUMED" / "m1"
    for d in ("BIN", "Orant/DATABASE", "project", "Clients"):
        (m1 / d).mkdir(parents=True, exist_ok=True)
    usys_dir = m1 / f"UNIFACE.{usys}" / "bin"
    usys_dir.mkdir(parents=True)
    (usys_dir / "USYS.INI").write_text("[x]")


def test_detects_m1_pro_variant_and_checks_all_items(tmp_path: Path) -> None:
    generate(tmp_path / "c", size_mb=4)
    inst = profiles.detect(str(tmp_path / "c"))
    assert inst is not None and inst.variant == profiles.VARIANT_U9 and inst.has_ifap
    check = profiles.check_installation(
        inst, [str(tmp_path / "c" / "CompuMED"), str(tmp_path / "c" / "ifapDB")]
    )
    assert check.ok
    root = tmp_path / "c"
    assert check.missing_optional == [
        str(root / "Compumed" / "M1" / "XUP"),
        str(root / "ifapDB" / "praxisCENTER3" / "Datenbank" / "T_HOUSELIST_ipc2.xml"),
    ]
    # Without the ifap source, the ifap files are essential but not backed up.
    partial = profiles.check_installation(inst, [str(tmp_path / "c" / "CompuMED")])
    assert not partial.ok and any("T_HOUSELIST.adt" in p for p in partial.not_covered)


def test_uniface7_variant_with_mixed_case_and_one_usys_ini(tmp_path: Path) -> None:
    make_u7(tmp_path)
    inst = profiles.detect(str(tmp_path))
    assert inst is not None and inst.variant == profiles.VARIANT_U7 and not inst.has_ifap
    check = profiles.check_installation(inst, [str(tmp_path / "COMPUMED")])
    assert check.ok, check
    # Found whatever its case (Windows reports the profile's spelling, Linux the one on disk).
    assert any(p.casefold().endswith("usys.ini") for p in check.present)


def test_missing_required_items_are_named(tmp_path: Path) -> None:
    make_u7(tmp_path)
    for ini in tmp_path.rglob("USYS.INI"):
        ini.unlink()
    (tmp_path / "COMPUMED" / "m1" / "project").rmdir()
    inst = profiles.detect(str(tmp_path))
    assert inst is not None
    check = profiles.check_installation(inst, [str(tmp_path)])
    assert not check.ok
    # Paths of this system; alternatives (one usys.ini per Uniface variant) as "A / B".
    root = str(tmp_path)
    assert os.path.join(root, "CompuMED", "M1", "Project") in check.missing_required
    usys = next(m for m in check.missing_required if "usys.ini" in m)
    assert usys.startswith(os.path.join(root, "CompuMED", "M1")) and " / " in usys
    assert " or " not in usys


def test_minimal_mode_lists_only_essential_items(tmp_path: Path) -> None:
    generate(tmp_path / "c", size_mb=4)
    inst = profiles.detect(str(tmp_path / "c"))
    assert inst is not None
    paths = profiles.minimal_paths(inst)
    assert any(p.endswith("Database") for p in paths)
    assert not any("Praxisarchiv" in p or "Scans" in p for p in paths)
    assert profiles.detect(str(tmp_path)) is None
