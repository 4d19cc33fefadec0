"""A restore never writes outside its target, never leaves a half-written file under a real
name, restores special entries only when asked, and verifies what it kept (issue #11)."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import PASSWORD, reopen, run_cli, tree_state
from praxisbackup.engine import target as target_module
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.restorewindow import TEMP_SUFFIX
from praxisbackup.engine.snapshot import find_snapshot
from praxisbackup.engine.tree import decode_tree
from praxisbackup.errors import IntegrityError, UnsafeTargetError
from praxisbackup.platform import targetdir
from praxisbackup.storage import LocalBackend
from praxisbackup.torture.crafted import Crafter

MODES = ["never", "if-changed", "always"]


def init_repo(path: Path) -> Repository:
    repo = Repository.init(LocalBackend(str(path)), PASSWORD)
    repo.load_index()
    return repo


def snapshot_root(target: Path, src: Path) -> Path:
    return target.joinpath(*[p for p in str(src).split("/") if p])


def backup_cli(repo: Path, src: Path) -> str:
    out = run_cli("--json", "backup", str(src), repo=repo, check=True)
    return str(json.loads(out.stdout)["snapshot"]["id"])


@pytest.fixture(params=["threads", "processes"])
def writers(request: pytest.FixtureRequest) -> list[str]:
    """Restore options: files written by threads of the restoring process, or by worker
    processes that receive the target's open folders (what large restores use)."""
    return [] if request.param == "threads" else ["--processes", "2"]


