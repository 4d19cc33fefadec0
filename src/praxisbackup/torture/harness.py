"""Campaigns of the torture harness. Each returns a figures dict; failures carry the seed and
the steps to reproduce them."""

from __future__ import annotations

import hashlib
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.browse import walk
from praxisbackup.engine.checker import Checker
from praxisbackup.engine.forget import Policy, apply_policy
from praxisbackup.engine.pack import DATA, TRAILER_SIZE, TREE, header_span
from praxisbackup.engine.prune import prune
from praxisbackup.engine.repair import repair
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.snapshot import list_snapshots
from praxisbackup.errors import PraxisError
from praxisbackup.practice.sample import generate
from praxisbackup.storage import LocalBackend

PASSWORD = "torture-passphrase"
State = dict[str, tuple[str, int]]


def state_of(root: Path) -> State:
    out: State = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = (
                hashlib.sha256(p.read_bytes()).hexdigest(),
                p.stat().st_mtime_ns,
            )
    return out


def open_repo(path: Path, passwords: list[str]) -> tuple[Repository, str]:
    last: Exception | None = None
    for pw in passwords:
        try:
            repo = Repository.open(LocalBackend(str(path)), pw)
            repo.load_index()
            return repo, pw
        except PraxisError as exc:
            last = exc
    raise PraxisError(f"repository does not open: {last}")


def restored_state(repo: Repository, snap_id: str, src: Path, scratch: Path) -> State | None:
    snaps = {s.id: s for s in list_snapshots(repo, errors={})}
    if snap_id not in snaps:
        return None
    if scratch.exists():
        shutil.rmtree(scratch)
    Restorer(repo, snaps[snap_id], RestoreOptions(target=str(scratch))).run()
    root = scratch.joinpath(*[p for p in str(src).split("/") if p])
    return state_of(root) if root.exists() else {}


def _child(repo: Path, password: str, action: str, spec: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "praxisbackup.torture.child",
            str(repo),
            password,
            action,
            spec,
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _mutate(src: Path, rnd: random.Random, i: int) -> None:
    (src / f"neu-{i}.bin").write_bytes(rnd.randbytes(rnd.randint(1000, 300_000)))
    files = sorted(p for p in src.rglob("*") if p.is_file())
    victim = rnd.choice(files)
    with open(victim, "r+b") as fh:
        fh.seek(rnd.randint(0, max(0, victim.stat().st_size - 10)))
        fh.write(rnd.randbytes(10))


def crash_campaign(work: Path, runs: int, seed: int) -> dict[str, Any]:
    """Kill backup, prune, key change and repair at random storage steps, random instants, and
    with simulated power loss; after each: check --read-data and restore every earlier snapshot."""
    rnd = random.Random(seed)
    base = work / "crash"
    shutil.rmtree(base, ignore_errors=True)
    src = base / "praxis"
    generate(src, size_mb=3, seed=seed)
    repo_path = base / "repo"
    repo = Repository.init(LocalBackend(str(repo_path)), PASSWORD, pack_size=128 << 10)
    repo.load_index()
    snap = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    expected: dict[str, State] = {snap.id: state_of(src)}
    passwords = [PASSWORD]
    damaged = lost = 0
    failures: list[str] = []
    modes: dict[str, int] = {}
    for i in range(runs):
        op = rnd.choice(["backup", "backup", "prune", "rekey", "repair"])
        mode = rnd.choice(["step", "step", "time", "power"])
        modes[f"{op}/{mode}"] = modes.get(f"{op}/{mode}", 0) + 1
        repo, current = open_repo(repo_path, passwords)
        args: list[str] = []
        if op == "backup":
            _mutate(src, rnd, i)
            args = [str(src)]
        elif op == "prune" and len(expected) > 2:
            decisions = apply_policy(list_snapshots(repo), Policy(last=2))
            for d in decisions:
                if not d.keep:
                    repo.backend.delete("snapshots", d.snapshot.id)
                    expected.pop(d.snapshot.id, None)
        elif op == "rekey":
            new_pw = f"pw-{i}"
            args = [new_pw]
            passwords = [current, new_pw]
        source_state = state_of(src) if op == "backup" else None
        step = rnd.randint(1, 40)
        spec = {"step": str(step), "power": f"p{step}", "time": "0"}[mode]
        proc = _child(repo_path, current, op, spec, *args)
        if mode == "time":
            time.sleep(rnd.uniform(0.05, 0.8))
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=600)
        where = f"run {i}: {op} killed by {mode} {spec} (seed {seed})"
        try:
            repo, current = open_repo(repo_path, passwords)
            passwords = [current]
            result = Checker(repo).run(read_data=True)
            if not result.ok:
                damaged += 1
                failures.append(f"{where}: check failed: {[e.message for e in result.errors][:3]}")
                continue
            for snap_id, state in expected.items():
                got = restored_state(repo, snap_id, src, base / "scratch")
                if got != state:
                    lost += 1
                    failures.append(
                        f"{where}: snapshot {snap_id[:8]} {'missing' if got is None else 'differs'}"
                    )
            if source_state is not None:
                for s in list_snapshots(repo):
                    if s.id not in expected:
                        expected[s.id] = source_state
        except PraxisError as exc:
            damaged += 1
            failures.append(f"{where}: {exc}")
    return {
        "runs": runs,
        "damaged_repositories": damaged,
        "lost_snapshots": lost,
        "modes": modes,
        "snapshots_at_end": len(expected),
        "failures": failures,
    }


