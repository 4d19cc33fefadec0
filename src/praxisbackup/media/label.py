"""A medium is a folder (USB disk, NAS share) with a small label file next to its repository.

``<medium>/praxisbackup-medium.json`` (plain JSON, no practice data)::

    {"format": 1, "medium_id": "<hex>", "label": "Mo", "created": "<ISO 8601>",
     "repository_id": "<hex>", "repository_folder": "praxisbackup"}

The nightly job finds media by looking for this file in the configured candidate locations,
so a USB disk that comes back with another drive letter is still recognised.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime

from praxisbackup import platform
from praxisbackup.engine.repository import Repository
from praxisbackup.errors import IntegrityError, PraxisError
from praxisbackup.storage import LocalBackend

LABEL_FILE = "praxisbackup-medium.json"
LABEL_FORMAT = 1


class MediumError(PraxisError):
    """No usable medium, a wrong medium, or a medium in a forbidden place."""


@dataclass(frozen=True)
class MediumLabel:
    medium_id: str
    label: str
    created: str
    repository_id: str
    repository_folder: str
    format: int = LABEL_FORMAT


@dataclass(frozen=True)
class AttachedMedium:
    root: str
    label: MediumLabel

    @property
    def repository_path(self) -> str:
        return os.path.join(self.root, self.label.repository_folder)


def read_label(root: str) -> MediumLabel | None:
    """The label of the medium at ``root``; None if there is none; IntegrityError if broken."""
    path = os.path.join(root, LABEL_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"the medium label {path} is unreadable: {exc}") from None
    try:
        if doc["format"] != LABEL_FORMAT:
            raise IntegrityError(f"the medium label {path} has unknown format {doc['format']}")
        return MediumLabel(
            medium_id=str(doc["medium_id"]),
            label=str(doc["label"]),
            created=str(doc["created"]),
            repository_id=str(doc["repository_id"]),
            repository_folder=str(doc["repository_folder"]),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise IntegrityError(f"the medium label {path} is malformed: {exc}") from None


def init_medium(
    root: str, label: str, passphrase: str, folder: str = "praxisbackup"
) -> AttachedMedium:
    """Create a repository and a label on a medium (refuses a medium that already has one)."""
    if read_label(root) is not None:
        raise MediumError(
            f"{root} is already a praxisbackup medium", code="error.medium_exists", root=root
        )
    os.makedirs(root, exist_ok=True)
    repo = Repository.init(
        LocalBackend(os.path.join(root, folder)), passphrase, label=f"medium {label}"
    )
    medium = MediumLabel(
        medium_id=secrets.token_hex(8),
        label=label,
        created=datetime.now().astimezone().isoformat(timespec="seconds"),
        repository_id=repo.config.id,
        repository_folder=folder,
    )
    tmp = os.path.join(root, LABEL_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(asdict(medium), fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(root, LABEL_FILE))
    repo.close()
    return AttachedMedium(root, medium)


def discover(candidates: list[str]) -> tuple[list[AttachedMedium], list[str]]:
    """Attached media among candidate locations (globs allowed), and problems seen."""
    found: list[AttachedMedium] = []
    problems: list[str] = []
    seen: set[str] = set()
    for pattern in candidates:
        for root in sorted(glob.glob(pattern)) or []:
            real = os.path.realpath(root)
            if real in seen or not os.path.isdir(root):
                continue
            seen.add(real)
            try:
                label = read_label(root)
            except IntegrityError as exc:
                problems.append(str(exc))
                continue
            if label is None:
                continue
            medium = AttachedMedium(root, label)
            # A label without its repository is a copied label file (or a damaged medium):
            # never chosen, so that it cannot push the real medium aside.
            if not os.path.isfile(os.path.join(medium.repository_path, "config")):
                problems.append(
                    f"{root} has the label of medium '{label.label}' but no repository "
                    "(a copied label file?); ignored"
                )
                continue
            twin = next((m for m in found if m.label.medium_id == label.medium_id), None)
            if twin is not None:
                problems.append(
                    f"medium '{label.label}' appears twice ({twin.root} and {root}); "
                    f"used {twin.root}"
                )
                continue
            found.append(medium)
    return found, problems


def same_disk(medium_path: str, source_paths: list[str]) -> list[str]:
    """Sources that live on the same physical disk as the medium (by device identity)."""
    medium_disk = platform.disk_identity(medium_path)
    return [src for src in source_paths if platform.disk_identity(src) == medium_disk]
