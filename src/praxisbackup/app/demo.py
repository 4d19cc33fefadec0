"""The demonstration: the nightly job on a generated sample practice, end to end.

It writes a configuration for a sample CGM M1 PRO server, prepares a medium folder, starts a
stand-in "database service" (a real background process that holds a database file open),
runs the nightly job twice (with a day of practice work in between), restores the latest
snapshot and compares every file's content and modification time with the original.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from praxisbackup import platform
from praxisbackup.app.job import NightlyJob
from praxisbackup.engine.paths import split_source
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer, RestoreResult
from praxisbackup.engine.snapshot import find_snapshot
from praxisbackup.media.selection import prepare_medium
from praxisbackup.model.config import parse_config
from praxisbackup.model.protocol import RED, RunProtocol
from praxisbackup.practice import sample
from praxisbackup.storage import LocalBackend

DEMO_PASSPHRASE = "demo-passphrase"
#: A quick key derivation for the demo only; real repositories use the default cost.
DEMO_KDF_N = str(1 << 15)


@dataclass
class DemoResult:
    server: Path
    config_path: Path
    medium_root: str
    sample: sample.SampleStats
    nights: list[RunProtocol] = field(default_factory=list)
    restored: RestoreResult | None = None
    compared: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            len(self.nights) == 2
            and all(n.status != RED for n in self.nights)
            and self.restored is not None
            and self.restored.ok
            and not self.problems
        )


def compare_trees(src: Path, restored: Path) -> tuple[int, list[str]]:
    """Files compared, and differences in content or modification time."""
    compared = 0
    problems = []
    for path in src.rglob("*"):
        if not path.is_file():
            continue
        other = restored / path.relative_to(src)
        if not other.exists():
            problems.append(f"missing: {other}")
        elif path.stat().st_mtime_ns != other.stat().st_mtime_ns:
            problems.append(f"modification time differs: {other}")
        elif path.read_bytes() != other.read_bytes():
            problems.append(f"content differs: {other}")
        compared += 1
    return compared, problems


def demo_config(base: Path, server: Path) -> str:
    pidfile = str(base / "m1-datenbank.pid")
    held = str(server / "CompuMED" / "M1" / "Orant" / "DB_M1" / "Database")
    service = [sys.executable, "-m", "praxisbackup.practice.sample_service"]
    start = platform.shell_join([*service, "start", pidfile, held])
    stop = platform.shell_join([*service, "stop", pidfile])
    running = platform.shell_join([*service, "status", pidfile])
    return f"""
state_dir = {json.dumps(str(base / "state"))}
[practice]
name = "Praxis Dr. Muster (Demo)"
language = "de"
[[sources]]
label = "CGM M1 PRO"
profile = "cgm-m1-pro"
path = {json.dumps(str(server / "CompuMED"))}
[[sources]]
label = "ifap praxisCENTER"
path = {json.dumps(str(server / "ifapDB"))}
[[sources]]
label = "Praxisarchiv"
path = {json.dumps(str(server / "Praxisarchiv"))}
[[sources]]
label = "Scans"
path = {json.dumps(str(server / "Scans"))}
[[services]]
name = "M1-Datenbank (Demo)"
kind = "command"
start = {json.dumps(start)}
stop = {json.dumps(stop)}
is_running = {json.dumps(running)}
check_closed = [{json.dumps(held)}]
[media]
candidates = [{json.dumps(str(base / "medium-*"))}]
allow_same_disk = true   # demo only: a real medium is an external disk
"""


def run_demo(workdir: str, size_mb: int, on_step: Callable[[str, DemoResult], None]) -> DemoResult:
    """Run the demonstration; ``on_step`` is told after each step ("sample", "night1",
    "night2", "restore") so an interface can show progress."""
    base = Path(workdir).resolve()
    if base.exists():
        shutil.rmtree(base)
    server = base / "server"
    stats = sample.generate(server, size_mb=size_mb)
    os.environ.setdefault("PRAXISBACKUP_KDF_N", DEMO_KDF_N)
    os.environ["PRAXISBACKUP_PASSWORD"] = DEMO_PASSPHRASE
    config_path = base / "praxisbackup.toml"
    config_path.write_text(demo_config(base, server), encoding="utf-8")
    config = parse_config(config_path.read_text(encoding="utf-8"), str(config_path))
    medium = prepare_medium(config, str(base / "medium-Mo"), "Mo", DEMO_PASSPHRASE)
    result = DemoResult(server, config_path, medium.root, stats)
    on_step("sample", result)
    subprocess.run(config.services[0].start or "", shell=True, check=True)
    try:
        result.nights.append(NightlyJob(config).run())
        on_step("night1", result)
        sample.mutate(server, seed=2)
        result.nights.append(NightlyJob(config).run())
        on_step("night2", result)
    finally:
        subprocess.run(config.services[0].stop or "", shell=True, check=False)
    repo = Repository.open(LocalBackend(medium.repository_path), DEMO_PASSPHRASE)
    repo.load_index()
    snap = find_snapshot(repo, "latest")
    target = base / "restore"
    result.restored = Restorer(repo, snap, RestoreOptions(target=str(target), verify=True)).run()
    repo.close()
    result.compared, result.problems = compare_trees(
        server, target.joinpath(*split_source(str(server)))
    )
    on_step("restore", result)
    return result
