"""Regression tests for what an outsider found in the engine after issue #15: a linked source
that gave green empty backups, an --include that restored nothing successfully, and a full
restore target that reported thousands of "damaged" files and left junk behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import PASSWORD, run_cli
from fsimages import ext4_image


def test_a_source_given_as_a_link_is_refused_naming_its_target(tmp_path: Path) -> None:
    data = tmp_path / "data" / "praxis"
    data.mkdir(parents=True)
    (data / "akte.txt").write_text("Befund\n")
    link = tmp_path / "praxis-link"
    link.symlink_to(data)
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    out = run_cli("backup", str(link), repo=repo)
    assert out.returncode == 2, out.stderr
    assert (
        f"Die Quelle {link} ist eine Verknüpfung auf {data}; gesichert würde nur die "
        f"Verknüpfung. Bitte {data} angeben." in out.stderr
    )
    assert json.loads(run_cli("--json", "snapshots", repo=repo, check=True).stdout) == []
    # The folder it points to is backed up as usual.
    run_cli("backup", str(data), repo=repo, check=True)


def test_an_include_that_matches_nothing_is_a_warning(tmp_path: Path) -> None:
    src = tmp_path / "praxis"
    (src / "a").mkdir(parents=True)
    (src / "a" / "brief.txt").write_text("Brief\n")
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    run_cli("backup", str(src), repo=repo, check=True)
    typo = f"{src}/b"
    out = run_cli(
        "restore", "latest", "--target", str(tmp_path / "t"), "--include", typo, repo=repo
    )
    assert out.returncode == 1, out.stderr
    assert f"{typo}: nothing in the snapshot matches this --include path" in out.stdout + out.stderr
    # A matching include restores without that warning.
    out = run_cli(
        "restore", "latest", "--target", str(tmp_path / "t2"), "--include", f"{src}/a", repo=repo
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "t2" / str(src).lstrip("/") / "a" / "brief.txt").read_text() == "Brief\n"


def test_a_full_target_stops_the_restore_with_one_message_and_leaves_no_junk(
    tmp_path: Path,
) -> None:
    src = tmp_path / "praxis"
    src.mkdir()
    for i in range(300):  # 300 files of 100 KiB, incompressible: 30 MiB
        (src / f"scan-{i:03d}.bin").write_bytes(os.urandom(100 * 1024))
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    run_cli("backup", str(src), repo=repo, check=True)
    with ext4_image(tmp_path, 8) as small:
        target = small / "ziel"
        out = run_cli("restore", "latest", "--target", str(target), repo=repo)
        assert out.returncode == 2, out.stderr
        lines = [line for line in (out.stdout + out.stderr).splitlines() if "is full" in line]
        assert len(lines) == 1, out.stdout + out.stderr
        assert "the restore target is full (No space left on device)" in lines[0]
        assert "data damaged" not in out.stdout + out.stderr
        assert len((out.stdout + out.stderr).splitlines()) < 10
        left = [p.name for p in target.rglob("*") if p.is_file()]
        junk = [n for n in left if n.endswith(("praxisbackup-damaged", "praxisbackup-tmp"))]
        assert junk == []
        # Whatever was restored is complete.
        assert left, "some files fit"
        for name in left:
            assert (target / str(src).lstrip("/") / name).read_bytes() == (src / name).read_bytes()


def test_a_target_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    src = tmp_path / "praxis"
    src.mkdir()
    (src / "brief.txt").write_text("Brief\n")
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    run_cli("backup", str(src), repo=repo, check=True)
    afile = tmp_path / "ziel.txt"
    afile.write_text("keep me\n")
    out = run_cli("restore", "latest", "--target", str(afile), repo=repo)
    assert out.returncode == 2
    assert (
        f"praxisbackup: error: cannot use {afile} as restore target: it is a file, not a folder"
        in out.stderr
    )
    assert afile.read_text() == "keep me\n"


def test_readiness_and_the_night_name_a_linked_source(tmp_path: Path) -> None:
    data = tmp_path / "data" / "Praxisdaten"
    data.mkdir(parents=True)
    link = tmp_path / "Praxisdaten"
    link.symlink_to(data)
    cfg = tmp_path / "praxisbackup.toml"
    cfg.write_text(
        f"""
