"""``praxisbackup demo``: the whole cycle on a generated sample practice, in one command."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import click

from praxisbackup import sample
from praxisbackup.cli.context import human_size
from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.checker import Checker
from praxisbackup.engine.crypto import generate_recovery_key
from praxisbackup.engine.lock import lock_repository
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.snapshot import find_snapshot
from praxisbackup.storage import open_backend

DEMO_PASSPHRASE = "demo-passphrase"


def _compare(src: Path, restored: Path) -> tuple[int, list[str]]:
    """Files compared, and differences in content or modification time."""
    compared = 0
    problems = []
    for path in src.rglob("*"):
        if not path.is_file():
            continue
        other = restored / path.relative_to(src)
        a, b = path.stat(), other.stat() if other.exists() else None
        if b is None:
            problems.append(f"missing: {other}")
        elif a.st_mtime_ns != b.st_mtime_ns:
            problems.append(f"modification time differs: {other}")
        elif path.read_bytes() != other.read_bytes():
            problems.append(f"content differs: {other}")
        compared += 1
    return compared, problems


@click.command()
@click.option(
    "--dir", "workdir", default="demo-output", show_default=True, help="Folder for the demo."
)
@click.option("--size-mb", default=64, show_default=True, help="Size of the sample practice data.")
def demo(workdir: str, size_mb: int) -> None:
    """Back up a generated sample practice to a local medium folder, verify and restore it."""
    base = Path(workdir).resolve()
    if base.exists():
        shutil.rmtree(base)
    src, medium, target = base / "praxis", base / "medium" / "praxisbackup", base / "restore"
    say = click.echo
    say(f"1. Generating a sample practice ({size_mb} MiB) in {src} ...")
    st = sample.generate(src, size_mb=size_mb)
    say(
        f"   {st.files} files, {human_size(st.bytes)} "
        "(CGM M1 PRO folders, database files, archive, scans)"
    )

    os.environ.setdefault("PRAXISBACKUP_KDF_N", str(1 << 15))  # quick demo; real use: default
    say(f"2. Creating an encrypted repository on the medium folder {medium}")
    repo = Repository.init(open_backend(str(medium)), DEMO_PASSPHRASE, label="demo")
    recovery = generate_recovery_key()
    repo.add_key(recovery, "recovery key")
    say(f"   passphrase: {DEMO_PASSPHRASE!r}   recovery key: {recovery}")

    for night, label in ((1, "first night: full backup"), (2, "second night after a day of work")):
        if night == 2:
            sample.mutate(src, seed=night)
        started = time.monotonic()
        with lock_repository(repo, exclusive=False, command="backup"):
            repo.load_index()
            result = Archiver(repo, BackupOptions([str(src)], tags=[f"nacht-{night}"])).run()
        s = result.snapshot.summary
        say(
            f"3.{night} Backup ({label}): snapshot {result.snapshot.short_id}, "
            f"{s.total_files} files, {human_size(s.total_bytes)}; "
            f"read {human_size(s.bytes_read)}, stored {human_size(s.data_added_stored)} new "
            f"in {time.monotonic() - started:.1f} s"
        )

    say("4. Verifying: reading every pack back from the medium and checking every chunk ...")
    check = Checker(repo).run(read_data=True)
    say(
        f"   {check.packs_read} packs, {check.blobs_read} chunks, {human_size(check.bytes_read)}: "
        + ("no errors" if check.ok else f"{len(check.errors)} ERRORS")
    )

    say(f"5. Restoring the latest snapshot to {target} and reading it back ...")
    repo.load_index()
    snap = find_snapshot(repo, "latest")
    restored = Restorer(repo, snap, RestoreOptions(target=str(target), verify=True)).run()
    restored_src = target.joinpath(
        *[p for p in str(src).replace("\\", "/").split("/") if p and ":" not in p]
    )
    compared, problems = _compare(src, restored_src)
    say(
        f"   restored {restored.files} files ({human_size(restored.bytes)}), "
        f"verified {restored.verified_files}"
    )
    say(
        f"   compared with the original: {compared} files, {len(problems)} differences "
        "(content and modification times)"
    )
    for p in problems[:10]:
        say(f"   ! {p}")
    ok = check.ok and restored.ok and not problems
    say(
        "RESULT: "
        + ("OK - backup, verification and restore are complete and exact." if ok else "FAILED")
    )
    if not ok:
        raise SystemExit(2)