@pytest.fixture(params=["openat", "checked-paths"])
def folder_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run in-process restores with the POSIX descriptor walk and with the path-checking
    implementation Windows uses (both on this real file system)."""
    if request.param == "checked-paths":
        monkeypatch.setattr(
            target_module, "open_root", lambda p: targetdir.PathDir.root(p, windows_names=False)
        )
    return str(request.param)


# -- trees with duplicate or unsorted names ---------------------------------------------------
def test_decoding_rejects_duplicate_unsorted_and_out_of_range_entries(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    c = Crafter(repo)
    link = c.symlink("a", "/outside")
    folder = c.dir("a", [])
    ok = c.file("b", b"x")

    def raw(docs: list[dict[str, object]]) -> bytes:
        return json.dumps({"nodes": docs}).encode()

    with pytest.raises(IntegrityError, match="listed twice"):
        decode_tree(raw([link.to_doc(), folder.to_doc()]), "tree")
    with pytest.raises(IntegrityError, match="out of order"):
        decode_tree(raw([ok.to_doc(), folder.to_doc()]), "tree")
    for field, value in [
        ("name", "a\x00b"),
        ("gid", -1),
        ("uid", 1 << 40),
        ("mtime_ns", 10**30),
        ("mode", 0o170000),
        ("size", -5),
        ("target", "x\x00y"),
        ("subtree", "ab"),
    ]:
        with pytest.raises(IntegrityError, match="malformed"):
            decode_tree(raw([folder.to_doc() | {field: value}]), "tree")
    assert [n.name for n in decode_tree(raw([folder.to_doc(), ok.to_doc()]), "tree")] == ["a", "b"]
    c.close()


@pytest.mark.parametrize("mode", MODES)
def test_a_link_and_a_folder_of_one_name_cannot_write_outside(tmp_path: Path, mode: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = init_repo(tmp_path / "repo")
    c = Crafter(repo)
    evil = c.dir(
        "praxis",
        [c.symlink("a", str(outside)), c.dir("a", [c.file("planted.txt", b"evil")])],
        sort=False,
    )
    snap = c.snapshot([evil])
    target = tmp_path / "target"
    out = run_cli(
        "restore", snap, "--target", str(target), "--overwrite", mode, repo=tmp_path / "repo"
    )
    assert out.returncode == 2, out.stderr
    assert "listed twice" in out.stderr
    assert list(outside.iterdir()) == []
    one = run_cli(
        "restore-file",
        snap,
        "/praxis/a/planted.txt",
        "--to",
        str(tmp_path / "one"),
        repo=tmp_path / "repo",
    )
    assert one.returncode != 0 and "Traceback" not in one.stderr
    assert list(outside.iterdir()) == []


# -- links planted inside the target ----------------------------------------------------------
@pytest.fixture
def backed_up(tmp_path: Path) -> tuple[Path, Path, str]:
    src = tmp_path / "praxis"
    (src / "CompuMED" / "M1" / "Bin").mkdir(parents=True)
    for i in range(5):
        (src / "CompuMED" / "M1" / "Bin" / f"prog{i}.dll").write_bytes(os.urandom(5000))
    (src / "brief.txt").write_text("Sehr geehrte Frau Müller")
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    return repo, src, backup_cli(repo, src)


@pytest.mark.parametrize("mode", MODES)
def test_a_link_planted_in_the_target_is_refused_and_named(
    backed_up: tuple[Path, Path, str], tmp_path: Path, mode: str, writers: list[str]
) -> None:
    repo, src, snap = backed_up
    target = tmp_path / "target"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    inside = snapshot_root(target, src)
    inside.mkdir(parents=True)
    os.symlink(elsewhere, inside / "CompuMED")
    out = run_cli(
        "restore", snap, "--target", str(target), "--overwrite", mode, *writers, repo=repo
    )
    assert out.returncode == 2, out.stderr
    assert f"{inside / 'CompuMED'} is a link (to {elsewhere})" in out.stderr
    assert list(elsewhere.iterdir()) == []
    # Everything not below the link was restored.
    assert (inside / "brief.txt").read_text() == "Sehr geehrte Frau Müller"
    assert "Traceback" not in out.stderr


def test_a_link_as_first_component_and_restore_file_are_refused(
    backed_up: tuple[Path, Path, str], tmp_path: Path
) -> None:
    repo, src, snap = backed_up
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    first = str(src).split("/")[1]
    os.symlink(elsewhere, target / first)
    out = run_cli("restore", snap, "--target", str(target), repo=repo)
    assert out.returncode == 2 and f"{target / first} is a link" in out.stderr
    # restore-file puts the file directly into --to; a link planted under its name is not
    # written through.
    one = tmp_path / "one"
    one.mkdir()
    os.symlink(elsewhere / "prog1.dll", one / "prog1.dll")
    single = run_cli(
        "restore-file", snap, f"{src}/CompuMED/M1/Bin/prog1.dll", "--to", str(one), repo=repo
    )
    assert single.returncode != 0 and "Traceback" not in single.stderr
    assert list(elsewhere.iterdir()) == []


def test_an_allowed_link_is_followed(
    backed_up: tuple[Path, Path, str], tmp_path: Path, folder_impl: str
) -> None:
    repo_path, src, snap_id = backed_up
    repo = reopen(repo_path)
    target = tmp_path / "target"
    inside = snapshot_root(target, src)
    inside.mkdir(parents=True)
    other_drive = tmp_path / "D" / "CompuMED"
    other_drive.mkdir(parents=True)
    os.symlink(other_drive, inside / "CompuMED")
    snap = find_snapshot(repo, snap_id)
    refused = Restorer(repo, snap, RestoreOptions(target=str(target))).run()
    assert [e.path for e in refused.errors] == [str(inside / "CompuMED")]
    assert not (other_drive / "M1").exists()
    allowed = Restorer(
        repo,
        snap,
        RestoreOptions(target=str(target), follow_links=[str(inside / "CompuMED")], verify=True),
    ).run()
    assert allowed.ok, allowed.errors
    assert len(list((other_drive / "M1" / "Bin").iterdir())) == 5
    # The five programs written now and brief.txt, kept from the first run, are verified.
    assert allowed.verified_files == 6 and allowed.existing_kept == [f"{src}/brief.txt"]


def test_a_link_swapped_in_for_a_folder_is_not_followed_when_finishing(
    backed_up: tuple[Path, Path, str], tmp_path: Path, folder_impl: str
) -> None:
    """A folder replaced by a link after the restore created it (an attacker racing the
    restore) is not used for the folder's metadata or the verification."""
    repo_path, src, snap_id = backed_up
    repo = reopen(repo_path)
    target = tmp_path / "target"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chmod(elsewhere, 0o700)
    restorer = Restorer(
        repo, find_snapshot(repo, snap_id), RestoreOptions(target=str(target), verify=True)
    )
    bin_dir = snapshot_root(target, src) / "CompuMED" / "M1" / "Bin"
    original_finish = restorer._finish_dirs

    def swap_then_finish() -> None:
        os.rename(bin_dir, bin_dir.with_name("Bin-moved"))
        os.symlink(elsewhere, bin_dir)
        restorer.target.close()  # drop open folders as a long restore would
        restorer._target = target_module.TargetTree(str(target))
        original_finish()

    restorer._finish_dirs = swap_then_finish  # type: ignore[method-assign]
    result = restorer.run()
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o700
    assert any("is a link" in e.reason for e in result.errors)
    assert any("is a link" in f.reason for f in result.verify_failures)


