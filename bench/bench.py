"""Benchmark praxisbackup against restic and BorgBackup on a practice-shaped data set.

Phases, each timed per tool in one run on the same data: first full backup, second backup
after about 1 % change, restore of the latest snapshot, check with a full read of the data.
Reports wall time, MB/s of the data set, peak RSS of the tool's process, repository size, and
praxisbackup/restic ratios. Run through ``bench/run`` (installs restic and borg from Debian).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from praxisbackup.practice import sample

PASSWORD = "bench-passphrase"
TOOLS = ("praxisbackup", "restic", "borg")
PHASES = ("backup1", "backup2", "restore", "check")


@dataclass
class Measure:
    seconds: float
    peak_rss_mib: float  # the largest single process (what the kernel reports)
    peak_rss_sum_mib: float = 0.0  # the command and all its worker processes together
    load: float = 0.0  # the machine's 1-minute load average when the phase started


@dataclass
class ToolResult:
    tool: str
    version: str = ""
    phases: dict[str, Measure] = field(default_factory=dict)
    repo_bytes: int = 0


#: ext4 without a journal (this VM's root file system) skips inodes freed in the last 6
#: minutes when it allocates new ones (``recently_deleted`` in fs/ext4/ialloc.c: 60 s, plus
#: 300 s while the inode table block is dirty - as it is during a restore). A restore soon
#: after the deletion of 55 000 files spent seconds more in the kernel (perf: openat in
#: recently_deleted/find_inode_bit): whichever tool restored after the previous tool's
#: target was deleted was handicapped. So the restores wait until that long after the run's
#: last deletion, and nothing is deleted between them.
_RECENTLY_DELETED_S = 370
_last_deletion = 0.0


def delete_tree(path: Path) -> None:
    global _last_deletion  # noqa: PLW0603 - one run per process
    shutil.rmtree(path)
    _last_deletion = time.monotonic()


def drop_caches() -> bool:
    """Cold caches for fair reads where the machine allows it (root, not in all containers)."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> Measure:
    """Run a command through rusage_exec.py (see there why) and return time and peak RSS."""
    load = os.getloadavg()[0]
    log = Path(env.get("BENCH_LOG", "/tmp/praxisbackup-bench.log"))
    result = log.with_suffix(".rusage.json")
    helper = [sys.executable, "-S", str(Path(__file__).with_name("rusage_exec.py"))]
    with open(log, "ab") as fh:
        subprocess.run(
            [*helper, str(result), str(cwd or Path.cwd()), *cmd],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=fh,
            check=True,
        )
    doc = json.loads(result.read_text())
    if doc["code"] not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed with {doc['code']}; see {log}")
    return Measure(
        round(doc["seconds"], 2),
        round(doc["maxrss_kib"] / 1024, 1),
        round(doc["rss_sum_kib"] / 1024, 1),
        round(load, 2),
    )


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Tool:
    def __init__(self, name: str, work: Path) -> None:
        self.name = name
        self.repo = work / f"repo-{name}"
        self.env = dict(os.environ)
        self.env.update(
            PRAXISBACKUP_PASSWORD=PASSWORD,
            RESTIC_PASSWORD=PASSWORD,
            BORG_PASSPHRASE=PASSWORD,
            RESTIC_CACHE_DIR=str(work / "restic-cache"),
            BORG_BASE_DIR=str(work / "borg-base"),
        )
        self.env.pop("PRAXISBACKUP_KDF_N", None)

    def version(self) -> str:
        cmd = {
            "praxisbackup": [sys.executable, "-m", "praxisbackup.cli.main", "--version"],
            "restic": ["restic", "version"],
            "borg": ["borg", "--version"],
        }[self.name]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()

    def init(self) -> None:
        if self.repo.exists():
            delete_tree(self.repo)
        cmd = {
            "praxisbackup": [
                sys.executable,
                "-m",
                "praxisbackup.cli.main",
                "-r",
                str(self.repo),
                "init",
            ],
            "restic": ["restic", "-r", str(self.repo), "init"],
            "borg": ["borg", "init", "-e", "repokey-blake2", str(self.repo)],
        }[self.name]
        subprocess.run(cmd, env=self.env, check=True, capture_output=True)

    def backup(self, data: Path, n: int) -> list[str]:
        return {
            "praxisbackup": [
                sys.executable,
                "-m",
                "praxisbackup.cli.main",
                "-q",
                "-r",
                str(self.repo),
                "backup",
                str(data),
            ],
            "restic": ["restic", "-r", str(self.repo), "backup", "--quiet", str(data)],
            "borg": [
                "borg",
                "create",
                "--compression",
                "zstd,3",
                f"{self.repo}::night{n}",
                str(data),
            ],
        }[self.name]

    def restore(self, target: Path) -> tuple[list[str], Path | None]:
        return {
            "praxisbackup": (
                [
                    sys.executable,
                    "-m",
                    "praxisbackup.cli.main",
                    "-q",
                    "-r",
                    str(self.repo),
                    "restore",
                    "latest",
                    "--target",
                    str(target),
                ],
                None,
            ),
            "restic": (
                ["restic", "-r", str(self.repo), "restore", "latest", "--target", str(target)],
                None,
            ),
            "borg": (["borg", "extract", f"{self.repo}::night2"], target),
        }[self.name]

    def check(self) -> list[str]:
        return {
            "praxisbackup": [
                sys.executable,
                "-m",
                "praxisbackup.cli.main",
                "-q",
                "-r",
                str(self.repo),
                "check",
                "--read-data",
            ],
            "restic": ["restic", "-r", str(self.repo), "check", "--read-data"],
            "borg": ["borg", "check", "--verify-data", str(self.repo)],
        }[self.name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-gb", type=float, default=3.0)
    parser.add_argument("--work", default=str(Path(__file__).resolve().parent / "work"))
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--json", dest="json_out", help="Also write the results here.")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    marker = work / "data.json"
    size_mb = int(args.size_gb * 1024)
    if not (marker.exists() and json.loads(marker.read_text()) == {"size_mb": size_mb}):
        if data.exists():
            delete_tree(data)
        print(f"generating {size_mb} MiB of practice-shaped data ...", flush=True)
        stats = sample.generate(data, size_mb=size_mb)
        marker.write_text(json.dumps({"size_mb": size_mb}))
        print(f"  {stats.files} files", flush=True)
    pristine_state = work / "data-pristine.mutated"
    if pristine_state.exists():
        # A previous run mutated the data: regenerate for identical starting points.
        delete_tree(data)
        sample.generate(data, size_mb=size_mb)
        pristine_state.unlink()
    total = dir_size(data)
    tools = [Tool(t, work) for t in args.tools.split(",")]
    results = {t.name: ToolResult(t.name, t.version()) for t in tools}
    cold = drop_caches()
    for t in tools:
        t.init()
        drop_caches()
        print(f"[{t.name}] first backup ...", flush=True)
        results[t.name].phases["backup1"] = run_measured(t.backup(data, 1), t.env)
    sample.mutate(data, seed=2)
    pristine_state.write_text("mutated")
    for t in tools:
        drop_caches()
        print(f"[{t.name}] second backup after ~1% change ...", flush=True)
        results[t.name].phases["backup2"] = run_measured(t.backup(data, 2), t.env)
        results[t.name].repo_bytes = dir_size(t.repo)
    total_after = dir_size(data)
    targets = [work / f"restore-{t.name}" for t in tools]
    for target in targets:
        if target.exists():
            delete_tree(target)
    wait = _last_deletion + _RECENTLY_DELETED_S - time.monotonic()
    if wait > 0:
        print(f"waiting {wait:.0f} s: no restore right after a deletion ...", flush=True)
        time.sleep(wait)
    for t, target in zip(tools, targets, strict=True):
        target.mkdir()
        cmd, cwd = t.restore(target)
        drop_caches()
        print(f"[{t.name}] restore ...", flush=True)
        results[t.name].phases["restore"] = run_measured(cmd, t.env, cwd)
        drop_caches()
        print(f"[{t.name}] check with full data read ...", flush=True)
        results[t.name].phases["check"] = run_measured(t.check(), t.env)
    for target in targets:
        delete_tree(target)
    report(results, total, total_after, cold)
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {k: asdict(v) for k, v in results.items()}
                | {"data_bytes": total, "cold_cache": cold},
                indent=2,
            )
        )


