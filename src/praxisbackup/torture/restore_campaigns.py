"""Restore campaigns of the torture harness (issue #11).

* **Restore crashes**: ``restore`` (every overwrite mode, into an empty target or over a
  complete restore of the previous snapshot) and the practice restore (``restore-practice``
  between stopping and starting the services) run in a child process that is killed with
  SIGKILL at a random blob read or a random instant. Then: no file under a real name may be
  half-written (each holds exactly the content of some version of some file), and the next
  run must complete the target exactly (content and modification time), verified.
* **Malicious repositories**: repositories crafted with the project's own code (duplicate and
  unsorted names, links, names with NUL or ``..``, device nodes, FIFOs, setuid files, absurd
  ids, sizes and times, very deep trees, junk snapshot/pack/lock/index files, garbage and
  expensive key slots) go through restore, ls, find, stats, snapshots and check. Nothing may be
  written outside the target, no special file may appear without ``--special-files``, and every
  command must end with a documented exit code and no traceback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from praxisbackup.engine import crypto
from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.restorewindow import TEMP_SUFFIX
from praxisbackup.engine.snapshot import find_snapshot
from praxisbackup.engine.tree import BLOCKDEV, CHARDEV, FIFO, HARDLINK, Node
from praxisbackup.errors import PraxisError
from praxisbackup.practice.restore import execute, plan_restore
from praxisbackup.practice.sample import generate
from praxisbackup.storage import LocalBackend
from praxisbackup.torture.crafted import NS, Crafter

PASSWORD = "torture-passphrase"
DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4, 5}


# -- restore crashes ----------------------------------------------------------------------------
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and not p.name.endswith(TEMP_SUFFIX)
    }


def _state(root: Path) -> dict[str, tuple[str, int]]:
    return {rel: (_digest(p), p.stat().st_mtime_ns) for rel, p in _files(root).items()}


def _child(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "praxisbackup.torture.child", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _mutate(src: Path, rnd: random.Random) -> None:
    files = sorted(p for p in src.rglob("*") if p.is_file())
    for victim in rnd.sample(files, min(8, len(files))):
        victim.write_bytes(rnd.randbytes(rnd.randint(1000, 200_000)))
    big = src / "CompuMED/M1/Orant/DB_M1/Database/GROSS.DBF"
    with open(big, "r+b") as fh:
        fh.seek(rnd.randrange(big.stat().st_size - 100))
        fh.write(rnd.randbytes(100))


def restore_crash_campaign(work: Path, runs: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    base = work / "restore-crash"
    shutil.rmtree(base, ignore_errors=True)
    src = base / "server"
    generate(src, size_mb=3, seed=seed)
    # More than SEGMENT_CHUNKS chunks: written by several jobs in parallel.
    (src / "CompuMED/M1/Orant/DB_M1/Database/GROSS.DBF").write_bytes(rnd.randbytes(10 << 20))
    old_src = base / "server-v1"
    shutil.copytree(src, old_src, symlinks=True)
    repo_path = base / "repo"
    repo = Repository.init(LocalBackend(str(repo_path)), PASSWORD, pack_size=512 << 10)
    repo.load_index()
    sources = [str(src / "CompuMED"), str(src / "ifapDB")]
    first = Archiver(repo, BackupOptions(sources)).run().snapshot
    _mutate(src, rnd)
    Archiver(repo, BackupOptions(sources)).run()
    versions = {
        (_digest(p), p.stat().st_mtime_ns) for root in (src, old_src) for p in _files(root).values()
    }
    latest = {k: v for k, v in _state(src).items() if k.startswith(("CompuMED/", "ifapDB/"))}
    command = [sys.executable, "-m", "praxisbackup.torture.child", str(repo_path), PASSWORD]
    full = subprocess.run(
        [*command, "restore", "0", str(base / "full"), "never"],
        capture_output=True,
        text=True,
        check=True,
    )
    total_reads = int(full.stdout.split("reads=")[1].split()[0])
    practice_run = subprocess.run(
        [*command, "restore-practice", "0", str(base / "full-practice")],
        capture_output=True,
        text=True,
        check=True,
    )
    # Kill points of the practice restore lie after its planning (which only reads trees).
    practice_reads = int(practice_run.stdout.split("reads=")[1].split()[0])
    plan_reads = int(practice_run.stdout.split("plan_reads=")[1].split()[0])
    counts = {
        "runs": runs,
        "killed": 0,
        "half_written": 0,
        "not_completed": 0,
        "files_checked": 0,
        "temp_files_left": 0,
    }
    modes: dict[str, int] = {}
    failures: list[str] = []
    for i in range(runs):
        kind = rnd.choice(["restore", "restore", "restore-practice"])
        how = rnd.choice(["read", "read", "time"])
        overwrite = rnd.choice(["never", "if-changed", "always"])
        over_old = rnd.random() < 0.5
        label = f"{kind}/{overwrite if kind == 'restore' else 'practice'}/{how}" + (
            "/over-older" if over_old else "/empty"
        )
        modes[label] = modes.get(label, 0) + 1
        target = base / f"target-{i}"
        if kind == "restore" and over_old:
            Restorer(repo, first, RestoreOptions(target=str(target), special=True)).run()
        if kind == "restore-practice" and over_old:
            for folder in ("CompuMED", "ifapDB"):
                shutil.copytree(old_src / folder, target / folder, symlinks=True)
        low, high = (1, total_reads) if kind == "restore" else (plan_reads + 1, practice_reads)
        spec = f"r{rnd.randint(low, high)}" if how == "read" else "0"
        args = [str(repo_path), PASSWORD, kind, spec, str(target)]
        proc = _child(args + ([overwrite] if kind == "restore" else []))
        if how == "time":
            try:
                proc.wait(timeout=rnd.uniform(0.3, 3.0))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=600)
        counts["killed"] += proc.returncode == -signal.SIGKILL
        where = f"run {i}: {label} {spec} (seed {seed})"
        # 1. Nothing under a real name is half-written.
        present = _files(target) if target.exists() else {}
        counts["files_checked"] += len(present)
        partial = [
            rel for rel, p in present.items() if (_digest(p), p.stat().st_mtime_ns) not in versions
        ]
        counts["temp_files_left"] += len(list(target.rglob(f"*{TEMP_SUFFIX}")))
        if partial:
            counts["half_written"] += len(partial)
            failures.append(f"{where}: half-written (or undated) under a real name: {partial[:3]}")
        # 2. The next run completes the target exactly.
        try:
            repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
            repo.load_index()
            snap = find_snapshot(repo, "latest")
            if kind == "restore":
                result = Restorer(
                    repo, snap, RestoreOptions(str(target), overwrite="if-changed", verify=True)
                ).run()
                root = target.joinpath(*[p for p in str(src).split("/") if p])
                got = _state(root)
                ok = result.ok and all(got.get(rel) == value for rel, value in latest.items())
            else:
                plan = plan_restore(repo, snap, str(target), datetime.now())
                practice = execute(repo, plan)
                ok = practice.ok and all(
                    _state(target / item) == _state(src / item)
                    for item in ("CompuMED/M1/Bin", "CompuMED/M1/Orant/DB_M1/Database")
                )
        except PraxisError as exc:
            ok = False
            failures.append(f"{where}: the next run failed: {exc}")
        if not ok:
            counts["not_completed"] += 1
            failures.append(f"{where}: the next run did not complete the target exactly")
        shutil.rmtree(target, ignore_errors=True)
    return counts | {
        "modes": modes,
        "reads": {"restore": total_reads, "practice": practice_reads, "planning": plan_reads},
        "failures": failures,
    }


# -- malicious repositories ---------------------------------------------------------------------
@dataclass
class Case:
    name: str
    build: Callable[[Repository, Crafter, Path], None]
    #: Allowed exit codes of ``restore`` (any documented code if None).
    restore_codes: set[int] | None = None


def _snapshot(c: Crafter, entries: list[Node], sort: bool = True) -> None:
    c.snapshot([c.dir("praxis", entries, sort=sort)])


def _raw(c: Crafter, docs: list[dict[str, Any]], sort: bool = True) -> None:
    folder = c.dir("praxis", [])
    folder.subtree = c.raw_tree(docs, sort)
    c.snapshot([folder])


def _field(field: str, value: object) -> Callable[[Repository, Crafter, Path], None]:
    def build(repo: Repository, c: Crafter, outside: Path) -> None:
        _raw(c, [c.file("akte.pdf", b"Befund").to_doc() | {field: value}])

    return build


def _deep(repo: Repository, c: Crafter, outside: Path) -> None:
    node = c.file("tief.txt", b"ganz unten")
    for _ in range(1500):  # deeper than Python's recursion limit
        node = c.dir("d", [node])
    _snapshot(c, [node])


def _plant(kind: str, raw: bytes, name: str | None = None) -> Callable[..., None]:
    def build(repo: Repository, c: Crafter, outside: Path) -> None:
        _snapshot(c, [c.file("gut.txt", b"intakt")])
        target = name or crypto.storage_id(raw)
        folder = Path(repo.backend.location) / kind
        if kind == "data":
            folder = folder / target[:2]
        (folder / target).write_bytes(raw)

    return build


def _slot(n: int, r: int, p: int) -> bytes:
    salt = base64.b64encode(os.urandom(32)).decode()
    doc = {"version": 1, "kdf": {"name": "scrypt", "n": n, "r": r, "p": p, "salt": salt}}
    doc["data"] = base64.b64encode(os.urandom(120)).decode()
    return json.dumps(doc).encode()


def _future_snapshot(repo: Repository, c: Crafter, outside: Path) -> None:
    _snapshot(c, [c.file("gut.txt", b"intakt")])
    from praxisbackup.engine.objects import ObjectKind  # noqa: PLC0415

    doc = {"time": "+99999-01-01T00:00:00+00:00", "host": "h", "user": "u", "paths": ["/x"]}
    doc |= {"tree": "00" * 32}
    repo.write_object("snapshots", ObjectKind.SNAPSHOT, json.dumps(doc).encode())


CASES = [
    Case(
        "a link and a folder of one name",
        lambda r, c, o: _snapshot(
            c, [c.symlink("a", str(o)), c.dir("a", [c.file("x.txt", b"evil")])], sort=False
        ),
        {2},
    ),
    Case(
        "unsorted names",
        lambda r, c, o: _snapshot(c, [c.file("b", b"1"), c.file("a", b"2")], sort=False),
        {2},
    ),
    Case(
        "a link and a file of one name",
        lambda r, c, o: _snapshot(
            c, [c.symlink("a", str(o / "f")), c.file("a", b"evil")], sort=False
        ),
        {2},
    ),
    Case("a name with NUL", _field("name", "a\x00b"), {2}),
    Case("the name ..", _field("name", ".."), {2}),
    Case("a name with a slash", _field("name", "../../x"), {2}),
    Case(
        "absolute links and a hard link naming one",
        lambda r, c, o: _snapshot(
            c,
            [
                c.symlink("l", str(o)),
                Node(
                    "h",
                    HARDLINK,
                    mode=0o644,
                    content=c.file("x", b"copy").content,
                    size=4,
                    link="/praxis/l",
                    mtime_ns=NS,
                    atime_ns=NS,
                ),
            ],
        ),
        {0, 1},
    ),
    Case(
        "device nodes, a FIFO and setuid files",
        lambda r, c, o: _snapshot(
            c,
            [
                Node("disk", BLOCKDEV, mode=0o666, rdev=os.makedev(8, 0), mtime_ns=NS),
                Node("mem", CHARDEV, mode=0o666, rdev=os.makedev(1, 1), mtime_ns=NS),
                Node("pipe", FIFO, mode=0o666, mtime_ns=NS),
                c.file("su", b"#!/bin/sh\n", mode=0o6755, uid=0, gid=0),
            ],
        ),
        {1},
    ),
    Case("a negative group id", _field("gid", -1), {2}),
    Case("a user id over 32 bits", _field("uid", 1 << 40), {2}),
    Case("a time in the year 3 000 000", _field("mtime_ns", 10**26), {2}),
    Case("a negative size", _field("size", -1), {2}),
    Case("a size its content cannot fill", _field("size", 10**12), {2}),
    Case("a tree 1500 folders deep", _deep, {0}),
    Case("a junk snapshot file", _plant("snapshots", os.urandom(300)), {0}),
    Case("an empty snapshot file", _plant("snapshots", b"", "0" * 64), {0}),
    Case("a snapshot from the year 99999", _future_snapshot, {0}),
    Case("a junk pack", _plant("data", os.urandom(5000)), {0}),
    Case("a junk lock", _plant("locks", os.urandom(100)), {0}),
    Case("a junk index file", _plant("index", os.urandom(400)), {5}),
    Case("a garbage key slot", _plant("keys", os.urandom(200)), {0}),
    Case("a key slot asking for 128 GiB", _plant("keys", _slot(1 << 24, 64, 1)), {0}),
    Case("a key slot asking for 32 x the work", _plant("keys", _slot(1 << 16, 8, 64)), {0}),
]
COMMANDS = [["snapshots"], ["ls", "-l", "latest"], ["find", "*"], ["stats"], ["check"]]


def _scan(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below ``root`` with its lstat, through directory descriptors and without
    recursion (crafted trees are deeper than Python's recursion limit and PATH_MAX)."""
    if not root.is_dir():
        return
    stack = [(os.open(root, os.O_RDONLY | os.O_DIRECTORY), str(root))]
    while stack:
        fd, path = stack.pop()
        try:
            with os.scandir(fd) as it:
                entries = list(it)
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                yield f"{path}/{entry.name}", st
                if stat.S_ISDIR(st.st_mode):
                    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                    stack.append((os.open(entry.name, flags, dir_fd=fd), f"{path}/{entry.name}"))
        finally:
            os.close(fd)


