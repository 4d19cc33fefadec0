"""What lower layers record in English becomes the reader's language when a document is made.

Why at rendering and not where the words are written: protocols are stored for years (catalog,
on the medium) and render in the language of whoever prints them, so a stored English phrase
("found running", "wrong passphrase: …", a size "1.5 MiB", an ISO time) must still print as
German in 2030. The engine and services keep short, stable English phrases (their logs and
exceptions are for the service partner); the known ones map to message codes here, with their
variable parts kept. Unknown text (an operating system's own message) passes unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from praxisbackup.report.i18n import catalogue, day, language, number, size, text, when

#: Service timeline actions (services/sequence.py) -> message codes.
SERVICE_ACTIONS = {
    "found running": "svc.found_running",
    "found stopped": "svc.found_stopped",
    "stopped": "svc.stopped",
    "started": "svc.started",
    "stop failed": "svc.stop_failed",
    "start failed": "svc.start_failed",
    "query failed": "svc.query_failed",
}

#: Known English phrases -> message code; named groups become the message's parameters.
#: Parameters named ``error``/``reason`` are themselves translated (nested phrases).
_PHRASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.DOTALL), code)
    for p, code in [
        (r"left stopped afterwards", "detail.left_stopped"),
        (
            r"e-mail not delivered yet \(kept in the outbox, retried later\): (?P<error>.*)",
            "detail.mail_not_delivered",
        ),
        (
            r"wrong passphrase: it opens none of the (?P<count>\d+) key slot\(s\) of the "
            r"repository at (?P<location>.*?) \((?P<damaged>\d+) key slot\(s\) are damaged\)",
            "detail.wrong_passphrase_damaged",
        ),
        (
            r"wrong passphrase: it opens none of the (?P<count>\d+) key slot\(s\) of the "
            r"repository at (?P<location>.*)",
            "detail.wrong_passphrase",
        ),
        (r"wrong passphrase.*", "detail.wrong_passphrase_short"),
        (r"register copy not written: (?P<error>.*)", "detail.register_not_written"),
        (r"protocol not written to the medium: (?P<error>.*)", "detail.protocol_not_written"),
        (r"the repository on the medium does not match its label", "detail.label_mismatch"),
        (r"heartbeat ping failed: (?P<error>.*)", "detail.heartbeat_failed"),
        (r"exit (?P<code>-?\d+)", "detail.exit"),
        (r"(?P<service>[^:]+) did not start in time", "detail.start_timeout"),
        (r"(?P<service>[^:]+) did not stop in time", "detail.stop_timeout"),
        (
            r"(?P<service>[^:]+): start command failed \(exit (?P<code>-?\d+)\): (?P<output>.*)",
            "detail.start_command_failed",
        ),
        (
            r"(?P<service>[^:]+): stop command failed \(exit (?P<code>-?\d+)\): (?P<output>.*)",
            "detail.stop_command_failed",
        ),
        (
            r"(?P<service>[^:]+): '(?P<command>.*)' did not finish within (?P<seconds>\d+) s",
            "detail.command_timeout",
        ),
        (
            r"service (?P<service>\S+) stayed in state (?P<state>\S+) \(wanted (?P<wanted>\S+)\)",
            "detail.service_state",
        ),
        (r"vanished during the backup", "detail.vanished"),
        (r"changed while being read \(kept the second reading\)", "detail.changed"),  # (older)
        (
            r"changed while being read, also on a second reading \(the stored copy may mix old "
            r"and new content\)",
            "detail.changed_twice",
        ),
        (r"is no longer a regular file", "detail.not_regular"),
        (r"cannot open: (?P<error>.*)", "detail.cannot_open"),
        (r"read error: (?P<error>.*)", "detail.read_error"),
        (r"cannot read metadata: (?P<error>.*)", "detail.cannot_stat"),
        (r"cannot list folder: (?P<error>.*)", "detail.cannot_list"),
        (r"cannot read link: (?P<error>.*)", "detail.cannot_read_link"),
        (r"cannot create file: (?P<error>.*)", "detail.cannot_create_file"),
        (r"cannot create folder: (?P<error>.*)", "detail.cannot_create_folder"),
        (r"cannot finish file: (?P<error>.*)", "detail.cannot_finish_file"),
        (r"folder metadata not set: (?P<error>.*)", "detail.folder_metadata"),
        (r"hard link not possible, copied: (?P<error>.*)", "detail.hardlink_copied"),
        (r"not restored, data damaged: (?P<error>.*)", "detail.data_damaged"),
        (r"(?P<error>.*) \[errno (?P<errno>\d+)\]", "detail.errno"),
        (r"Permission denied", "detail.permission_denied"),
        (r"No such file or directory", "detail.not_found"),
        (r"Input/output error", "detail.io_error"),
        (r"No space left on device", "detail.no_space"),
        (r"Device or resource busy", "detail.busy"),
        (r"Read-only file system", "detail.read_only"),
    ]
]

#: Parameters whose values are English phrases of a lower layer.
PROSE = ("error", "problem", "reason")
#: Parameters that hold a size as ``units.human_size`` wrote it ("1.5 MiB").
_SIZE = re.compile(r"(?P<n>\d+(?:\.\d+)?) (?P<unit>B|KiB|MiB|GiB|TiB)")
_UNITS = {"B": 0, "KiB": 1, "MiB": 2, "GiB": 3, "TiB": 4}
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:[+-]\d{2}:\d{2}|Z)?")


def phrase(value: str, lang: str) -> str:
    """A lower layer's English phrase in ``lang`` (unchanged if English or unknown)."""
    if language(lang) == "en" or not value:
        return value
    known = catalogue(language(lang))
    for pattern, code in _PHRASES:
        m = pattern.fullmatch(value.strip())
        if m is None or code not in known:
            continue
        params = {k: (phrase(v, lang) if k in PROSE else v) for k, v in m.groupdict().items() if v}
        return text(code, lang, **params)
    return value


