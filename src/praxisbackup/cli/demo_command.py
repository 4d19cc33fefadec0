"""``praxisbackup demo``: the nightly job on a generated sample practice, end to end.

It writes a configuration for a sample CGM M1 PRO server, prepares a medium folder, starts a
stand-in "database service" (a real background process), runs the nightly job twice (with a day
of practice work in between), prints the protocol, restores the latest snapshot and compares
every file's content and modification time with the original.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click

from praxisbackup.app.job import NightlyJob
from praxisbackup.cli.context import human_size
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.snapshot import find_snapshot
from praxisbackup.media.selection import prepare_medium
from praxisbackup.model.config import parse_config
from praxisbackup.practice import sample
from praxisbackup.report.render import render_text
from praxisbackup.storage import LocalBackend

DEMO_PASSPHRASE = "demo-passphrase"


def _compare(src: Path, restored: Path) -> tuple[int, list[str]]:
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


def _config(base: Path, server: Path) -> str:
    pidfile = base / "m1-datenbank.pid"
    service = f"{shlex.quote(sys.executable)} -m praxisbackup.practice.sample_service"
    start = f"{service} start {shlex.quote(str(pidfile))}"
    stop = f"{service} stop {shlex.quote(str(pidfile))}"
    running = f"{service} status {shlex.quote(str(pidfile))}"
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
[media]
candidates = [{json.dumps(str(base / "medium-*"))}]
allow_same_disk = true   # demo only: a real medium is an external disk
"""


@click.command()
@click.option(
    "--dir", "workdir", default="demo-output", show_default=True, help="Folder for the demo."
)
@click.option("--size-mb", default=64, show_default=True, help="Size of the sample practice data.")
@click.option("--lang", type=click.Choice(["de", "en"]), default="de", show_default=True)
def demo(workdir: str, size_mb: int, lang: str) -> None:
    """Run the nightly job on a generated sample practice, then restore and compare."""
    base = Path(workdir).resolve()
    if base.exists():
        shutil.rmtree(base)
    server = base / "server"
    say = click.echo
    say(f"1. Sample practice server ({size_mb} MiB) in {server}")
    st = sample.generate(server, size_mb=size_mb)
    say(f"   {st.files} files, {human_size(st.bytes)}: CGM M1 PRO folders, ifap, archive, scans")
    os.environ.setdefault("PRAXISBACKUP_KDF_N", str(1 << 15))  # quick demo; real use: default cost
    os.environ["PRAXISBACKUP_PASSWORD"] = DEMO_PASSPHRASE
    config_path = base / "praxisbackup.toml"
    config_path.write_text(_config(base, server), encoding="utf-8")
    config = parse_config(config_path.read_text(encoding="utf-8"), str(config_path))
    medium = prepare_medium(config, str(base / "medium-Mo"), "Mo", DEMO_PASSPHRASE)
    say(f"2. Configuration {config_path}; backup medium 'Mo' at {medium.root}")
    subprocess.run(config.services[0].start or "", shell=True, check=True)
    try:
        first = NightlyJob(config).run()
        say(f"3. Night 1: nightly job finished: {first.status.upper()}")
        say("")
        say(render_text(first, lang))
        sample.mutate(server, seed=2)
        second = NightlyJob(config).run()
        new = sum(s.new_bytes for s in second.sources)
        say(
            f"4. Night 2 (after a day of practice work): {second.status.upper()}, "
            f"{human_size(new)} new data, service downtime {second.downtime_seconds} s"
        )
    finally:
        subprocess.run(config.services[0].stop or "", shell=True, check=False)
    say(f"5. Restoring the latest snapshot to {base / 'restore'} and comparing with the server ...")
    repo = Repository.open(LocalBackend(medium.repository_path), DEMO_PASSPHRASE)
    repo.load_index()
    snap = find_snapshot(repo, "latest")
    restored = Restorer(repo, snap, RestoreOptions(target=str(base / "restore"), verify=True)).run()
    parts = [p for p in str(server).replace("\\", "/").split("/") if p and not p.endswith(":")]
    compared, problems = _compare(server, (base / "restore").joinpath(*parts))
    say(
        f"   restored {restored.files} files ({human_size(restored.bytes)}), "
        f"verified {restored.verified_files}; "
        f"{compared} files compared, {len(problems)} differences in content or modification time"
    )
    for p in problems[:10]:
        say(f"   ! {p}")
    ok = first.status != "red" and second.status != "red" and restored.ok and not problems
    say(
        "RESULT: "
        + ("OK - nightly job, verification and restore are complete and exact." if ok else "FAILED")
    )
    say("(Status GELB/YELLOW only because the demo medium lies on the same disk as the data.)")
    if not ok:
        raise SystemExit(2)
