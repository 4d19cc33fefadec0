"""Application profiles. ``cgm-m1-pro``: what the vendor says must be in a backup.

The essential folders and files come verbatim from the vendor's guidance (see PRODUCT.md).
Paths are matched case-insensitively (``CompuMED`` / ``Compumed``): Windows paths are, and a
restore on Linux must find them too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import PurePath

PROFILE = "cgm-m1-pro"
VARIANT_U9 = "Uniface 9 / Oracle 11g (CGM M1 PRO)"
VARIANT_U7 = "Uniface 7 / Oracle 7"


@dataclass(frozen=True)
class EssentialItem:
    """A folder or file relative to the drive root that holds ``CompuMED``."""

    path: str  # with "/" separators, e.g. "CompuMED/M1/Bin"
    kind: str  # "dir" or "file"
    required: bool = True
    #: Items of the same non-empty group are alternatives: one of them is enough.
    group: str = ""

    @property
    def parts(self) -> list[str]:
        return self.path.split("/")


_COMMON = [
    EssentialItem("CompuMED/M1/Bin", "dir"),
    EssentialItem("CompuMED/M1/Project", "dir"),
    EssentialItem("Compumed/M1/Clients", "dir"),
    EssentialItem("Compumed/M1/XUP", "dir", required=False),
]
_U9 = [
    EssentialItem("CompuMED/M1/Orant/DB_M1/Database", "dir"),
    EssentialItem("CompuMED/M1/U9/common/adm", "dir"),
]
_U7 = [
    EssentialItem("CompuMED/M1/Orant/Database", "dir"),
    *(
        EssentialItem(f"CompuMED/M1/Uniface.{v}/Bin/usys.ini", "file", group="usys.ini")
        for v in ("w95", "w2k", "wnt", "wxp")
    ),
]
_IFAP_HOUSE = "ifapDB/praxisCENTER3/Datenbank"
_IFAP_ACT = "ifapDB/ifapTOOLS/ifapACTIVATION/Datenbank"
_IFAP = [
    EssentialItem(f"{_IFAP_HOUSE}/T_HOUSELIST.adi", "file"),
    EssentialItem(f"{_IFAP_HOUSE}/T_HOUSELIST.adt", "file"),
    EssentialItem(f"{_IFAP_HOUSE}/T_HOUSELIST_ipc2.xml", "file", required=False),
    *(
        EssentialItem(f"{_IFAP_ACT}/{name}", "file")
        for name in (
            "activation_writeable.add",
            "activation_writeable.ai",
            "activation_writeable.am",
            "D_IfoxC.adt",
            "D_IfoxL.adt",
            "D_LicenseHolders.adi",
            "D_LicenseHolders.adt",
            "D_Pakete.adt",
            "D_Users.adi",
            "D_Users.adt",
        )
    ),
]


def resolve_ci(base: str, parts: list[str]) -> str | None:
    """The existing path below ``base`` whose components equal ``parts`` ignoring case."""
    current = base
    for part in parts:
        exact = os.path.join(current, part)
        if os.path.lexists(exact):
            current = exact
            continue
        try:
            names = os.listdir(current)
        except OSError:
            return None
        match = next((n for n in names if n.casefold() == part.casefold()), None)
        if match is None:
            return None
        current = os.path.join(current, match)
    return current


@dataclass
class Installation:
    """A detected CGM M1 PRO installation."""

    root: str  # the drive root / folder holding CompuMED
    compumed: str  # the real CompuMED folder path
    variant: str
    has_ifap: bool

    def items(self) -> list[EssentialItem]:
        return essential_items(self.variant, self.has_ifap)


def essential_items(variant: str, with_ifap: bool) -> list[EssentialItem]:
    items = _COMMON + (_U9 if variant == VARIANT_U9 else _U7)
    return items + (_IFAP if with_ifap else [])


def detect(root: str) -> Installation | None:
    """Look for ``CompuMED\\M1`` below ``root`` (a drive root) and tell the variant."""
    compumed = resolve_ci(root, ["CompuMED"])
    if compumed is None or resolve_ci(compumed, ["M1"]) is None:
        return None
    u9 = resolve_ci(compumed, ["M1", "Orant", "DB_M1", "Database"]) or resolve_ci(
        compumed, ["M1", "U9"]
    )
    variant = VARIANT_U9 if u9 else VARIANT_U7
    has_ifap = resolve_ci(root, ["ifapDB"]) is not None
    return Installation(root, compumed, variant, has_ifap)


def detect_source(source_path: str) -> Installation | None:
    """The installation a source of this profile belongs to: the source is the ``CompuMED``
    folder, so its parent is the root to look in."""
    return detect(os.path.dirname(os.path.abspath(source_path).rstrip("\\/")) or source_path)


def source_problem(path: str) -> tuple[str, dict[str, str]] | None:
    """Why a configured source cannot be backed up (a finding code and its parameters), checked
    before anything is stopped; None if it can. A link as a source would store only the link:
    a green night without data."""
    if not os.path.exists(path):
        return "source_missing", {}
    if os.path.islink(path):
        return "source_is_link", {"to": os.path.realpath(path)}
    return None


def detect_all(roots: list[str]) -> list[Installation]:
    found = []
    for root in roots:
        inst = detect(root)
        if inst is not None:
            found.append(inst)
    return found


def default_roots() -> list[str]:
    """Drive roots on Windows; ``/`` elsewhere."""
    if os.name == "nt":
        return [f"{letter}:\\" for letter in "CDEFGHIJ" if os.path.exists(f"{letter}:\\")]
    return ["/"]


@dataclass
class ProfileCheck:
    """Result of checking the essential items against the configured sources."""

    present: list[str] = field(default_factory=list)
    missing_required: list[str] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)
    not_covered: list[str] = field(default_factory=list)  # exists but no source backs it up

    @property
    def ok(self) -> bool:
        return not self.missing_required and not self.not_covered


def _inside(path: str, folder: str) -> bool:
    p = PurePath(os.path.normcase(os.path.abspath(path)))
    f = PurePath(os.path.normcase(os.path.abspath(folder)))
    return p == f or f in p.parents


def check_installation(inst: Installation, source_paths: list[str]) -> ProfileCheck:
    """Every required item must exist and lie inside one of the backed-up source paths."""
    result = ProfileCheck()
    groups: dict[str, list[tuple[EssentialItem, str | None]]] = {}
    for item in inst.items():
        found = resolve_ci(inst.root, item.parts)
        if item.group:
            groups.setdefault(item.group, []).append((item, found))
            continue
        _classify(result, inst, item, found, source_paths)
    for group_items in groups.values():
        present = [(i, f) for i, f in group_items if f is not None]
        if present:
            for item, found in present:
                _classify(result, inst, item, found, source_paths)
        else:  # alternatives: any one of them will do (shown as "A / B")
            names = " / ".join(_where(inst, i) for i, _ in group_items)
            result.missing_required.append(names)
    return result


def _where(inst: Installation, item: EssentialItem) -> str:
    """Where a missing item belongs, as a path of this system (``C:\\CompuMED\\M1\\Bin``)."""
    return os.path.join(inst.root, *item.parts)


def _classify(
    result: ProfileCheck,
    inst: Installation,
    item: EssentialItem,
    found: str | None,
    sources: list[str],
) -> None:
    if found is None:
        missing = result.missing_required if item.required else result.missing_optional
        missing.append(_where(inst, item))
        return
    if item.kind == "dir" and not os.path.isdir(found):
        result.missing_required.append(found)  # a file where the folder must be
        return
    if not any(_inside(found, src) for src in sources):
        result.not_covered.append(found)
        return
    result.present.append(found)


def minimal_paths(inst: Installation) -> list[str]:
    """The essential items that exist: the source paths of the profile's "minimal" mode."""
    paths = []
    for item in inst.items():
        found = resolve_ci(inst.root, item.parts)
        if found is not None:
            paths.append(found)
    return paths