#: Where a file path begins in a lower layer's message: a drive ("C:\\"), a share ("\\\\nas")
#: or a POSIX root, at the start or after a space, bracket, quote, "=", "," or ";".
_PATH_START = re.compile(r"""(?:^|(?<=[\s(\"'„=,;]))(?:[A-Za-z]:[\\/]|\\\\|/(?!/))""")
_SEPARATOR = re.compile(r"[\\/]+")
#: Parameters whose text may name patients' files (a damaged file, an unreadable file).
PATH_PROSE = (*PROSE, "paths")
ELLIPSIS = "…"


def redact_paths(value: str) -> str:
    """``value`` without file names: the first path keeps its root and first folder
    ("C:\\CompuMED\\…"), everything after a deeper path is cut. For pages anyone on the
    server can open: a file's name can be a patient's name ("Befund Müller.pdf")."""
    m = _PATH_START.search(value)
    if m is None:
        return value
    rest = value[m.start() :]
    if rest.startswith("\\\\"):  # \\server\share: the share is the first folder
        head, parts = "\\\\", _SEPARATOR.split(rest[2:], maxsplit=2)
    else:
        root = m.group(0)
        head, parts = root, _SEPARATOR.split(rest[len(root) :], maxsplit=1)
    if len(parts) <= 1 or (len(parts) == 2 and head == "\\\\"):
        return value
    separator = "/" if "/" in m.group(0) and "\\" not in m.group(0) else "\\"
    kept = separator.join(parts[:2] if head == "\\\\" else parts[:1])
    return f"{value[: m.start()]}{head}{kept}{separator}{ELLIPSIS}"


def path_phrase(value: str, lang: str) -> str:
    """ "<path>: <phrase>" (a drill's damaged file) with the phrase translated; the path may
    itself contain ": " (``C:\\...``), so every split is tried from the left."""
    start = 0
    while (at := value.find(": ", start)) >= 0:
        rest = value[at + 2 :]
        translated = phrase(rest, lang)
        if translated != rest:
            return f"{value[:at]}: {translated}"
        start = at + 2
    return phrase(value, lang)


def service_action(action: str, lang: str) -> str:
    code = SERVICE_ACTIONS.get(action)
    return text(code, lang) if code else phrase(action, lang)


def size_phrase(value: str, lang: str) -> str:
    """ "1.5 MiB" (as stored) -> "1,5 MiB" in German."""
    m = _SIZE.fullmatch(value.strip())
    if m is None:
        return value
    return size(float(m["n"]) * 1024 ** _UNITS[m["unit"]], lang)


def moment(value: str, lang: str) -> str:
    """An ISO date or time as stored -> "Mo, 30.11.2026 22:30" / "Mo, 30.11.2026"."""
    stripped = value.strip()
    if _ISO_TIME.fullmatch(stripped):
        return when(stripped.replace(" ", "T").replace("Z", "+00:00"), lang)
    if _ISO_DAY.fullmatch(stripped):
        return day(stripped, lang)
    return value


def params(values: Mapping[str, Any], lang: str, with_files: bool = True) -> dict[str, Any]:
    """A finding's parameters ready for its message: phrases translated, sizes, dates and
    locations in the reader's form, counts with thousands separators; without ``with_files``
    file names are cut from the texts that may hold them (:func:`redact_paths`)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not with_files and key in PATH_PROSE and isinstance(value, str):
            value = redact_paths(value)  # noqa: PLW2901 - the redacted text replaces it
        if isinstance(value, bool):
            out[key] = value
        elif isinstance(value, int | float):
            out[key] = number(value, lang)
        elif not isinstance(value, str):
            out[key] = value
        elif key in PROSE:
            out[key] = phrase(value, lang)
        elif key == "location" and f"location.{value}" in catalogue(language(lang)):
            out[key] = text(f"location.{value}", lang)
        elif key == "when" and f"hook.when.{value}" in catalogue(language(lang)):
            out[key] = text(f"hook.when.{value}", lang)
        elif _SIZE.fullmatch(value.strip()):
            out[key] = size_phrase(value, lang)
        elif _ISO_TIME.fullmatch(value.strip()) or _ISO_DAY.fullmatch(value.strip()):
            out[key] = moment(value, lang)
        else:
            out[key] = value
    return out