CORRUPTIONS = [
    "flip-pack",
    "flip-pack-header",
    "truncate-pack",
    "delete-pack",
    "flip-index",
    "delete-index",
    "flip-snapshot",
    "flip-key",
    "duplicate-pack",
    "foreign-pack",
    "replay-old-index",
]


def _pristine(
    base: Path, seed: int
) -> tuple[Path, Path, dict[str, State], dict[str, set[str]], Path]:
    src = base / "praxis"
    generate(src, size_mb=3, seed=seed)
    repo_path = base / "pristine"
    repo = Repository.init(LocalBackend(str(repo_path)), PASSWORD, pack_size=64 << 10)
    repo.load_index()
    states: dict[str, State] = {}
    first = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    states[first.id] = state_of(src)
    old_index = base / "old-index"
    old_index.mkdir()
    for f in (repo_path / "index").iterdir():
        shutil.copy(f, old_index / f.name)
    _mutate(src, random.Random(seed), 0)
    second = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    states[second.id] = state_of(src)
    prune(repo)  # supersedes the first index files: replaying one must be harmless
    pack_paths: dict[str, set[str]] = {}
    for s in list_snapshots(repo):
        root_pack = repo.index.pack_of(TREE, s.tree_id)
        if root_pack:
            pack_paths.setdefault(root_pack, set()).add("/")
        for path, node in walk(repo, s.tree_id):
            for cid in node.content:
                pack = repo.index.pack_of(DATA, cid)
                if pack:
                    pack_paths.setdefault(pack, set()).add(path)
            if node.subtree is not None:
                # A damaged folder listing is reported as the folder itself.
                pack = repo.index.pack_of(TREE, node.subtree)
                if pack:
                    pack_paths.setdefault(pack, set()).add(path)
    other = Repository.init(LocalBackend(str(base / "other")), PASSWORD, pack_size=64 << 10)
    other.load_index()
    Archiver(other, BackupOptions([str(src)])).run()
    return src, repo_path, states, pack_paths, old_index