def test_windows_names_and_reparse_points_are_recognised() -> None:
    for bad in ["a\\..\\b", "c:x", "aux", "AUX.txt", "con .log", "trailing.", "t "]:
        assert targetdir.windows_name_problem(bad), bad
    for good in ["Befund.pdf", "usys.ini", "auxiliary", "M1"]:
        assert targetdir.windows_name_problem(good) is None

    class Junction:
        st_mode = stat.S_IFDIR
        st_file_attributes = targetdir.FILE_ATTRIBUTE_REPARSE_POINT
        st_reparse_tag = 0xA0000003  # IO_REPARSE_TAG_MOUNT_POINT

    class CloudFolder(Junction):
        st_reparse_tag = 0x9000001A  # OneDrive placeholder: not a link

    assert targetdir.is_link(Junction())  # type: ignore[arg-type]
    assert not targetdir.is_link(CloudFolder())  # type: ignore[arg-type]


def test_checked_paths_refuse_names_windows_cannot_hold(tmp_path: Path) -> None:
    root = targetdir.PathDir.root(str(tmp_path / "t"), windows_names=True)
    with pytest.raises(OSError, match="character Windows does not allow"):
        root.open("..\\..\\evil", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError, match="reserved device name"):
        root.child("nul", create=True)
    assert list((tmp_path / "t").iterdir()) == []


# -- special files ----------------------------------------------------------------------------
def test_devices_fifos_and_setid_bits_only_with_the_option(
    tmp_path: Path, writers: list[str]
) -> None:
    src = tmp_path / "praxis"
    src.mkdir()
    os.mkfifo(src / "pipe")
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    tool = src / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o6755)
    (src / "plain.txt").write_text("x")
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    snap = backup_cli(repo, src)
    plain = run_cli("restore", snap, "--target", str(tmp_path / "plain"), *writers, repo=repo)
    assert plain.returncode == 1, plain.stderr
    root = snapshot_root(tmp_path / "plain", src)
    assert "pipe: FIFO not restored (use --special-files" in plain.stderr
    assert "null: device node not restored (use --special-files" in plain.stderr
    assert "tool: setuid/setgid bit not restored" in plain.stderr
    assert not (root / "pipe").exists() and not (root / "null").exists()
    assert stat.S_IMODE((root / "tool").stat().st_mode) == 0o755
    full = run_cli(
        "restore", snap, "--target", str(tmp_path / "full"), "--special-files", *writers, repo=repo
    )
    assert full.returncode == 0, full.stderr
    root = snapshot_root(tmp_path / "full", src)
    assert stat.S_ISFIFO((root / "pipe").lstat().st_mode)
    assert (root / "null").lstat().st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE((root / "tool").stat().st_mode) == 0o6755


