"""The practice's own commands around the night (``[[hooks]]``, like borgmatic's command
hooks): ``before`` a stage, ``after`` it when it did not fail, ``on_error`` when it failed.

Stages: ``night`` is the whole run (before anything is stopped; after the verification),
``backup`` is the downtime window (while the services are stopped). Hooks run through the same
command runner as command services; each one's exit code, time and the end of its output go
into the protocol. A failing ``before`` hook makes the night red and the stage does not run (the
services are still started again); a failing ``after``/``on_error`` hook is a yellow finding.
Hooks see ``PRAXISBACKUP_RUN_ID``, ``PRAXISBACKUP_STAGE``, ``PRAXISBACKUP_STATUS`` (the night
so far) and ``PRAXISBACKUP_MEDIUM`` in their environment.
"""

from __future__ import annotations

import os
import time

from praxisbackup.model.config import HookConfig
from praxisbackup.model.protocol import RED, YELLOW, RunProtocol
from praxisbackup.services.base import ServiceError
from praxisbackup.services.command import run_command

#: Characters of a hook's output kept in the protocol (its end: where errors are).
OUTPUT_LIMIT = 2000


class HookFailedError(Exception):
    """A ``before`` hook failed: the stage must not run."""


class Hooks:
    def __init__(self, hooks: list[HookConfig], protocol: RunProtocol) -> None:
        self.hooks = hooks
        self.protocol = protocol

    def run(self, when: str, stage: str) -> bool:
        """Run every hook for (when, stage) in order; False if one failed. ``before``
        hooks stop at the first failure and raise :class:`HookFailedError`."""
        ok = True
        for hook in self.hooks:
            if hook.when != when or hook.stage != stage:
                continue
            if not self._run_one(hook):
                ok = False
                if when == "before":
                    raise HookFailedError(hook.name)
        return ok

    def _run_one(self, hook: HookConfig) -> bool:
        p = self.protocol
        env = dict(
            os.environ,
            PRAXISBACKUP_RUN_ID=p.run_id,
            PRAXISBACKUP_STAGE=hook.stage,
            PRAXISBACKUP_STATUS=p.status,
            PRAXISBACKUP_MEDIUM=p.medium_label,
        )
        started = time.monotonic()
        try:
            proc = run_command(hook.command, hook.timeout_seconds, hook.name, env)
            code, output = proc.returncode, (proc.stdout + proc.stderr)
            error = "" if code == 0 else f"exit {code}"
        except ServiceError as exc:
            code, output, error = -1, "", str(exc)
        p.hooks.append(
            {
                "name": hook.name,
                "when": hook.when,
                "stage": hook.stage,
                "exit": code,
                "seconds": round(time.monotonic() - started, 2),
                "output": output[-OUTPUT_LIMIT:],
            }
        )
        if error:
            level = RED if hook.when == "before" else YELLOW
            p.add(level, "hook_failed", hook=hook.name, when=hook.when, error=error)
            return False
        return True
