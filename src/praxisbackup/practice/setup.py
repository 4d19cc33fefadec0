"""``praxisbackup setup``: detect CGM M1 PRO and write a readable configuration."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from praxisbackup.practice import profiles

#: Service names of a standard CGM M1 PRO server (Oracle 11g database and listener, M1 services).
DEFAULT_WINDOWS_SERVICES = [
    "M1Hintergrunddienst",
    "OracleServiceM1",
    "OracleOraDb11g_home1TNSListener",
]


@dataclass
class SetupAnswers:
    practice: str
    compumed: str
    variant: str
    extra_sources: list[tuple[str, str]] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    service_kind: str = "windows"
    media: list[str] = field(default_factory=list)
    password_file: str = ""
    mode: str = "full"
    at: str = "22:30"


def _q(value: str) -> str:
    """A TOML string (JSON string syntax is valid TOML for basic strings)."""
    return json.dumps(value, ensure_ascii=False)


def render_config(a: SetupAnswers) -> str:
    lines = [
        "# praxisbackup configuration, written by 'praxisbackup setup'.",
        f"# Detected: CGM M1 PRO, {a.variant}",
        "",
        "[practice]",
        f"name = {_q(a.practice)}",
        'language = "de"',
        "",
        "[repository]",
        'folder = "praxisbackup"',
    ]
    if a.password_file:
        lines.append(f"password_file = {_q(a.password_file)}")
    lines += [
        "",
        "[[sources]]",
        'label = "CGM M1 PRO"',
        'profile = "cgm-m1-pro"',
        f"path = {_q(a.compumed)}",
        f"mode = {_q(a.mode)}",
    ]
    for label, path in a.extra_sources:
        lines += ["", "[[sources]]", f"label = {_q(label)}", f"path = {_q(path)}"]
    db_dir = profiles.resolve_ci(
        a.compumed, ["M1", "Orant", "DB_M1", "Database"]
    ) or profiles.resolve_ci(a.compumed, ["M1", "Orant", "Database"])
    for name in a.services:
        lines += [
            "",
            "[[services]]",
            f"name = {_q(name)}",
            f"kind = {_q(a.service_kind)}",
            "timeout_seconds = 180",
        ]
        if db_dir and "oracleservice" in name.lower():
            lines.append(f"check_closed = [{_q(db_dir)}]")
    lines += [
        "",
        "[media]",
        f"candidates = [{', '.join(_q(m) for m in a.media)}]",
        "allow_same_disk = false",
    ]
    lines += ["", "[verify]", 'level = "new-data"', "", "[schedule]", f"at = {_q(a.at)}", ""]
    return "\n".join(lines)


def propose_extra_sources(inst: profiles.Installation) -> list[tuple[str, str]]:
    """ifap and other application data found next to CompuMED."""
    found = []
    ifap = profiles.resolve_ci(inst.root, ["ifapDB"])
    if ifap:
        found.append(("ifap praxisCENTER", ifap))
    for name, label in (
        ("Praxisarchiv", "CGM PRAXISARCHIV"),
        ("PraxisTimer", "CGM PRAXISTIMER"),
        ("DMP", "CGM DMP"),
    ):
        path = profiles.resolve_ci(inst.root, [name])
        if path and os.path.isdir(path):
            found.append((label, path))
    return found
