"""Child process for crash runs: one repository operation against a crashing backend.

``python -m praxisbackup.torture.child REPO PASSWORD ACTION KILL [ARG...]`` where ACTION is
backup (ARG = source), prune, rekey (ARG = new passphrase), repair, restore (ARGS = target,
overwrite mode) or restore-practice (ARG = target root); KILL is a step number, ``0``
(never), ``snapshot`` (right before the snapshot is written), ``before-<kind>`` (before the
first write of that kind, e.g. ``before-index``), ``p<step>`` (power loss) or ``r<n>`` (at the
n-th blob read).
Prints ``steps=N`` when it finishes. With ``PRAXISBACKUP_CHILD_WORKERS`` set, a backup reads
with worker processes from the first file (whose packs are committed through the crashing
backend), as the command line does.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime

from praxisbackup.engine.archiver import Archiver, BackupOptions, prepare
from praxisbackup.engine.lock import lock_repository
from praxisbackup.engine.prune import prune
from praxisbackup.engine.repair import repair
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.snapshot import find_snapshot
from praxisbackup.practice.restore import execute, plan_restore
from praxisbackup.torture.faults import CrashingBackend


def backend_for(repo_path: str, spec: str) -> CrashingBackend:
    if spec == "snapshot":
        return CrashingBackend(repo_path, kill_before_kind="snapshots")
    if spec.startswith("before-"):
        return CrashingBackend(repo_path, kill_before_kind=spec[len("before-") :])
    if spec.startswith("r"):
        return CrashingBackend(repo_path, kill_at_read=int(spec[1:]))
    if spec.startswith("p"):
        return CrashingBackend(repo_path, int(spec[1:]), power_loss=True)
    return CrashingBackend(repo_path, int(spec))


def main(argv: list[str]) -> int:
    repo_path, password, action, spec, *rest = argv
    backend = backend_for(repo_path, spec)
    repo = Repository.open(backend, password)
    if action == "backup":
        if os.environ.get("PRAXISBACKUP_CHILD_WORKERS"):
            prepare([rest[0]])  # worker processes from the first file, as the CLI runs
        with lock_repository(repo, exclusive=False, command="backup"):
            repo.load_index()
            Archiver(repo, BackupOptions([rest[0]])).run()
    elif action == "prune":
        with lock_repository(repo, exclusive=True, command="prune"):
            prune(repo)
    elif action == "rekey":
        with lock_repository(repo, exclusive=True, command="key passwd"):
            repo.add_key(rest[0], "new")
            repo.remove_key(repo.key_slot)
    elif action == "repair":
        with lock_repository(repo, exclusive=True, command="repair"):
            repair(repo)
    elif action == "restore":
        repo.load_index()
        snap = find_snapshot(repo, "latest")
        # Reads are counted (and killed at) in this process: no worker processes.
        options = RestoreOptions(target=rest[0], overwrite=rest[1], special=True, processes=0)
        result = Restorer(repo, snap, options).run()
        print(f"reads={backend.reads} files={result.files} errors={len(result.errors)}")
    elif action == "restore-practice":
        # What `restore-practice` does between stopping and starting the services.
        repo.load_index()
        plan = plan_restore(repo, find_snapshot(repo, "latest"), rest[0], datetime.now())
        planned = backend.reads
        practice = execute(repo, plan)
        print(f"reads={backend.reads} plan_reads={planned} ok={practice.ok}")
    else:
        print(f"unknown action {action}", file=sys.stderr)
        return 2
    print(f"steps={backend.steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
