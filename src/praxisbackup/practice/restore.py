"""Restoring the practice (seed S13, S14): only the vendor's allowed folders and files, the
existing ones renamed to ``_Original`` first (never overwritten, never merged), services
stopped, file dates exact, the result verified against the snapshot.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from praxisbackup.engine.browse import load_tree, walk_from
from praxisbackup.engine.paths import split_source
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer, RestoreResult
from praxisbackup.engine.snapshot import Snapshot
from praxisbackup.engine.tree import DIR
from praxisbackup.errors import PraxisError, UnsafeTargetError
from praxisbackup.platform.targetdir import links_on_path
from praxisbackup.practice import profiles

ORIGINAL = "_Original"


class RestorePlanError(PraxisError):
    """The practice restore cannot be planned (no M1 data in the snapshot, bad mapping)."""


@dataclass
class PlannedItem:
    snapshot_path: str  # e.g. /C/CompuMED/M1/Bin
    target: str  # where it goes
    rename_to: str | None  # existing target is renamed to this first
    kind: str  # dir / file
    required: bool


@dataclass
class PracticeRestorePlan:
    snapshot: Snapshot
    items: list[PlannedItem]
    missing_in_snapshot: list[str]
    fingerprint_backup: str  # newest file date under M1/Bin in the snapshot
    fingerprint_installed: str  # the same on the target
    target_root: str = ""  # restore never writes through a link below it (unless allowed)


@dataclass
class PracticeRestoreResult:
    plan: PracticeRestorePlan
    renamed: list[tuple[str, str]] = field(default_factory=list)
    restore: RestoreResult | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.restore is not None and self.restore.ok


def _snapshot_root_of_compumed(repo: Repository, snap: Snapshot) -> str:
    """Snapshot path of the folder that holds CompuMED (e.g. ``/C`` or ``/srv/server``)."""
    for source in snap.paths:
        comps = split_source(source)
        if comps and comps[-1].casefold() == "compumed":
            return "/" + "/".join(comps[:-1])
    raise RestorePlanError(f"snapshot {snap.short_id} holds no CompuMED folder")


def _lookup_ci(
    repo: Repository, snap: Snapshot, base: str, parts: list[str]
) -> tuple[str, str] | None:
    """(snapshot path, kind) of base/parts matched case-insensitively inside the snapshot.

    Follows one folder listing per path component (never walks whole subtrees)."""
    components = [p for p in base.split("/") if p]
    tree: bytes | None = snap.tree_id
    path, kind = "", DIR
    for index, part in enumerate(components + parts):
        if tree is None:
            return None
        exact = index < len(components)
        nodes = load_tree(repo, tree, path or "/")
        match = next(
            (
                n
                for n in nodes
                if (n.name == part if exact else n.name.casefold() == part.casefold())
            ),
            None,
        )
        if match is None:
            return None
        path, kind = f"{path}/{match.name}", match.type
        tree = match.subtree if match.type == DIR else None
    return path or "/", kind


def _newest_mtime_snapshot(repo: Repository, snap: Snapshot, path: str) -> str:
    newest = 0
    for _p, node in walk_from(repo, snap, path):
        if node.type == "file":
            newest = max(newest, node.mtime_ns)
    return datetime.fromtimestamp(newest / 1e9).isoformat(timespec="seconds") if newest else ""


def _newest_mtime_disk(path: str) -> str:
    newest = 0.0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                continue
    return datetime.fromtimestamp(newest).isoformat(timespec="seconds") if newest else ""


def original_name(path: str, now: datetime) -> str:
    """``X_Original``, or ``X_Original_<date-time>`` if that exists too."""
    candidate = path + ORIGINAL
    if not os.path.lexists(candidate):
        return candidate
    return f"{candidate}_{now.strftime('%Y%m%d-%H%M%S')}"


def plan_restore(
    repo: Repository, snap: Snapshot, target_root: str, now: datetime
) -> PracticeRestorePlan:
    """Which allowed items come back where, and what is renamed first."""
    base = _snapshot_root_of_compumed(repo, snap)
    u9 = _lookup_ci(repo, snap, base, ["CompuMED", "M1", "Orant", "DB_M1", "Database"])
    variant = profiles.VARIANT_U9 if u9 else profiles.VARIANT_U7
    has_ifap = _lookup_ci(repo, snap, base, ["ifapDB"]) is not None
    items, missing = [], []
    seen_groups: set[str] = set()
    for item in profiles.essential_items(variant, has_ifap):
        found = _lookup_ci(repo, snap, base, item.parts)
        if found is None:
            if item.required and not item.group:
                missing.append(item.path)
            continue
        if item.group:
            seen_groups.add(item.group)
        spath, kind = found
        rel = spath[len(base) + 1 :].split("/")
        real = profiles.resolve_ci(target_root, rel[:-1])
        parent = real if real is not None else os.path.join(target_root, *rel[:-1])
        target = os.path.join(parent, rel[-1])
        existing = profiles.resolve_ci(parent, [rel[-1]]) if os.path.isdir(parent) else None
        rename = original_name(existing, now) if existing else None
        items.append(
            PlannedItem(
                spath, existing or target, rename, "dir" if kind == DIR else "file", item.required
            )
        )
    bin_path = _lookup_ci(repo, snap, base, ["CompuMED", "M1", "Bin"])
    installed_bin = profiles.resolve_ci(target_root, ["CompuMED", "M1", "Bin"])
    return PracticeRestorePlan(
        snapshot=snap,
        items=items,
        missing_in_snapshot=missing,
        fingerprint_backup=_newest_mtime_snapshot(repo, snap, bin_path[0]) if bin_path else "",
        fingerprint_installed=_newest_mtime_disk(installed_bin) if installed_bin else "",
        target_root=target_root,
    )


def links_in_plan(plan: PracticeRestorePlan) -> list[tuple[str, str]]:
    """Links (symlinks, junctions) on the way to any planned item, as (link, where it points)."""
    found = {
        link
        for item in plan.items
        for link in links_on_path(plan.target_root, os.path.dirname(item.target))
    }
    return sorted(found)


def _same_path(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def link_allowed(link: str, follow_links: list[str] | None) -> bool:
    return any(_same_path(link, allowed) for allowed in follow_links or [])


def refused_links(
    plan: PracticeRestorePlan, follow_links: list[str] | None
) -> list[tuple[str, str]]:
    """Links in the plan that the restore would refuse (not listed in ``follow_links``)."""
    return [(link, to) for link, to in links_in_plan(plan) if not link_allowed(link, follow_links)]


def execute(
    repo: Repository, plan: PracticeRestorePlan, follow_links: list[str] | None = None
) -> PracticeRestoreResult:
    """Rename the existing items, then restore exactly the planned items, verified. A link
    (symlink, junction) below the target root is never followed unless listed in
    ``follow_links``: nothing is renamed or written through it."""
    result = PracticeRestoreResult(plan)
    started = time.monotonic()
    refused = refused_links(plan, follow_links)
    if refused:
        raise UnsafeTargetError(*refused[0])
    for item in plan.items:
        if item.rename_to and os.path.lexists(item.target):
            os.rename(item.target, item.rename_to)
            result.renamed.append((item.target, item.rename_to))
    targets = {item.snapshot_path: item.target for item in plan.items}
    options = RestoreOptions(
        target=plan.target_root or (os.path.dirname(plan.items[0].target) if plan.items else "."),
        includes=list(targets),
        overwrite="never",
        verify=True,
        path_map=path_mapper(targets),
        follow_links=list(follow_links or []),
    )
    result.restore = Restorer(repo, plan.snapshot, options).run()
    result.seconds = round(time.monotonic() - started, 2)
    return result


def path_mapper(targets: dict[str, str], stop_at: str | None = None) -> Callable[[str], str]:
    """Map snapshot paths to targets; ancestors of items map to their real parent folders
    (with ``stop_at``, every ancestor above that folder maps to the folder itself)."""
    ancestors: dict[str, str] = {}
    for spath, target in targets.items():
        s_parts, t = spath.split("/"), target
        while len(s_parts) > 2:
            s_parts = s_parts[:-1]
            t = os.path.dirname(t)
            if stop_at is not None and len(t) < len(stop_at):
                t = stop_at
            ancestors.setdefault("/".join(s_parts), t)

    def map_path(spath: str) -> str:
        for prefix, target in targets.items():
            if spath == prefix or spath.startswith(prefix + "/"):
                rest = spath[len(prefix) :].lstrip("/")
                return os.path.join(target, *rest.split("/")) if rest else target
        mapped = ancestors.get(spath)
        if mapped is None:
            raise RestorePlanError(f"no target for {spath}")
        return mapped

    return map_path
