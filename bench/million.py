"""Measure the memory praxisbackup needs for one million files (the README's figure).

Creates ``--files`` small files (unique content, 1 000 per folder), then runs and measures
``backup`` (first), ``backup`` (nothing changed), ``check --read-data`` and ``restore`` -
wall time and the peak of the summed resident size of praxisbackup's processes (see
rusage_exec.py). Run with the project's Python: ``.venv/bin/python bench/million.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench import Measure, run_measured

PASSWORD = "bench-passphrase"


def generate(root: Path, files: int, per_folder: int = 1000) -> None:
    for start in range(0, files, per_folder):
        folder = root / f"{start // per_folder:05d}"
        folder.mkdir(parents=True)
        for i in range(start, min(files, start + per_folder)):
            with open(folder / f"akte-{i:07d}.txt", "wb") as fh:
                fh.write(b"Befund %d " % i + os.urandom(32).hex().encode() * (1 + i % 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--work", default=str(Path(__file__).resolve().parent / "work-million"))
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    work = Path(args.work)
    data = work / "data"
    marker = work / "data.json"
    if not (marker.exists() and json.loads(marker.read_text()) == {"files": args.files}):
        shutil.rmtree(work, ignore_errors=True)
        print(f"creating {args.files} files ...", flush=True)
        generate(data, args.files)
        marker.write_text(json.dumps({"files": args.files}))
    repo = work / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    env = dict(os.environ, PRAXISBACKUP_PASSWORD=PASSWORD, BENCH_LOG=str(work / "log.txt"))
    env.pop("PRAXISBACKUP_KDF_N", None)
    cli = [sys.executable, "-m", "praxisbackup.cli.main", "-q", "-r", str(repo)]
    subprocess.run([*cli, "init"], env=env, check=True, capture_output=True)
    target = work / "restore"
    shutil.rmtree(target, ignore_errors=True)
    phases: dict[str, Measure] = {}
    for name, cmd in (
        ("backup", [*cli, "backup", str(data)]),
        ("backup unchanged", [*cli, "backup", str(data)]),
        ("check --read-data", [*cli, "check", "--read-data"]),
        ("restore", [*cli, "restore", "latest", "--target", str(target)]),
    ):
        print(f"{name} ...", flush=True)
        phases[name] = run_measured(cmd, env)
    shutil.rmtree(target, ignore_errors=True)
    stats = subprocess.run(
        [sys.executable, "-m", "praxisbackup.cli.main", "--json", "-r", str(repo), "stats"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    doc = json.loads(stats.stdout)
    print(f"\n{args.files} files, {doc['unique_chunks']} chunks, {os.cpu_count()} cores")
    print(f"{'phase':<20}{'seconds':>10}{'peak RSS (all processes)':>28}{'without KDF':>14}")
    for name, m in phases.items():
        print(
            f"{name:<20}{m.seconds:>10.1f}{m.peak_rss_sum_mib:>24.0f} MiB"
            f"{m.peak_rss_sum_mib - 128:>10.0f} MiB"
        )
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({k: vars(v) for k, v in phases.items()} | {"chunks": doc}, indent=2)
        )


if __name__ == "__main__":
    main()
