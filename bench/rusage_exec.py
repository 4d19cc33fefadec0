"""Run a command and write its wall time and peak memory to a file.

Started as a small separate Python process, so the measured command is forked from a process
with a small memory footprint: Linux carries a process's RSS high-water mark across fork and
exec, so measuring directly from the large benchmark process would report its own size.

Two memory figures: ``maxrss_kib`` is what the kernel reports for the command (the largest
single process of its tree), ``rss_sum_kib`` the largest *sum* of the resident sizes of the
command and all its descendants, sampled every 50 ms - the honest figure for a program that
runs worker processes (praxisbackup's backup).

Usage: python rusage_exec.py RESULT_FILE CWD COMMAND...
"""

from __future__ import annotations

import json
import os
import sys
import time


def _children(pid: int) -> list[int]:
    """Child processes of ``pid`` (started by any of its threads)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                found.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def tree_rss_kib(root: int) -> int:
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _rss_kib(pid)
        stack.extend(_children(pid))
    return total


def main() -> None:
    result_file, cwd, *cmd = sys.argv[1:]
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execvp(cmd[0], cmd)
    peak_sum = 0
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        peak_sum = max(peak_sum, tree_rss_kib(pid))
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    with open(result_file, "w") as fh:
        json.dump(
            {
                "seconds": elapsed,
                "maxrss_kib": usage.ru_maxrss,
                "rss_sum_kib": max(peak_sum, usage.ru_maxrss),
                "code": os.waitstatus_to_exitcode(status),
            },
            fh,
        )


if __name__ == "__main__":
    main()