# -- half-written files ------------------------------------------------------------------------
def test_verify_reads_back_files_it_kept(
    backed_up: tuple[Path, Path, str], tmp_path: Path, writers: list[str]
) -> None:
    """A truncated file left by an earlier interrupted restore is not silently accepted."""
    repo, src, snap = backed_up
    target = tmp_path / "target"
    run_cli("restore", snap, "--target", str(target), repo=repo, check=True)
    victim = snapshot_root(target, src) / "CompuMED" / "M1" / "Bin" / "prog3.dll"
    stamp = victim.stat()
    victim.write_bytes(victim.read_bytes()[:1000])
    os.utime(victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    kept = run_cli("restore", snap, "--target", str(target), *writers, repo=repo)
    assert kept.returncode == 1  # kept existing files: a warning, as before
    verified = run_cli("restore", snap, "--target", str(target), "--verify", *writers, repo=repo)
    assert verified.returncode == 5, verified.stderr
    assert "prog3.dll: the existing file was kept and differs from the snapshot" in verified.stderr
    assert "size 1000 instead of 5000" in verified.stderr


def crash_source(base: Path, seed: int) -> Path:
    rnd = random.Random(seed)
    src = base / "praxis"
    (src / "Akten").mkdir(parents=True)
    for i in range(30):
        (src / "Akten" / f"brief-{i}.bin").write_bytes(rnd.randbytes(rnd.randint(1, 300_000)))
    # More than SEGMENT_CHUNKS chunks: written by several jobs in parallel.
    (src / "datenbank.dbf").write_bytes(rnd.randbytes(14 << 20))
    return src


def assert_no_partial_file(target: Path, src: Path, expected: dict[str, bytes]) -> int:
    """Every file under a real name is complete, with its date; returns how many were there."""
    root = snapshot_root(target, src)
    complete = 0
    for path in root.rglob("*") if root.exists() else []:
        if path.is_file() and not path.name.endswith(TEMP_SUFFIX):
            rel = str(path.relative_to(root))
            assert path.read_bytes() == expected[rel], f"{rel} is incomplete under its real name"
            assert path.stat().st_mtime_ns == (src / rel).stat().st_mtime_ns, f"{rel} undated"
            complete += 1
    return complete


def test_a_killed_restore_leaves_no_half_written_file(tmp_path: Path) -> None:
    src = crash_source(tmp_path, seed=11)
    expected = {str(p.relative_to(src)): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    backup_cli(repo, src)
    env = dict(os.environ, PRAXISBACKUP_KDF_N="1024")
    full = subprocess.run(
        [
            sys.executable,
            "-m",
            "praxisbackup.torture.child",
            str(repo),
            PASSWORD,
            "restore",
            "0",
            str(tmp_path / "full"),
            "never",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    total_reads = int(full.stdout.split("reads=")[1].split()[0])
    assert total_reads > 40
    rnd = random.Random(12)
    partial_seen = 0
    for run, mode in enumerate(MODES * 2):
        target = tmp_path / f"t{run}"
        kill_at = rnd.randint(2, total_reads - 1)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "praxisbackup.torture.child",
                str(repo),
                PASSWORD,
                "restore",
                f"r{kill_at}",
                str(target),
                mode,
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert proc.returncode == -9, proc.stderr
        done = assert_no_partial_file(target, src, expected)
        partial_seen += done < len(expected)
        # The next restore (default mode, verified) completes the target exactly.
        again = run_cli("restore", "latest", "--target", str(target), "--verify", repo=repo)
        assert again.returncode in (0, 1), again.stderr
        assert "error" not in again.stderr
        assert assert_no_partial_file(target, src, expected) == len(expected)
        restored = snapshot_root(target, src)
        for rel in expected:
            assert (restored / rel).stat().st_mtime_ns == (src / rel).stat().st_mtime_ns
    assert partial_seen == len(MODES) * 2


def _restore_command(repo: Path) -> tuple[dict[str, str], list[str]]:
    """Environment and command line of a ``restore latest`` started directly (not through
    run_cli: the tests set process limits or kill it)."""
    env = dict(
        os.environ,
        PRAXISBACKUP_KDF_N="1024",
        PRAXISBACKUP_PASSWORD=PASSWORD,
        PRAXISBACKUP_REPOSITORY=str(repo),
    )
    return env, [sys.executable, "-m", "praxisbackup.cli.main", "restore", "latest"]


def _wait_for(condition: Callable[[], bool], limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def _complete_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and TEMP_SUFFIX not in p.name)


@pytest.mark.parametrize("kill", ["process-group", "restoring-process"])
def test_a_killed_restore_with_worker_processes_leaves_no_half_written_file(
    tmp_path: Path, kill: str
) -> None:
    """Large restores are written by worker processes. Killing the whole restore (as a power
    cut would) or only the restoring process (its workers finish the window they write and
    end) leaves no file incomplete or undated under its real name, and the next restore
    completes the target."""
    rnd = random.Random(21)
    src = tmp_path / "praxis"
    for d in range(30):
        folder = src / f"Akten-{d:02d}"
        folder.mkdir(parents=True)
        for i in range(50):
            (folder / f"brief-{i}.bin").write_bytes(rnd.randbytes(rnd.randint(1, 60_000)))
    (src / "datenbank.dbf").write_bytes(rnd.randbytes(6 << 20))
    expected = {str(p.relative_to(src)): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    backup_cli(repo, src)
    target = tmp_path / "target"
    env, cmd = _restore_command(repo)
    proc = subprocess.Popen(
        [*cmd, "--target", str(target), "--processes", "2"],
        env=env,
        start_new_session=True,  # its own process group: the workers and nothing else
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "stderr").open("wb"),  # the workers' too
    )
    root = snapshot_root(target, src)
    _wait_for(lambda: proc.poll() is not None or (root.exists() and _complete_files(root) >= 60))
    assert proc.poll() is None, "the restore ended before it could be interrupted"
    if kill == "process-group":
        os.killpg(proc.pid, 9)
    else:
        os.kill(proc.pid, 9)
    proc.wait()

    def group_ended() -> bool:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        return False

    _wait_for(group_ended)
    assert "Traceback" not in (tmp_path / "stderr").read_text(errors="replace")
    # (Killing only the restoring process lets its workers finish the windows they hold.)
    assert assert_no_partial_file(target, src, expected) >= 60
    again = run_cli("restore", "latest", "--target", str(target), "--verify", repo=repo)
    assert again.returncode in (0, 1), again.stderr
    assert assert_no_partial_file(target, src, expected) == len(expected)


def test_a_killed_practice_restore_leaves_no_half_written_file(tmp_path: Path) -> None:
    """What restore-practice does between stopping and starting the services (plan, renames
    to _Original, restore of the allowed set), killed at random reads after its planning."""
    from datetime import datetime

    from praxisbackup.practice.restore import execute, plan_restore
    from praxisbackup.practice.sample import generate

    server = tmp_path / "server"
    generate(server, size_mb=2, seed=3)
    database = server / "CompuMED/M1/Orant/DB_M1/Database"
    (database / "GROSS.DBF").write_bytes(random.Random(4).randbytes(12 << 20))
    versions = {p.read_bytes() for p in server.rglob("*") if p.is_file()}
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    run_cli("backup", str(server / "CompuMED"), str(server / "ifapDB"), repo=repo, check=True)
    env = dict(os.environ, PRAXISBACKUP_KDF_N="1024")
    child = [sys.executable, "-m", "praxisbackup.torture.child", str(repo), PASSWORD]
    full = subprocess.run(
        [*child, "restore-practice", "0", str(tmp_path / "full")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    reads = int(full.stdout.split("reads=")[1].split()[0])
    planning = int(full.stdout.split("plan_reads=")[1].split()[0])
    rnd = random.Random(5)
    for run in range(3):
        target = tmp_path / f"neu-{run}"
        kill_at = rnd.randint(planning + 1, reads - 1)
        proc = subprocess.run(
            [*child, "restore-practice", f"r{kill_at}", str(target)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert proc.returncode == -9, proc.stderr
        for path in target.rglob("*"):
            if path.is_file() and not path.name.endswith(TEMP_SUFFIX):
                assert path.read_bytes() in versions, f"{path} is half-written"
        repo_handle = reopen(repo)
        plan = plan_restore(
            repo_handle, find_snapshot(repo_handle, "latest"), str(target), datetime.now()
        )
        again = execute(repo_handle, plan)
        assert again.ok, again.restore.errors if again.restore else None
        for item in ("CompuMED/M1/Bin", "CompuMED/M1/Orant/DB_M1/Database"):
            for original in (server / item).iterdir():
                restored = target / item / original.name
                assert restored.read_bytes() == original.read_bytes()
                assert restored.stat().st_mtime_ns == original.stat().st_mtime_ns


def _restore_300_folders_under_a_limit(tmp_path: Path, limit: int, options: list[str]) -> None:
    """Back up 300 folders of one file each, restore them with ``options`` under a hard limit
    of ``limit`` open files: every file comes back, without an error."""
    import resource

    src = tmp_path / "praxis"
    for i in range(300):
        (src / f"Patient-{i:03d}").mkdir(parents=True)
        (src / f"Patient-{i:03d}" / "brief.txt").write_text("x" * i)
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    backup_cli(repo, src)
    target = tmp_path / "target"
    env, cmd = _restore_command(repo)
    out = subprocess.run(
        [*cmd, "--target", str(target), *options],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "restored 300 files" in out.stdout
    assert tree_state(snapshot_root(target, src)) == tree_state(src)


def test_a_low_open_file_limit_restores_every_folder(tmp_path: Path, writers: list[str]) -> None:
    """A restore holds folders open; with a hard limit of 64 open files (a small container,
    macOS's default is 256) it sizes its windows and caches to the limit instead of failing
    folder after folder with "Too many open files"."""
    _restore_300_folders_under_a_limit(tmp_path, 64, writers)


def test_many_workers_under_a_low_open_file_limit_do_not_starve_the_restore(
    tmp_path: Path,
) -> None:
    """Workers are started early only where descriptors are plenty: with five asked for under
    a limit of 28 (found by an outsider: 1 400 of 1 610 entries "Too many open files"), the
    restore starts what fits, or writes in its own process, and restores everything."""
    _restore_300_folders_under_a_limit(tmp_path, 28, ["--processes", "5"])


@pytest.mark.parametrize("kind", ["link", "file", "folder"])
def test_a_folder_made_first_in_a_fresh_folder_never_follows_what_is_in_its_place(
    tmp_path: Path, kind: str
) -> None:
    """In a folder the restore made itself, a sub-folder is made before it is opened (one
    call less per folder). Whatever stands in its place meanwhile - a link out of the target,
    a file, a folder someone made - is treated as by the open alone: the link is refused and
    nothing is written through it, the file is no folder, the folder is used but not counted
    as made by the restore."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = targetdir.FdDir.root(str(tmp_path / "target"))
    place = tmp_path / "target" / "Praxis"
    if kind == "link":
        place.symlink_to(outside)
    elif kind == "file":
        place.write_bytes(b"x")
    else:
        place.mkdir()
    try:
        if kind == "link":
            with pytest.raises(UnsafeTargetError):
                root.child("Praxis", create=True, fresh=True)
        elif kind == "file":
            with pytest.raises(NotADirectoryError):
                root.child("Praxis", create=True, fresh=True)
        else:
            opened = root.child("Praxis", create=True, fresh=True)
            assert not opened.created
            opened.close()
        made = root.child("Neu", create=True, fresh=True)
        assert made.created and (tmp_path / "target" / "Neu").is_dir()
        made.close()
    finally:
        root.close()
    assert list(outside.iterdir()) == []
