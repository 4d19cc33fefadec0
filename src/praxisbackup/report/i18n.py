"""Texts that staff read, in German (default) and English. One table, one source of truth."""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, dict[str, str]] = {
    # status words
    "status.green": {
        "de": "GRÜN – Sicherung vollständig und geprüft",
        "en": "GREEN – backup complete and verified",
    },
    "status.yellow": {
        "de": "GELB – Sicherung mit Warnungen",
        "en": "YELLOW – backup finished with warnings",
    },
    "status.red": {
        "de": "ROT – Sicherung fehlgeschlagen oder unvollständig",
        "en": "RED – backup failed or incomplete",
    },
    # findings
    "no_medium": {
        "de": "Kein Sicherungsmedium angeschlossen (gesucht in: {candidates}). Heute vorgesehen: „{expected}“.",
        "en": "No backup medium attached (looked in: {candidates}). Due tonight: '{expected}'.",
    },
    "medium_unregistered": {
        "de": "Unbekanntes Medium {medium} angeschlossen – es wird nicht beschrieben (zuerst „praxisbackup medium init“).",
        "en": "Unknown medium {medium} attached – it is not written to (run 'praxisbackup medium init' first).",
    },
    "wrong_medium": {
        "de": "Falsches Medium: vorgesehen war „{expected}“, angeschlossen ist „{used}“.",
        "en": "Wrong medium: '{expected}' was due, '{used}' is attached.",
    },
    "snapshots_missing": {
        "de": "{count} Sicherungsstände, die dieser Server auf das Medium geschrieben hat, fehlen dort ({ids}). Wenn niemand „forget“ ausgeführt hat, wurde das Medium verändert – bitte den Servicepartner informieren.",
        "en": "{count} snapshots this server wrote to the medium are missing there ({ids}). If nobody ran 'forget', the medium was tampered with – inform the service partner.",
    },
    "snapshot_forgotten": {
        "de": "Platz geschaffen: ältere Sicherung {snapshot} vom {time} entfernt (nicht archiviert).",
        "en": "Made room: removed older backup {snapshot} of {time} (not an archive).",
    },
    "medium_unseen": {
        "de": "Medium „{medium}“ wurde seit {days} Tagen nicht benutzt (zuletzt: {location}) – verloren oder noch außer Haus?",
        "en": "Medium '{medium}' has not been used for {days} days (last known: {location}) – lost or still off-site?",
    },
    "medium_not_verified": {
        "de": "Medium „{medium}“ wurde seit über einem Monat nicht vollständig geprüft.",
        "en": "Medium '{medium}' has not been fully verified for more than a month.",
    },
    "medium_no_drill": {
        "de": "Für Medium „{medium}“ steht der halbjährliche Rücksicherungstest auf einem anderen Rechner aus.",
        "en": "Medium '{medium}' is due for its six-monthly restore test on another machine.",
    },
    "daily_set_incomplete": {
        "de": "Tagesmedien nicht alle in den letzten {days} Tagen benutzt: {media}.",
        "en": "Not all daily media were used in the last {days} days: {media}.",
    },
    "archive_retention_ends": {
        "de": "Die Aufbewahrungsfrist des Archivmediums „{medium}“ endet am {date}.",
        "en": "The retention of archive medium '{medium}' ends on {date}.",
    },
    "several_media": {
        "de": "Mehrere Sicherungsmedien angeschlossen ({labels}); verwendet wurde {used}.",
        "en": "Several backup media attached ({labels}); {used} was used.",
    },
    "medium_problem": {
        "de": "Problem mit einem Medium: {problem}",
        "en": "Problem with a medium: {problem}",
    },
    "same_disk": {
        "de": "Das Medium liegt auf derselben Festplatte wie {sources}. Das ist KEINE Sicherung.",
        "en": "The medium is on the same disk as {sources}. This is NOT a backup.",
    },
    "same_disk_allowed": {
        "de": "ACHTUNG: Medium auf derselben Festplatte wie die Daten (nur für Vorführungen erlaubt) – das ist keine echte Sicherung.",
        "en": "WARNING: medium on the same disk as the data (allowed for demonstrations only) – this is not a real backup.",
    },
    "medium_full": {
        "de": "Auf dem Medium sind nur {free} frei, benötigt werden etwa {needed}.",
        "en": "Only {free} free on the medium, about {needed} are needed.",
    },
    "source_missing": {
        "de": "Quelle „{label}“ fehlt: {path}",
        "en": "Source '{label}' is missing: {path}",
    },
    "profile_missing": {
        "de": "Wichtiger CGM-M1-PRO-Ordner bzw. -Datei fehlt: {path}",
        "en": "Essential CGM M1 PRO folder or file is missing: {path}",
    },
    "profile_not_covered": {
        "de": "Wichtiger Ordner wird von keiner Quelle gesichert: {path}",
        "en": "Essential folder is not covered by any source: {path}",
    },
    "profile_optional_missing": {
        "de": "Optionaler Eintrag nicht vorhanden (kann fehlen): {path}",
        "en": "Optional item not present (may be missing): {path}",
    },
    "service_stop_failed": {
        "de": "Dienst „{service}“ ließ sich nicht beenden: {error}. Es wurde nichts gesichert.",
        "en": "Service '{service}' could not be stopped: {error}. Nothing was backed up.",
    },
    "service_start_failed": {
        "de": "Dienst „{service}“ ließ sich NICHT wieder starten – bitte sofort prüfen!",
        "en": "Service '{service}' could NOT be started again – check it immediately!",
    },
    "files_open": {
        "de": "Datenbankdateien sind noch geöffnet ({paths}); es wurde nichts gesichert.",
        "en": "Database files are still open ({paths}); nothing was backed up.",
    },
    "backup_failed": {
        "de": "Die Sicherung ist fehlgeschlagen: {error}",
        "en": "The backup failed: {error}",
    },
    "interrupted": {
        "de": "Die Sicherung wurde abgebrochen ({reason}).",
        "en": "The backup was interrupted ({reason}).",
    },
    "files_skipped": {
        "de": "{count} Dateien konnten nicht gelesen werden (siehe Liste).",
        "en": "{count} files could not be read (see list).",
    },
    "files_changed": {
        "de": "{count} Dateien änderten sich während der Sicherung (siehe Liste).",
        "en": "{count} files changed during the backup (see list).",
    },
    "verify_failed": {
        "de": "Die Prüfung der Sicherung auf dem Medium ist fehlgeschlagen: {error}",
        "en": "Verifying the backup on the medium failed: {error}",
    },
    "verify_ok": {
        "de": "Sicherung vom Medium zurückgelesen und geprüft ({packs} Pakete, {size}).",
        "en": "Backup read back from the medium and verified ({packs} packs, {size}).",
    },
    "run_ok": {
        "de": "Sicherung {snapshot} auf Medium „{medium}“ geschrieben.",
        "en": "Backup {snapshot} written to medium '{medium}'.",
    },
    "alert_problem": {"de": "Benachrichtigung: {problem}", "en": "Notification: {problem}"},
    "config_override": {
        "de": "Abweichung von der Regel: {reason}",
        "en": "Rule override: {reason}",
    },
    # labels used by renderers
    "title": {"de": "Sicherungsprotokoll", "en": "Backup protocol"},
    "practice": {"de": "Praxis", "en": "Practice"},
    "started": {"de": "Beginn", "en": "Started"},
    "finished": {"de": "Ende", "en": "Finished"},
    "medium": {"de": "Medium", "en": "Medium"},
    "snapshot": {"de": "Sicherungsstand", "en": "Snapshot"},
    "sources": {"de": "Gesicherte Quellen", "en": "Sources"},
    "files": {"de": "Dateien", "en": "Files"},
    "size": {"de": "Größe", "en": "Size"},
    "new_data": {"de": "neu gespeichert", "en": "newly stored"},
    "services": {"de": "Dienste", "en": "Services"},
    "downtime": {"de": "Ausfallzeit der Dienste", "en": "Service downtime"},
    "findings": {"de": "Meldungen", "en": "Findings"},
    "problems": {
        "de": "Nicht gesicherte oder geänderte Dateien",
        "en": "Files not backed up or changed",
    },
    "verification": {"de": "Prüfung", "en": "Verification"},
    "what_to_do": {"de": "Was ist zu tun?", "en": "What to do?"},
    "todo.green": {
        "de": "Nichts weiter. Bitte das Medium wie im Plan vorgesehen wechseln und außer Haus bringen.",
        "en": "Nothing else. Please change the medium as planned and take it off-site.",
    },
    "todo.yellow": {
        "de": "Die Sicherung ist verwendbar. Bitte die Meldungen lesen und bei Unklarheiten den Servicepartner informieren.",
        "en": "The backup is usable. Please read the findings and inform the service partner if unsure.",
    },
    "todo.red": {
        "de": "Bitte heute den Servicepartner informieren. Die letzte Nacht ist NICHT gesichert.",
        "en": "Please inform the service partner today. Last night is NOT backed up.",
    },
    "seconds": {"de": "Sekunden", "en": "seconds"},
    "mail.next_medium": {
        "de": "Als Nächstes vorgesehen: Medium „{label}“.",
        "en": "Next medium due: '{label}'.",
    },
    "mail.attached": {
        "de": "Das vollständige Protokoll ist als PDF und HTML angehängt.",
        "en": "The full protocol is attached as PDF and HTML.",
    },
    "mail.missed": {
        "de": "Keine Datensicherung in der letzten Nacht",
        "en": "No backup last night",
    },
    "mail.back_to_normal": {"de": "Datensicherung läuft wieder", "en": "Backups are working again"},
    "mail.back_to_normal_body": {
        "de": "Die Datensicherung ist wieder erfolgreich gelaufen. Es ist nichts weiter zu tun.",
        "en": "The backup ran successfully again. Nothing else to do.",
    },
    "mail.unconfirmed": {
        "de": "Datensicherung heute noch nicht kontrolliert",
        "en": "Backup not checked today",
    },
    "mail.unconfirmed_body": {
        "de": "{person} hat die Kontrolle der Datensicherung heute noch nicht bestätigt. Bitte übernehmen ({who}): Protokoll prüfen, Medium wechseln, mit „praxisbackup ack“ bestätigen.",
        "en": "{person} has not confirmed today's backup check. Please take over ({who}): check the protocol, change the medium, confirm with 'praxisbackup ack'.",
    },
    "mail.test": {"de": "Testnachricht von praxisbackup", "en": "Test message from praxisbackup"},
    "cause.no_medium": {
        "de": "Wahrscheinliche Ursache: kein Sicherungsmedium angeschlossen.",
        "en": "Likely cause: no backup medium was attached.",
    },
    "cause.red": {
        "de": "Die Sicherung ist gelaufen, aber fehlgeschlagen ({reason}).",
        "en": "The backup ran but failed ({reason}).",
    },
    "cause.not_run": {
        "de": "Wahrscheinliche Ursache: Der Server war aus oder die geplante Aufgabe ist nicht gelaufen.",
        "en": "Likely cause: the server was off or the scheduled task did not run.",
    },
    "cause.unknown": {
        "de": "Die Ursache ist unklar; bitte das Protokoll prüfen.",
        "en": "The cause is unclear; please check the protocol.",
    },
    "today.title": {"de": "Datensicherung heute, {date}", "en": "Backup today, {date}"},
    "today.tonight": {
        "de": "Heute Abend anschließen: „{label}“ ({role})",
        "en": "Attach tonight: '{label}' ({role})",
    },
    "today.no_backup": {
        "de": "Heute ist kein Arbeitstag ({reason}) – keine Sicherung geplant.",
        "en": "Today is not a working day ({reason}) – no backup planned.",
    },
    "today.last_run": {
        "de": "Letzte Sicherung: {status} ({time}, Medium „{medium}“)",
        "en": "Last backup: {status} ({time}, medium '{medium}')",
    },
    "today.no_run": {"de": "Noch keine Sicherung gelaufen.", "en": "No backup has run yet."},
    "today.take_offsite": {
        "de": "Nach der Kontrolle außer Haus bringen: „{label}“",
        "en": "After checking, take off-site: '{label}'",
    },
    "today.bring_back": {
        "de": "Zurückholen für {date}: „{label}“ (ist {location})",
        "en": "Bring back for {date}: '{label}' (currently {location})",
    },
    "today.unconfirmed": {
        "de": "Die Kontrolle der letzten Sicherung ist noch nicht bestätigt („praxisbackup ack“).",
        "en": "The check of the last backup is not confirmed yet ('praxisbackup ack').",
    },
    "today.undelivered": {
        "de": "Nicht zugestellte Benachrichtigung: {subject} ({error})",
        "en": "Undelivered notification: {subject} ({error})",
    },
    "restore.title": {"de": "Rücksicherungsprotokoll", "en": "Restore protocol"},
    "restore.ok": {
        "de": "Rücksicherung vollständig und geprüft.",
        "en": "Restore complete and verified.",
    },
    "restore.failed": {
        "de": "Rücksicherung mit FEHLERN – bitte Servicepartner informieren.",
        "en": "Restore with ERRORS – inform the service partner.",
    },
    "restore.source": {
        "de": "Rücksicherung am {time} aus Sicherungsstand {snapshot} (Medium „{medium}“)",
        "en": "Restore at {time} from snapshot {snapshot} (medium '{medium}')",
    },
    "restore.renamed": {"de": "umbenannt: {old} -> {new}", "en": "renamed: {old} -> {new}"},
    "restore.counts": {
        "de": "{files} Dateien, {dirs} Ordner, {size} in {seconds} s zurückgesichert; geprüft: {verified}",
        "en": "restored {files} files, {dirs} folders, {size} in {seconds} s; verified {verified}",
    },
    "restore.missing": {
        "de": "FEHLT in der Sicherung: {path}",
        "en": "MISSING in the snapshot: {path}",
    },
    "restore.warning": {"de": "Hinweis: {path}: {reason}", "en": "warning: {path}: {reason}"},
    "restore.error": {"de": "FEHLER: {path}: {reason}", "en": "ERROR: {path}: {reason}"},
    "hook_failed": {
        "de": "Eigener Befehl „{hook}“ ({when}) fehlgeschlagen: {error}",
        "en": "Own command '{hook}' ({when}) failed: {error}",
    },
    "hooks": {"de": "Eigene Befehle", "en": "Own commands"},
    "sheet.title": {"de": "Notfallblatt Datensicherung", "en": "Backup emergency sheet"},
    "sheet.created": {
        "de": "Erstellt: {date}   Im Tresor aufbewahren!",
        "en": "Created: {date}   Keep it in the safe!",
    },
    "sheet.key": {
        "de": "WIEDERHERSTELLUNGSSCHLÜSSEL (öffnet jedes Sicherungsmedium der Praxis):",
        "en": "RECOVERY KEY (opens every backup medium of the practice):",
    },
    "sheet.media": {"de": "Medien:", "en": "Media:"},
    "sheet.services": {
        "de": "Dienste (vor der Rücksicherung beenden):",
        "en": "Services (stop before restoring):",
    },
    "sheet.items": {
        "de": "Zurückgesicherte Ordner und Dateien (CGM M1 PRO):",
        "en": "Folders and files restored (CGM M1 PRO):",
    },
    "sheet.steps": {"de": "Schritte auf einem neuen Server:", "en": "Steps on a new server:"},
    "sheet.contacts": {"de": "Kontakte:", "en": "Contacts:"},
    "sheet_outdated": {
        "de": "Das Notfallblatt ist nicht mehr aktuell (Medien oder Dienste geändert): „praxisbackup emergency-sheet“ ausführen, ausdrucken, in den Tresor legen.",
        "en": "The emergency sheet is out of date (media or services changed): run 'praxisbackup emergency-sheet', print it, put it in the safe.",
    },
    "today.warnings": {"de": "Hinweise:", "en": "Notes:"},
    "plan.title": {"de": "Sicherungsplan", "en": "Backup plan"},
    "role.daily": {"de": "Tagesmedium", "en": "daily medium"},
    "role.biweekly": {"de": "14-tägliches Freitagsmedium", "en": "every-second-Friday medium"},
    "role.month_end": {"de": "Monatsende (Archiv)", "en": "month end (archive)"},
    "role.quarter_end": {
        "de": "Quartalsende (Archiv, mind. 2 Jahre)",
        "en": "quarter end (archive, at least 2 years)",
    },
    "role.other": {"de": "sonstiges Medium", "en": "other medium"},
    "weekend": {"de": "Wochenende", "en": "weekend"},
    "closed": {"de": "Praxis geschlossen", "en": "practice closed"},
    "location.attached": {"de": "angeschlossen", "en": "attached"},
    "location.practice": {"de": "in der Praxis", "en": "in the practice"},
    "location.offsite": {"de": "außer Haus", "en": "off-site"},
    "location.archive": {"de": "im Archiv/Tresor", "en": "in the archive safe"},
    "location.retired": {"de": "ausgemustert", "en": "retired"},
    "host": {"de": "Server", "en": "Server"},
}


