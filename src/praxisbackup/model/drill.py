"""The record of a restore test (drill, seed S12) as it is stored on the medium.

A drill runs on another machine, often without the practice's catalog; its record goes onto
the medium (encrypted, ``meta/drill-...``), and the next nightly run on the practice server
reads it from there into the register. Both sides use this one definition.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from praxisbackup.errors import IntegrityError

META_PREFIX = "drill-"


@dataclass
class DrillRecord:
    time: str
    machine: str
    system: str
    medium_id: str
    medium_label: str
    snapshot: str
    files: int = 0
    bytes: int = 0
    verified: int = 0
    seconds: float = 0.0
    ok: bool = False
    errors: list[str] = field(default_factory=list)
    check_command: str = ""
    check_ok: bool = True
    check_output: str = ""

    def meta_name(self) -> str:
        stamp = self.time[:19].replace("-", "").replace(":", "").replace("T", "-")
        return f"{META_PREFIX}{stamp}-{self.machine}"

    def to_json(self) -> builtins.bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: builtins.bytes) -> DrillRecord:
        """Parse a stored record; anything malformed is an IntegrityError."""
        try:
            doc: Any = json.loads(raw)
            if not isinstance(doc, dict):
                raise TypeError("not an object")
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in doc.items() if k in known})
        except (ValueError, TypeError) as exc:
            raise IntegrityError(f"a drill record is malformed: {exc}") from None
