"""Retention rules, holds, and prune freeing space without touching what is kept."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from conftest import run_cli
from praxisbackup.engine.forget import Policy, apply_policy, parse_duration
from praxisbackup.engine.snapshot import Snapshot
from praxisbackup.errors import UsageError


def snap(when: datetime, tags: list[str] | None = None, host: str = "server") -> Snapshot:
    return Snapshot(
        time=when.isoformat(),
        host=host,
        user="",
        paths=["/p"],
        tree="00" * 32,
        tags=tags or [],
        id=when.isoformat(),
    )


def nightly(days: int) -> list[Snapshot]:
    start = datetime(2026, 1, 1, 22, 30, tzinfo=UTC)
    return [snap(start + timedelta(days=i)) for i in range(days)]


def kept(
    decisions: list,
) -> list[str]:  # type: ignore[type-arg]
    return sorted(d.snapshot.time[:10] for d in decisions if d.keep)


def test_keep_daily_weekly_monthly() -> None:
    snaps = nightly(120)
    decisions = apply_policy(snaps, Policy(daily=7, weekly=4, monthly=3), today=date(2026, 5, 1))
    result = kept(decisions)
    # 7 newest days, plus the newest of 4 ISO weeks, plus the newest of 3 months (overlapping).
    assert result[-7:] == [f"2026-04-{d:02d}" for d in range(24, 31)]
    assert "2026-03-31" in result and "2026-02-28" in result
    assert len(result) == len(set(result)) <= 14


def test_keep_last_within_and_tag() -> None:
    snaps = nightly(30)
    snaps[3].tags = ["quartal"]
    res = kept(
        apply_policy(snaps, Policy(last=2, within="5d", tags=["quartal"]), today=date(2026, 2, 1))
    )
    assert res == [
        "2026-01-04",
        "2026-01-25",
        "2026-01-26",
        "2026-01-27",
        "2026-01-28",
        "2026-01-29",
        "2026-01-30",
    ]


def test_held_snapshots_are_never_forgotten() -> None:
    snaps = nightly(10)
    snaps[0].tags = ["hold-until=2028-12-31"]
    snaps[1].tags = ["hold-until=2026-01-05"]  # expired
    res = kept(apply_policy(snaps, Policy(last=1), today=date(2026, 6, 1)))
    assert res == ["2026-01-01", "2026-01-10"]


def test_groups_by_host_and_refuses_empty_policy() -> None:
    snaps = [*nightly(3), snap(datetime(2026, 1, 1, tzinfo=UTC), host="laptop")]
    res = apply_policy(snaps, Policy(last=1), today=date(2026, 2, 1))
    assert sorted((d.snapshot.host, d.keep) for d in res) == [
        ("laptop", True),
        ("server", False),
        ("server", False),
        ("server", True),
    ]
    with pytest.raises(UsageError):
        apply_policy(snaps, Policy())


def test_parse_duration() -> None:
    assert parse_duration("2y") == timedelta(days=730)
    assert parse_duration("1y6m") == timedelta(days=545)
    assert parse_duration("36h") == timedelta(hours=36)
    with pytest.raises(UsageError):
        parse_duration("zwei Jahre")


def test_forget_prune_frees_space_and_keeps_the_rest(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    src = tmp_path / "praxis"
    src.mkdir()
    ids = []
    for night in range(3):
        (src / f"scan-{night}.bin").write_bytes(
            bytes([night]) * 10 + __import__("os").urandom(3 << 20)
        )
        if night:
            (src / f"scan-{night - 1}.bin").unlink()
        out = run_cli("--json", "backup", str(src), repo=repo, check=True)
        ids.append(json.loads(out.stdout)["snapshot"]["id"])

    def stored() -> int:
        return sum(f.stat().st_size for f in (repo / "data").rglob("*") if f.is_file())

    before = stored()
    out = run_cli("--json", "forget", "--keep-last", "1", "--prune", repo=repo, check=True)
    doc = json.loads(out.stdout)
    assert sorted(doc["remove"]) == sorted(ids[:2])
    assert doc["prune"]["packs_deleted"] >= 1
    assert stored() < before - (5 << 20)
    assert run_cli("check", "--read-data", repo=repo).returncode == 0
    run_cli("restore", "latest", "--target", str(tmp_path / "r"), "--verify", repo=repo, check=True)
    assert (tmp_path / "r" / str(src).lstrip("/") / "scan-2.bin").read_bytes() == (
        src / "scan-2.bin"
    ).read_bytes()
    dry = json.loads(run_cli("--json", "prune", "--dry-run", repo=repo, check=True).stdout)
    assert dry["packs_deleted"] == 0