def _special_files(root: Path) -> list[str]:
    found = []
    for path, st in _scan(root):
        mode = st.st_mode
        device = stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)
        if device or (stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID)):
            found.append(path)
    return found


def _remove(path: Path) -> None:
    """rm -rf (shutil.rmtree recurses: crafted trees are deeper than it can go)."""
    subprocess.run(["rm", "-rf", "--", str(path)], check=False)


def malicious_campaign(work: Path, seed: int) -> dict[str, Any]:
    from praxisbackup.cli.main import cli  # noqa: PLC0415 - the real command line, in-process

    base = work / "malicious"
    _remove(base)
    runner = CliRunner()
    counts = {"cases": 0, "handled": 0, "commands": 0, "outside_writes": 0}
    counts |= {"tracebacks": 0, "special_created": 0}
    failures: list[str] = []
    open_seconds = 0.0
    for number, case in enumerate(CASES):
        counts["cases"] += 1
        root = base / f"case-{number}"
        outside = root / "outside"
        outside.mkdir(parents=True)
        sentinel = outside / "sentinel"
        sentinel.write_bytes(b"untouched")
        repo_path = root / "repo"
        repo = Repository.init(LocalBackend(str(repo_path)), PASSWORD)
        repo.load_index()
        crafter = Crafter(repo)
        case.build(repo, crafter, outside)
        crafter.close()
        env = {"PRAXISBACKUP_REPOSITORY": str(repo_path), "PRAXISBACKUP_PASSWORD": PASSWORD}
        target = root / "target"
        problems = []
        started = time.monotonic()
        results = [runner.invoke(cli, ["restore", "latest", "--target", str(target)], env=env)]
        open_seconds = max(open_seconds, time.monotonic() - started)
        results += [runner.invoke(cli, args, env=env) for args in COMMANDS]
        counts["commands"] += len(results)
        for args, res in zip([["restore"], *COMMANDS], results, strict=True):
            text = res.output
            if res.exception is not None and not isinstance(res.exception, SystemExit):
                counts["tracebacks"] += 1
                problems.append(f"{args[0]}: {type(res.exception).__name__}: {res.exception}")
            elif "Traceback" in text or res.exit_code not in DOCUMENTED_EXIT_CODES:
                counts["tracebacks"] += 1
                problems.append(f"{args[0]}: exit {res.exit_code}: {text.strip()[-200:]}")
        if case.restore_codes is not None and results[0].exit_code not in case.restore_codes:
            problems.append(f"restore exit {results[0].exit_code}, expected {case.restore_codes}")
        if sorted(outside.iterdir()) != [sentinel] or sentinel.read_bytes() != b"untouched":
            counts["outside_writes"] += 1
            problems.append("something was written outside the target")
        special = _special_files(target)
        if special:
            counts["special_created"] += len(special)
            problems.append(f"special files created without --special-files: {special[:3]}")
        if problems:
            failures.append(f"{case.name} (seed {seed}): {'; '.join(problems)}")
        else:
            counts["handled"] += 1
        _remove(root)
    return counts | {"slowest_restore_seconds": round(open_seconds, 2), "failures": failures}
