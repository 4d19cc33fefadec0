"""The nightly job: everything a careful service partner would do by hand, in order.

1. check the sources and the CGM M1 PRO essential items (before anything is stopped)
2. find the attached medium by its label; refuse one on the same disk as the data
3. open its repository and check free space
4. stop the services; confirm the database files are closed
5. back up (a complete snapshot)
6. start the services again - always, also after errors, Ctrl-C and SIGTERM
7. read the new data back from the medium itself and verify every chunk
8. write the protocol to the local catalog, a log file, and (encrypted) onto the medium

The outcome is green, yellow or red with the reasons, never an unexplained failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta

from praxisbackup import __version__, platform
from praxisbackup.app.downtime import (
    FilesStillOpenError,
    ServicesNotStoppedError,
    service_sequence,
    services_stopped,
)
from praxisbackup.app.drill import import_drills
from praxisbackup.app.emergency import current_sheet_facts
from praxisbackup.app.hooks import HookFailedError, Hooks
from praxisbackup.app.interrupt import Interrupted, StopRequests
from praxisbackup.app.runlock import RunLock
from praxisbackup.catalog.runs import Catalog
from praxisbackup.credentials import repository_passphrase
from praxisbackup.engine.archiver import Archiver, BackupOptions, cancel_prepared
from praxisbackup.engine.archiver import prepare as prepare_backup
from praxisbackup.engine.checker import Checker
from praxisbackup.engine.forget import HOLD_PREFIX, hold_until
from praxisbackup.engine.lock import lock_repository
from praxisbackup.engine.progress import Progress
from praxisbackup.engine.prune import prune
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import forget_snapshot, list_snapshots, load_snapshot
from praxisbackup.errors import PraxisError
from praxisbackup.media import label as media
from praxisbackup.media import selection
from praxisbackup.media.oversight import oversight
from praxisbackup.media.register import Register
from praxisbackup.model.config import Config, ServiceConfig
from praxisbackup.model.locations import catalog_path, state_dir
from praxisbackup.model.protocol import RED, YELLOW, RunProtocol, SourceResult
from praxisbackup.platform.private import open_private, private_dir
from praxisbackup.practice import profiles, recovery
from praxisbackup.report.render import render_text
from praxisbackup.report.units import human_size
from praxisbackup.services import ServiceBackend, ServiceSequence, make_service
from praxisbackup.storage import LocalBackend

SAFETY_MARGIN = 64 << 20


class NightlyJob:
    def __init__(
        self,
        config: Config,
        passphrase: str | None = None,
        progress: Progress | None = None,
        service_factory: Callable[[ServiceConfig], ServiceBackend] = make_service,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.passphrase = passphrase
        self.progress = progress or Progress()
        self.state_dir = str(state_dir(config))
        self.stops = StopRequests()
        self.service_factory = service_factory
        #: The job's notion of "now" (rotation day, retention, oversight); injectable for tests.
        self.clock = clock or (lambda: datetime.now().astimezone())
        now = self.clock()
        self.protocol = RunProtocol(
            run_id=now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3),
            practice=config.practice.name,
            host=platform.hostname(),
            started=now.isoformat(timespec="seconds"),
            program_version=__version__,
        )
        self.hooks = Hooks(config.hooks, self.protocol)
        self.repo: Repository | None = None
        self.choice: selection.Choice | None = None

    # -- entry point ----------------------------------------------------------------------
    def run(self) -> RunProtocol:
        p = self.protocol
        from praxisbackup.notify.alerts import heartbeat  # noqa: PLC0415

        heartbeat(self.config.notify.heartbeat_url, "start")
        catalog = Catalog(catalog_path(self.config))
        with RunLock(self.state_dir), self.stops:
            try:
                self.hooks.run("before", "night")
                self._run(catalog)
            except HookFailedError:
                pass  # recorded as a red finding; nothing was stopped
            except Interrupted as exc:
                p.add(RED, "interrupted", reason=str(exc))
            except KeyboardInterrupt:
                p.add(RED, "interrupted", reason="Ctrl-C")
            except PraxisError as exc:
                p.add(RED, "backup_failed", error=str(exc))
            except Exception as exc:  # noqa: BLE001 - the protocol must name every failure
                p.add(RED, "backup_failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                cancel_prepared()  # (nothing left after a backup)
                # Recording and notifying must not be cut short by a second stop request.
                self.stops.disarm()
                self.hooks.run("on_error" if p.status == RED else "after", "night")
                p.finished = self.clock().isoformat(timespec="seconds")
                self._record(catalog)
                self._notify(catalog)
        return p

    def _notify(self, catalog: Catalog) -> None:
        """E-mail, daily check and heartbeat; failures become protocol lines, never lost mail."""
        from praxisbackup.app.dispatch import after_run  # noqa: PLC0415 - avoids an import cycle

        for severity, problem in after_run(self.config, self.protocol, self.clock()):
            self.protocol.add(severity, "alert_problem", problem=problem)
        if any(f.code == "alert_problem" for f in self.protocol.findings):
            catalog.record_run(self.protocol)

    def _record(self, catalog: Catalog) -> None:
        p = self.protocol
        catalog.record_run(p)
        log_dir = os.path.join(self.state_dir, "logs")
        private_dir(log_dir)
        with open_private(os.path.join(log_dir, f"{p.run_id}.log"), "w", encoding="utf-8") as fh:
            fh.write(render_text(p, "en"))
        if self.repo is not None:
            payload = p.to_json().encode()
            try:
                self.repo.write_meta(f"protocol-{p.run_id}", payload)
                self.repo.write_meta("protocol-latest", payload)
            except PraxisError as exc:
                p.add(
                    YELLOW, "medium_problem", problem=f"protocol not written to the medium: {exc}"
                )
                catalog.record_run(p)
            self.repo.close()

    # -- the steps ------------------------------------------------------------------------
    def _sources(self) -> list[tuple[str, str, list[str]]] | None:
        """(label, path, excludes) per source, after checking existence and the profile."""
        p, cfg = self.protocol, self.config
        result: list[tuple[str, str, list[str]]] = []
        ok = True
        for src in cfg.sources:
            problem = profiles.source_problem(src.path)
            if problem is not None:
                code, params = problem
                p.add(RED, code, label=src.label, path=src.path, **params)
                ok = False
                continue
            paths = [src.path]
            if src.profile == profiles.PROFILE:
                inst = profiles.detect_source(src.path)
                if inst is None:
                    p.add(RED, "profile_missing", path=os.path.join(src.path, "M1"))
                    ok = False
                    continue
                if src.mode == "minimal":
                    paths = profiles.minimal_paths(inst)
                check = profiles.check_installation(
                    inst, [s.path for s in cfg.sources if s is not src] + paths
                )
                p.profile = asdict(check)
                for item in check.missing_required:
                    p.add(RED, "profile_missing", path=item)
                for item in check.not_covered:
                    p.add(RED, "profile_not_covered", path=item)
                for item in check.missing_optional:
                    p.add("info", "profile_optional_missing", path=item)
                ok = ok and check.ok
            result.extend((src.label, path, list(src.exclude)) for path in paths)
        return result if ok else None

    def _medium(self, source_paths: list[str], register: Register) -> media.AttachedMedium | None:
        p, cfg = self.protocol, self.config
        found, problems = media.discover(cfg.media.candidates)
        for problem in problems:
            p.add(YELLOW, "medium_problem", problem=problem)
        choice = selection.choose(cfg, register, found, selection.backup_day(self.clock()))
        self.choice = choice
        expected = choice.expected.label if choice.expected else "-"
        p.expected_medium = "" if expected == "-" else expected
        for unknown in choice.unknown:
            p.add(RED if choice.medium is None else YELLOW, "medium_unregistered", medium=unknown)
        if choice.medium is None:
            if not choice.unknown and cfg.rotation is not None and choice.expected is None:
                # No backup is planned tonight (weekend, holiday, closing day) and no medium
                # is attached: nothing is wrong. A medium attached anyway is still written to.
                p.planned = False
                p.add("info", "no_backup_planned")
            elif not choice.unknown:
                p.add(
                    RED,
                    "no_medium",
                    candidates=", ".join(cfg.media.candidates) or "-",
                    expected=expected,
                )
            return None
        chosen = choice.medium
        if len(found) > 1:
            p.add(
                YELLOW,
                "several_media",
                labels=", ".join(m.label.label for m in found),
                used=chosen.label.label,
            )
        if choice.wrong:
            refuse = cfg.rotation is not None and cfg.rotation.wrong_medium == "refuse"
            p.add(
                RED if refuse else YELLOW,
                "wrong_medium",
                expected=expected,
                used=chosen.label.label,
            )
            if refuse:
                return None
        p.medium_id, p.medium_label, p.medium_path = (
            chosen.label.medium_id,
            chosen.label.label,
            chosen.root,
        )
        if cfg.rotation is not None and cfg.rotation.override_reason:
            p.add(YELLOW, "config_override", reason=cfg.rotation.override_reason)
        shared = media.same_disk(chosen.root, source_paths)
        if shared and not cfg.media.allow_same_disk:
            p.add(RED, "same_disk", sources=", ".join(shared))
            return None
        if shared:
            p.add(YELLOW, "same_disk_allowed")
        return chosen

    def _run(self, catalog: Catalog) -> None:
        p, cfg = self.protocol, self.config
        sources = self._sources()
        if sources is None:
            return
        source_paths = [path for _label, path, _ex in sources]
        register = Register(catalog_path(self.config))
        medium = self._medium(source_paths, register)
        if medium is None:
            return
        passphrase = self.passphrase or repository_passphrase(cfg)
        backend = LocalBackend(medium.repository_path)
        # Worker processes and the sources' metadata walk start while the key is derived, as
        # for the backup command (undone in run() if the night stops before the backup).
        prepare_backup(source_paths)
        self.repo = repo = Repository.open(backend, passphrase)
        if repo.config.id != medium.label.repository_id:
            p.add(
                RED,
                "medium_problem",
                problem="the repository on the medium does not match its label",
            )
            return
        self._medium_housekeeping(repo, register, medium, passphrase)
        self._check_history(repo, catalog, medium)
        needed = int(catalog.last_new_bytes() * cfg.media.free_space_factor) + SAFETY_MARGIN
        if not self._make_room(repo, needed):
            return
        services = service_sequence(cfg.services, self.service_factory)
        with lock_repository(repo, exclusive=False, command="nightly job"):
            repo.load_index()
            packs_before = {pid for pid, _ in repo.index.packs()}
            try:
                with services_stopped(
                    services, [c for s in cfg.services for c in s.check_closed], self.stops
                ):
                    self._backup_stage(repo, sources)
            except HookFailedError:
                return
            except ServicesNotStoppedError as exc:
                p.add(RED, "service_stop_failed", service=exc.service, error=exc.error)
                return
            except FilesStillOpenError as exc:
                p.add(RED, "files_open", paths=", ".join(exc.paths[:5]))
                return
            finally:
                self._service_protocol(services)
            self._verify(repo, packs_before, register)
        when = self.clock().isoformat(timespec="seconds")
        register.event(medium.label.medium_id, "used", "attached", "", p.run_id, when=when)
        try:
            repo.write_meta("register", register.export())
        except PraxisError as exc:
            p.add(YELLOW, "medium_problem", problem=f"register copy not written: {exc}")
        self._oversight(register, catalog)

    def _check_history(
        self, repo: Repository, catalog: Catalog, medium: media.AttachedMedium
    ) -> None:
        """Snapshots this server wrote to the medium must still be there, unless a run forgot
        them: a missing one means someone deleted it (or restored an old copy of the medium)."""
        written, forgotten = catalog.snapshots_written(medium.label.medium_id)
        present = set(repo.list_names("snapshots"))
        missing = sorted(written - forgotten - present)
        if missing:
            self.protocol.add(
                YELLOW,
                "snapshots_missing",
                count=len(missing),
                ids=", ".join(m[:8] for m in missing[:10]),
            )

    def _medium_housekeeping(
        self, repo: Repository, register: Register, medium: media.AttachedMedium, passphrase: str
    ) -> None:
        """Give the medium the practice's recovery key if it lacks it, and learn about restore
        tests (drills) that were run on other machines with this medium."""
        key = recovery.load(self.state_dir, passphrase)
        if key is not None:
            recovery.ensure_slot(repo, key)
        import_drills(repo, register, medium.label.medium_id)

    def _make_room(self, repo: Repository, needed: int) -> bool:
        """Free space for tonight: forget the oldest snapshots that are not held (archives
        are never touched), newest unheld one always kept; red if still not enough."""
        p = self.protocol
        free = repo.backend.free_space()
        if free is None or free >= needed:
            return True
        today = self.clock().date()
        candidates = [s for s in list_snapshots(repo) if not ((h := hold_until(s)) and h >= today)]
        forgotten = False
        with lock_repository(repo, exclusive=True, command="nightly job (space)"):
            for snap in candidates[:-1]:
                forget_snapshot(repo, snap.id)
                p.add(
                    YELLOW,
                    "snapshot_forgotten",
                    snapshot=snap.short_id,
                    time=snap.time[:16],
                    id=snap.id,
                )
                forgotten = True
                prune(repo)
                free = repo.backend.free_space() or 0
                if free >= needed:
                    return True
            if forgotten:
                prune(repo)
        free = repo.backend.free_space() or 0
        if free < needed:
            p.add(RED, "medium_full", free=human_size(free), needed=human_size(needed))
            return False
        return True

    def _oversight(self, register: Register, catalog: Catalog) -> None:
        runs = catalog.runs(limit=200)
        facts = current_sheet_facts(self.config, register)
        sheet = recovery.sheet_state(self.state_dir, facts)
        if sheet != "current":
            self.protocol.add(YELLOW if sheet == "outdated" else "info", "sheet_outdated")
        for warning in oversight(self.config, register, self.clock(), [self.protocol, *runs]):
            self.protocol.add(YELLOW, warning.code, **warning.params)

    def _service_protocol(self, services: ServiceSequence) -> None:
        p = self.protocol
        p.services = [asdict(e) for e in services.timeline.events]
        p.downtime_seconds = services.timeline.downtime_seconds
        for name in services.timeline.failed_to_start:
            p.add(RED, "service_start_failed", service=name)

    def _backup_stage(self, repo: Repository, sources: list[tuple[str, str, list[str]]]) -> None:
        """What happens while the services are stopped: hooks around the snapshot."""
        self.hooks.run("before", "backup")
        try:
            self._backup(repo, sources)
        except BaseException:
            self.hooks.run("on_error", "backup")
            raise
        self.hooks.run("after", "backup")

    def _backup(self, repo: Repository, sources: list[tuple[str, str, list[str]]]) -> None:
        p = self.protocol
        excludes = sorted({e for _l, _p, ex in sources for e in ex})
        tags = ["nightly"]
        if self.choice is not None and self.choice.hold_until is not None:
            tags.append(f"{HOLD_PREFIX}{self.choice.hold_until.isoformat()}")
            p.hold_until = self.choice.hold_until.isoformat()
        options = BackupOptions([path for _l, path, _e in sources], excludes=excludes, tags=tags)
        result = Archiver(repo, options, self.progress).run()
        snap = result.snapshot
        p.snapshot_id = snap.id
        labels = {os.path.normpath(os.path.abspath(path)): label for label, path, _e in sources}
        p.sources = [
            SourceResult(labels.get(s.path, s.path), s.path, s.files, s.bytes, s.new_bytes)
            for s in result.sources
        ]
        p.skipped = [asdict(s) for s in snap.skipped]
        p.warnings = [asdict(s) for s in snap.warnings]
        if snap.skipped:
            p.add(YELLOW, "files_skipped", count=len(snap.skipped))
        if snap.warnings:
            p.add(YELLOW, "files_changed", count=len(snap.warnings))
        p.add("info", "run_ok", snapshot=snap.short_id, medium=p.medium_label)

    def _verify(self, repo: Repository, packs_before: set[str], register: Register) -> None:
        """Read back what this run wrote from the medium itself; read *everything* when the
        medium's last full read is older than ``full_cycle_days`` (or with level "full")."""
        p, cfg = self.protocol, self.config
        if not p.snapshot_id:
            return
        all_packs = sorted(pid for pid, _ in repo.index.packs())
        record = register.get(p.medium_id)
        last_full = (
            datetime.fromisoformat(record.last_full_verify)
            if record and record.last_full_verify
            else None
        )
        due = last_full is None or self.clock() - last_full > timedelta(
            days=cfg.verify.full_cycle_days
        )
        full = cfg.verify.level == "full" or due
        chosen = all_packs if full else [pid for pid in all_packs if pid not in packs_before]
        checker = Checker(repo)
        result = checker.verify_packs(chosen)
        damaged = checker.check_snapshot_tree(load_snapshot(repo, p.snapshot_id).tree_id)
        p.verification.packs_read = result.packs_read
        p.verification.bytes_read = result.bytes_read
        p.verification.errors = [f"{e.kind} {e.object[:12]}: {e.message}" for e in result.errors]
        p.verification.errors += [f"not intact: {path}" for path in damaged]
        p.verification.ok = not p.verification.errors
        if p.verification.ok and full:
            when = self.clock().isoformat(timespec="seconds")
            register.event(p.medium_id, "verified-full", "attached", "", p.run_id, when=when)
        p.verification.level = "full" if full else "new-data"
        if p.verification.ok:
            p.add("info", "verify_ok", packs=result.packs_read, size=human_size(result.bytes_read))
        else:
            p.add(RED, "verify_failed", error="; ".join(p.verification.errors[:5]))