def text(code: str, lang: str, **params: Any) -> str:
    """The message for ``code`` in ``lang`` (German if missing), filled with ``params``."""
    entry = MESSAGES.get(code)
    if entry is None:
        return code + (f" {params}" if params else "")
    template = entry.get(lang) or entry["de"]
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return template


def day_off_reason(reason: str, lang: str) -> str:
    """Why a night has no backup: a holiday's name as it is, else "weekend" / "closed"."""
    return text(reason, lang) if reason in ("weekend", "closed") else reason


#: Step-by-step restore instructions printed on the emergency sheet.
SHEET_STEPS = {
    "de": [
        "1. Neuen Server bereitstellen; CGM M1 PRO von der Installations-DVD neu installieren und auf den",
        "   Programmstand der Sicherung aktualisieren (nicht einfach den Ordner CompuMED kopieren!).",
        "2. praxisbackup installieren, das Sicherungsmedium anschließen.",
        "3. Datenbank und Dienste beenden (siehe unten); praxisbackup beendet sie auch selbst.",
        "4. praxisbackup restore-practice --dry-run   (Plan prüfen), dann ohne --dry-run ausführen.",
        "   Vorhandene Ordner werden in *_Original umbenannt, nichts wird überschrieben.",
        "   Passwort: das tägliche Passwort ODER der Wiederherstellungsschlüssel unten.",
        "5. Dateidaten bleiben erhalten; das Ergebnis wird automatisch gegen die Sicherung geprüft.",
        "6. Dienste starten, CGM M1 PRO öffnen, Stichproben prüfen, Servicepartner informieren.",
    ],
    "en": [
        "1. Set up a new server; install CGM M1 PRO fresh from the installation DVD and update it to",
        "   the program version of the backup (do not simply copy the CompuMED folder!).",
        "2. Install praxisbackup, attach the backup medium.",
        "3. Stop the database and services (see below); praxisbackup also stops them itself.",
        "4. praxisbackup restore-practice --dry-run   (check the plan), then run it without --dry-run.",
        "   Existing folders are renamed to *_Original, nothing is overwritten.",
        "   Passphrase: the daily passphrase OR the recovery key below.",
        "5. File dates are kept; the result is verified against the backup automatically.",
        "6. Start the services, open CGM M1 PRO, spot-check, inform the service partner.",
    ],
}