#: scrypt's memory (n = 2^17, r = 8): the key derivation of every praxisbackup command.
KDF_MIB = 128


def report(results: dict[str, ToolResult], total: int, total_after: int, cold: bool) -> None:
    """Memory is the peak of the summed resident sizes of each tool's processes (praxisbackup's
    backup runs worker processes); for praxisbackup also without scrypt's 128 MiB."""
    mb = total / 1e6
    print()
    print(
        f"data set: {total / 2**30:.2f} GiB ({mb:.0f} MB); "
        f"caches dropped between phases: {'yes' if cold else 'no'}; "
        f"{os.cpu_count()} cores"
    )
    header = f"{'phase':<10}" + "".join(f"{t:>30}" for t in results) + f"{'praxis/restic':>15}"
    header += f"{'praxis-KDF':>12}{'load':>7}"
    print(header)
    print("-" * len(header))
    for phase in PHASES:
        row = f"{phase:<10}"
        for res in results.values():
            m = res.phases[phase]
            size = total_after if phase in ("restore", "check", "backup2") else total
            rate = size / 1e6 / m.seconds
            row += f"{m.seconds:>8.2f} s {rate:>6.0f} MB/s {m.peak_rss_sum_mib:>6.0f} MiB  "
        if "praxisbackup" in results and "restic" in results:
            ratio = (
                results["restic"].phases[phase].seconds
                / results["praxisbackup"].phases[phase].seconds
            )
            row += f"{ratio:>10.2f}x fast"
        if "praxisbackup" in results:
            m = results["praxisbackup"].phases[phase]
            row += f"{m.peak_rss_sum_mib - KDF_MIB:>8.0f} MiB"
        loads = [res.phases[phase].load for res in results.values()]
        row += f"{max(loads):>7.2f}"
        print(row)
    row = f"{'repo size':<10}"
    for res in results.values():
        row += f"{res.repo_bytes / 2**20:>24.0f} MiB  "
    if "praxisbackup" in results and "restic" in results:
        ratio = results["praxisbackup"].repo_bytes / results["restic"].repo_bytes
        row += f"{ratio:>10.3f}x size"
    print(row)
    for res in results.values():
        print(f"  {res.tool}: {res.version.splitlines()[0]}")


if __name__ == "__main__":
    main()
