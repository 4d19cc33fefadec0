"""``python -m praxisbackup.torture``: run the campaigns and print the figures.

    python -m praxisbackup.torture                 # full: 200 crashes, 200 corruptions, 60 s
                                                   # fuzz, 100 restore crashes, malicious repos
    python -m praxisbackup.torture --smoke         # a few of each (the default test suite)
    python -m praxisbackup.torture --seed 7 --json figures.json

Exit code 0 when every goal is met (0 damaged / 0 lost, 100 % detected, 0 unhandled, all bad
inputs handled, security checks as documented, no half-written file after a killed restore and
every killed restore completed by the next run, every malicious repository handled without a
write outside the target or a traceback), 1 otherwise. A failing case prints its seed
and steps so it can be repeated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from praxisbackup.torture.checks import bad_input_catalogue, security_checks
from praxisbackup.torture.fuzz import fuzz_campaign
from praxisbackup.torture.harness import corruption_campaign, crash_campaign
from praxisbackup.torture.restore_campaigns import malicious_campaign, restore_crash_campaign

#: Checks known not to pass by design (documented in docs/reliability.md).
KNOWN_GAPS: set[str] = set()


def run(args: argparse.Namespace) -> dict[str, Any]:
    saved = dict(os.environ)
    try:
        return _run(args)
    finally:  # the campaigns set passphrases in the environment; leave it as it was
        os.environ.clear()
        os.environ.update(saved)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("PRAXISBACKUP_KDF_N", "1024")  # key derivation is not what is tested
    work = Path(args.work or tempfile.mkdtemp(prefix="praxisbackup-torture-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"seed": args.seed}
    started = time.monotonic()
    figures["crashes"] = crash_campaign(work, args.crashes, args.seed)
    figures["corruption"] = corruption_campaign(work, args.corruptions, args.seed + 1)
    figures["bad_input"] = bad_input_catalogue(work)
    figures["fuzzing"] = fuzz_campaign(work, args.fuzz_seconds, args.seed + 2)
    figures["security"] = security_checks(work)
    figures["restore_crashes"] = restore_crash_campaign(work, args.restore_crashes, args.seed + 3)
    figures["malicious"] = malicious_campaign(work, args.seed + 4)
    figures["seconds"] = round(time.monotonic() - started, 1)
    if not args.keep:  # rm -rf: crafted trees are deeper than shutil.rmtree can go
        subprocess.run(["rm", "-rf", "--", str(work)], check=False)
    return figures


def goals_met(f: dict[str, Any]) -> bool:
    c, k = f["crashes"], f["corruption"]
    sec = f["security"]["checks"]
    return (
        c["damaged_repositories"] == 0
        and c["lost_snapshots"] == 0
        and k["missed"] == 0
        and k["named_correctly"] == k["named_checked"]
        and k["unaffected_intact"] == k["unaffected_files"]
        and f["bad_input"]["handled"] == f["bad_input"]["cases"]
        and f["fuzzing"]["unhandled"] == 0
        and all(v for name, v in sec.items() if name not in KNOWN_GAPS)
        and f["restore_crashes"]["half_written"] == 0
        and f["restore_crashes"]["not_completed"] == 0
        and f["malicious"]["handled"] == f["malicious"]["cases"]
        and f["malicious"]["outside_writes"] == 0
        and f["malicious"]["tracebacks"] == 0
        and f["malicious"]["special_created"] == 0
    )


def table(f: dict[str, Any]) -> str:
    c, k, b, z, s = f["crashes"], f["corruption"], f["bad_input"], f["fuzzing"], f["security"]
    r, m = f["restore_crashes"], f["malicious"]
    share = k["unaffected_intact"] / k["unaffected_files"] * 100 if k["unaffected_files"] else 100.0
    rows = [
        (
            "crashes (kill -9 at steps, random times, power loss)",
            f"{c['damaged_repositories']} damaged / {c['lost_snapshots']} lost / {c['runs']} runs",
        ),
        (
            "corruption detected or provably harmless",
            f"{k['detected']} detected + {k['harmless']} harmless / {k['injected']} injected, "
            f"{k['missed']} missed",
        ),
        ("damaged files named correctly", f"{k['named_correctly']} / {k['named_checked']}"),
        (
            "unaffected files intact after repair",
            f"{k['unaffected_intact']} / {k['unaffected_files']} ({share:.1f} %)",
        ),
        ("bad inputs handled as specified", f"{b['handled']} / {b['cases']}"),
        ("fuzzing: unhandled exceptions", f"{z['unhandled']} in {z['inputs']} inputs"),
        ("security checks", f"{s['passed']} / {s['total']}"),
        (
            "restore killed: half-written files / not completed by the next run",
            f"{r['half_written']} / {r['not_completed']} in {r['runs']} runs "
            f"({r['killed']} killed mid-way, {r['files_checked']} files checked)",
        ),
        (
            "malicious repositories handled",
            f"{m['handled']} / {m['cases']} ({m['commands']} commands; {m['outside_writes']} "
            f"writes outside the target, {m['tracebacks']} tracebacks, "
            f"{m['special_created']} special files)",
        ),
        ("run time", f"{f['seconds']} s, seed {f['seed']}"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m praxisbackup.torture", description=__doc__)
    parser.add_argument("--crashes", type=int, default=200)
    parser.add_argument("--corruptions", type=int, default=200)
    parser.add_argument("--fuzz-seconds", type=float, default=60)
    parser.add_argument("--restore-crashes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randint(1, 10**6))
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="3 crashes, 8 corruptions, 3 s fuzzing, 3 restore crashes",
    )
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--work", help="Work folder (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder")
    args = parser.parse_args(argv)
    if args.smoke:
        args.crashes, args.corruptions, args.fuzz_seconds = 3, 8, 3.0
        args.restore_crashes = 3
    figures = run(args)
    ok = goals_met(figures)
    figures["goals_met"] = ok
    print(table(figures))
    for section in ("crashes", "corruption", "restore_crashes", "malicious"):
        for failure in figures[section].get("failures", [])[:20]:
            print(f"FAILED: {failure}  (repeat with --seed {figures['seed']})")
    for example in figures["fuzzing"]["examples"]:
        print(f"FUZZ: {example}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