def corruption_campaign(work: Path, injections: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    base = work / "corrupt"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    src, pristine, states, pack_paths, old_index = _pristine(base, seed)
    counts = {
        "injected": 0,
        "detected": 0,
        "harmless": 0,
        "missed": 0,
        "named_correctly": 0,
        "named_checked": 0,
        "unaffected_files": 0,
        "unaffected_intact": 0,
    }
    failures: list[str] = []
    per_kind: dict[str, int] = {}
    for j in range(injections):
        case = base / "case"
        shutil.rmtree(case, ignore_errors=True)
        shutil.copytree(pristine, case)
        kind = rnd.choice(CORRUPTIONS)
        per_kind[kind] = per_kind.get(kind, 0) + 1
        packs = sorted(p for p in (case / "data").rglob("*") if p.is_file())
        victim_pack = rnd.choice(packs)
        expected_affected: set[str] | None = None
        if kind in (
            "flip-pack",
            "flip-pack-header",
            "truncate-pack",
            "delete-pack",
            "foreign-pack",
        ):
            expected_affected = pack_paths.get(victim_pack.name, set())
        data_files = {
            "flip-index": sorted((case / "index").iterdir()),
            "delete-index": sorted((case / "index").iterdir()),
            "flip-snapshot": sorted((case / "snapshots").iterdir()),
            "flip-key": sorted((case / "keys").iterdir()),
        }
        in_header = kind == "flip-pack-header"
        if kind == "flip-pack":
            offset = rnd.randrange(max(1, victim_pack.stat().st_size - 200))
            raw = victim_pack.read_bytes()
            in_header = offset >= header_span(len(raw), raw[-TRAILER_SIZE:], "pack")[0]
            _flip(victim_pack, offset)
        elif kind == "flip-pack-header":
            _flip(victim_pack, victim_pack.stat().st_size - rnd.randint(5, 40))
        elif kind == "truncate-pack":
            victim_pack.write_bytes(
                victim_pack.read_bytes()[: rnd.randint(1, victim_pack.stat().st_size - 1)]
            )
        elif kind == "delete-pack":
            victim_pack.unlink()
        elif kind in ("flip-index", "flip-snapshot", "flip-key"):
            f = rnd.choice(data_files[kind])
            _flip(f, rnd.randrange(f.stat().st_size))
        elif kind == "delete-index":
            rnd.choice(data_files[kind]).unlink()
        elif kind == "duplicate-pack":
            (case / "data" / "00").mkdir(exist_ok=True)
            shutil.copy(victim_pack, case / "data" / "00" / ("00" + victim_pack.name[2:]))
        elif kind == "foreign-pack":
            foreign = rnd.choice(
                sorted(p for p in (base / "other" / "data").rglob("*") if p.is_file())
            )
            victim_pack.write_bytes(foreign.read_bytes())
        elif kind == "replay-old-index":
            for f in old_index.iterdir():
                shutil.copy(f, case / "index" / f.name)
        counts["injected"] += 1
        where = f"injection {j}: {kind} on {victim_pack.name[:12]} (seed {seed})"
        try:
            repo, _pw = open_repo(case, [PASSWORD])
            result = Checker(repo).run(read_data=True)
        except PraxisError:
            counts["detected"] += 1  # the repository refuses to open: damage is reported
            continue
        if not result.ok or result.warnings:
            counts["detected"] += 1
            if expected_affected is not None and not result.ok:
                named = {p for paths in result.affected.values() for p in paths}
                counts["named_checked"] += 1
                if in_header:
                    # The header is reported; the blobs are verified where the index places
                    # them (where a restore reads them), so intact files are not named.
                    correct = named <= expected_affected and any(
                        e.kind == "pack" and e.object == victim_pack.name for e in result.errors
                    )
                else:
                    correct = bool(named) and named <= expected_affected | {"/"}
                if correct:
                    counts["named_correctly"] += 1
                else:
                    failures.append(
                        f"{where}: named {sorted(named)[:3]} not within the pack's files"
                    )
            affected = {p for paths in result.affected.values() for p in paths}
            lost_snapshots = {e.object for e in result.errors if e.kind == "snapshot"}
            try:
                repair(repo)
                repo, _pw = open_repo(case, [PASSWORD])
                for snap_id, state in states.items():
                    if snap_id in lost_snapshots:
                        continue  # the injection destroyed this snapshot object itself
                    got = restored_state(repo, snap_id, src, base / "scratch") or {}
                    prefix = "/" + "/".join(p for p in str(src).split("/") if p) + "/"
                    for rel, value in state.items():
                        full = prefix + rel
                        if (
                            full in affected
                            or "/" in affected
                            or any(full.startswith(a.rstrip("/") + "/") for a in affected)
                        ):
                            continue
                        counts["unaffected_files"] += 1
                        if got.get(rel) == value:
                            counts["unaffected_intact"] += 1
                        else:
                            failures.append(f"{where}: unaffected {rel} not intact after repair")
            except PraxisError as exc:
                failures.append(f"{where}: repair failed: {exc}")
            continue
        # Nothing reported: acceptable only if everything still restores exactly.
        intact = all(
            restored_state(repo, s, src, base / "scratch") == st for s, st in states.items()
        )
        if intact:
            counts["harmless"] += 1
        else:
            counts["missed"] += 1
            failures.append(f"{where}: not detected and data differs")
    return counts | {"per_kind": per_kind, "failures": failures}


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    if not data:
        return
    data[offset % len(data)] ^= 1 << (offset % 8)
    path.write_bytes(bytes(data))