state_dir = "{tmp_path / "state"}"
[practice]
name = "Praxis Dr. Muster"
state = "NW"
[[sources]]
label = "Praxisdaten"
path = "{link}"
[media]
candidates = ["{tmp_path}/slot-*"]
[rotation]
daily = ["Mo", "Di", "Mi", "Do", "Fr"]
quarter_end = {json.dumps([f"Quartal {n}" for n in range(1, 10)])}
""",
        encoding="utf-8",
    )
    check = run_cli("-c", str(cfg), "--json", "config", "check", password=None)
    assert check.returncode == 2
    items = {i["code"]: i for i in json.loads(check.stdout)["items"]}
    assert items["ready.source_is_link"]["level"] == "missing"
    assert items["ready.source_is_link"]["to"] == str(data)
    night = run_cli("-c", str(cfg), "--json", "run", password="x")
    protocol = json.loads(night.stdout)
    assert protocol["status"] == "red"
    linked = [f for f in protocol["findings"] if f["code"] == "source_is_link"]
    assert linked and linked[0]["params"]["to"] == str(data), protocol["findings"]


def test_a_repository_named_by_its_medium_points_to_the_folder_inside(tmp_path: Path) -> None:
    medium = tmp_path / "E"
    run_cli("init", repo=medium / "praxisbackup", check=True)
    out = run_cli("snapshots", repo=medium)
    assert out.returncode == 2
    assert (
        f"there is no praxisbackup repository at {medium}, but in {medium / 'praxisbackup'}: "
        f"use --repo {medium / 'praxisbackup'}" in out.stderr
    )


def test_hard_links_stay_linked_when_the_first_name_is_not_restored(tmp_path: Path) -> None:
    src = tmp_path / "praxis"
    (src / "sub").mkdir(parents=True)
    (src / "hl_a").write_text("Befund\n")
    os.link(src / "hl_a", src / "hl_b")
    os.link(src / "hl_a", src / "sub" / "hl_c")
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    run_cli("backup", str(src), repo=repo, check=True)
    target = tmp_path / "t"
    run_cli(
        "restore", "latest", "--target", str(target),
        "--include", f"{src}/hl_b", "--include", f"{src}/sub",
        repo=repo, check=True,
    )  # fmt: skip
    back = target / str(src).lstrip("/")
    assert not (back / "hl_a").exists()
    b, c = (back / "hl_b").stat(), (back / "sub" / "hl_c").stat()
    assert (b.st_ino, b.st_nlink) == (c.st_ino, 2)
    assert (back / "sub" / "hl_c").read_text() == "Befund\n"


def test_a_folder_chain_too_deep_for_the_walk_is_skipped_and_the_night_goes_on(
    tmp_path: Path,
) -> None:
    """Anyone who can write to the data can create a chain of folders a thousand levels deep;
    it ended every backup with an internal error (exit 70, no snapshot). Folders deeper than
    MAX_DEPTH are now skipped with a warning naming them, and everything else is saved."""
    src = tmp_path / "praxis"
    (src / "Befunde").mkdir(parents=True)
    (src / "Befunde" / "akte.txt").write_text("Befund\n")
    chain = [src / "tief" / Path(*["a"] * k) for k in range(1000)]
    try:
        for depth, level in enumerate(chain, start=1):
            level.mkdir()
            if depth == 10:
                (level / "flach.txt").write_text("zehn\n")
        repo = tmp_path / "repo"
        run_cli("init", repo=repo, check=True)
        out = run_cli("backup", str(src), repo=repo)
        assert out.returncode == 1, out.stderr  # finished with warnings
        assert out.stderr.count("folder nested more than 300 levels deep") == 1, out.stderr
        target = tmp_path / "target"
        run_cli("restore", "latest", "--target", str(target), repo=repo, check=True)
        restored = target / src.relative_to(src.anchor)
        assert (restored / "Befunde" / "akte.txt").read_text() == "Befund\n"
        assert (restored / "tief" / Path(*["a"] * 9) / "flach.txt").read_text() == "zehn\n"
        # "tief" is level 1 below the source: level 300 is the 299th "a".
        deepest = restored / "tief" / Path(*["a"] * 299)
        assert deepest.is_dir() and not any(deepest.iterdir())
    finally:
        # Deepest first: a recursive removal (pytest's own, of old temporary folders) would
        # exceed Python's recursion limit on this chain.
        for level in reversed(chain):
            if level.is_dir():
                for child in level.iterdir():
                    if not child.is_dir():
                        child.unlink()
                level.rmdir()


def test_a_stopped_backup_ends_as_interrupted_and_leaves_no_lock(tmp_path: Path) -> None:
    """SIGTERM (kill, a service manager, a logout) ended a backup silently with a lock left
    behind (found by an outsider). It now ends as Ctrl-C does: workers ended, the lock
    removed, "abgebrochen" and exit 2, earlier snapshots intact."""
    src = tmp_path / "praxis"
    src.mkdir()
    rnd = os.urandom
    for i in range(40):
        (src / f"scan-{i:02d}.tif").write_bytes(rnd(6 << 20))
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "akte.txt").write_text("Befund\n")
    run_cli("backup", str(tmp_path / "first"), repo=repo, check=True)
    env = dict(os.environ, PRAXISBACKUP_PASSWORD=PASSWORD, PRAXISBACKUP_KDF_N="1024")
    proc = subprocess.Popen(
        [sys.executable, "-m", "praxisbackup.cli.main", "-r", str(repo), "backup", str(src)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any((repo / "locks").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # into the reading
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "abgebrochen" in err and "Traceback" not in err, err
    assert not any((repo / "locks").iterdir())
    snapshots = json.loads(run_cli("--json", "snapshots", repo=repo, check=True).stdout)
    assert len(snapshots) == 1
    assert run_cli("check", "--read-data", repo=repo).returncode in (0, 1)
