"""Run a command and write its wall time and peak RSS (KiB) to a file.

Started as a small separate Python process, so the measured command is forked from a process
with a small memory footprint: Linux carries a process's RSS high-water mark across fork and
exec, so measuring directly from the large benchmark process would report its own size.

Usage: python rusage_exec.py RESULT_FILE CWD COMMAND...
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    result_file, cwd, *cmd = sys.argv[1:]
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execvp(cmd[0], cmd)
    _pid, status, usage = os.wait4(pid, 0)
    elapsed = time.monotonic() - start
    with open(result_file, "w") as fh:
        json.dump(
            {
                "seconds": elapsed,
                "maxrss_kib": usage.ru_maxrss,
                "code": os.waitstatus_to_exitcode(status),
            },
            fh,
        )


if __name__ == "__main__":
    main()
