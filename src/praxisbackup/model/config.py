"""The configuration file: one TOML file, validated with pydantic.

Every error names the file, the line, the key and what is allowed, because the person reading
it is a service partner at a practice server, not the author of this code.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from praxisbackup import platform
from praxisbackup.errors import PraxisError
from praxisbackup.model.tomllines import key_lines, line_of

ENV_CONFIG = "PRAXISBACKUP_CONFIG"


class ConfigError(PraxisError):
    """The configuration file is missing, unreadable or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


GermanState = Literal[
    "BB",
    "BE",
    "BW",
    "BY",
    "HB",
    "HE",
    "HH",
    "MV",
    "NI",
    "NW",
    "RP",
    "SH",
    "SL",
    "SN",
    "ST",
    "TH",
    "Augsburg",
]
HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class PracticeSection(_Section):
    """The practice."""

    name: str = Field(
        min_length=1,
        description="Shown in protocols, e-mails and on the status page.",
        examples=["Praxis Dr. Muster"],
    )
    language: Literal["de", "en"] = Field(
        default="de", description="Language of protocols, e-mails and staff messages."
    )
    state: GermanState = Field(
        default="NW",
        description="Federal state: its public holidays are not working days (rotation, "
        "daily check). Augsburg for the city's extra holiday.",
    )


class RepositorySection(_Section):
    """The encrypted repository on every backup medium, and where its passphrase comes from."""

    folder: str = Field(
        default="praxisbackup", description="Folder on each medium that holds the repository."
    )
    password_file: str | None = Field(
        default=None,
        description="File with the repository passphrase (first line). Without it the "
        "passphrase comes from the environment variable below or the OS credential store "
        "(where 'praxisbackup setup' puts it).",
        examples=["C:\\ProgramData\\praxisbackup\\passphrase.txt"],
    )
    password_env: str = Field(
        default="PRAXISBACKUP_PASSWORD",
        description="Environment variable that may hold the passphrase.",
    )


class SourceConfig(_Section):
    """A folder to back up."""

    label: str = Field(min_length=1, description="Name of the source in the protocol.")
    path: str = Field(min_length=1, description="The folder (a drive root is allowed).")
    profile: Literal["cgm-m1-pro"] | None = Field(
        default=None,
        description="'cgm-m1-pro': this is the CompuMED folder; the vendor's essential items "
        "must be present and backed up, else the night is red.",
    )
    mode: Literal["full", "minimal"] = Field(
        default="full",
        description="'minimal' backs up only the vendor's essential folders and files "
        "(profile sources only).",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Name patterns to leave out (e.g. '*.tmp')."
    )


class ServiceConfig(_Section):
    """A service stopped before the backup (in this order) and started again afterwards
    (in reverse order), always."""

    name: str = Field(min_length=1, description="Service name (Windows/systemd) or a label.")
    kind: Literal["windows", "systemd", "command"] = Field(
        description="'windows': a Windows service; 'systemd': a systemd unit; 'command': "
        "your own stop/start/is_running commands."
    )
    stop: str | None = Field(
        default=None,
        description="kind 'command': stops the service.",
        examples=["C:\\Oracle\\db-stop.cmd"],
    )
    start: str | None = Field(
        default=None,
        description="kind 'command': starts the service.",
        examples=["C:\\Oracle\\db-start.cmd"],
    )
    is_running: str | None = Field(
        default=None,
        description="kind 'command': exits 0 while the service runs.",
        examples=["C:\\Oracle\\db-running.cmd"],
    )
    timeout_seconds: float = Field(
        default=120, gt=0, le=3600, description="How long a stop or start may take."
    )
    check_closed: list[str] = Field(
        default_factory=list,
        description="Folders whose files must not be held open once the service is stopped "
        "(the database files): the night is red rather than copying open files.",
    )

    @model_validator(mode="after")
    def _command_kind_needs_commands(self) -> ServiceConfig:
        if self.kind == "command" and not (self.stop and self.start and self.is_running):
            raise ValueError("kind 'command' needs 'stop', 'start' and 'is_running' commands")
        return self


class HookConfig(_Section):
    """A command of the practice's own around the night: an export from another program, a
    NAS wake-up, a message to a tray tool. Its output goes into the protocol."""

    name: str = Field(min_length=1, description="Name of the hook in the protocol.")
    when: Literal["before", "after", "on_error"] = Field(
        description="'before' the stage; 'after' it when it did not fail; 'on_error' when it "
        "failed. A failing 'before' hook makes the night red (services are started again)."
    )
    stage: Literal["night", "backup"] = Field(
        default="night",
        description="'night': around the whole run (before anything is stopped / after the "
        "verification); 'backup': inside the downtime, while the services are stopped.",
    )
    command: str = Field(min_length=1, description="Run by the system shell.")
    timeout_seconds: float = Field(default=300, gt=0, le=3600)


class MediaSection(_Section):
    """Where backup media are attached."""

    candidates: list[str] = Field(
        default_factory=list,
        description="Where to look for attached media (drive roots, NAS folders, globs). "
        "A medium is recognised by its label file, whatever drive letter it gets.",
        examples=[["E:\\", "F:\\", "G:\\", "\\\\nas\\sicherung"]],
    )
    allow_same_disk: bool = Field(
        default=False,
        description="Only for demonstrations: allow a medium on the same disk as the data "
        "(no protection against disk failure; every protocol says so).",
    )
    free_space_factor: float = Field(
        default=2.0,
        ge=1.0,
        description="Free space needed on the medium, as a multiple of the last run's new "
        "data (plus a 64 MiB margin).",
    )


class VerifySection(_Section):
    """Reading the backup back from the medium after every run."""

    level: Literal["new-data", "full"] = Field(
        default="new-data",
        description="'new-data': what this run wrote plus a rotating share; 'full': read "
        "everything every night.",
    )
    full_cycle_days: int = Field(
        default=30,
        ge=1,
        le=366,
        description="Days within which every part of a medium is read at least once.",
    )


class RotationSection(_Section):
    """Which medium is due on which night (seed S8). Working days follow practice.state.
    Omit the section for a single medium."""

    daily: list[str] = Field(
        min_length=1,
        description="Daily media, at least five (Mo-Fr).",
        examples=[["Mo", "Di", "Mi", "Do", "Fr"]],
    )
    biweekly: list[str] = Field(
        default_factory=list,
        description="Every-second-Friday media (alternating).",
        examples=[["Freitag A", "Freitag B"]],
    )
    month_end: list[str] = Field(
        default_factory=list,
        description="Month-end archive media (the last working day of the month; not at "
        "quarter end), kept at least two years like the quarter-end media (the vendor's "
        "guidance). Seventeen media: sixteen would be due again a day or two before their "
        "archive's two years are over. Optional.",
        examples=[[f"Monat {n}" for n in range(1, 18)]],
    )
    quarter_end: list[str] = Field(
        default_factory=list,
        description="Quarter-end archive media, kept at least two years. Nine media: the last "
        "working day of a quarter moves between years, so eight would be due again a day or "
        "two before their archive's two years are over.",
        examples=[[f"Quartal {n}" for n in range(1, 10)]],
    )
    month_end_retention_days: int = Field(
        default=730, ge=1, description="How long a month-end snapshot is held (>= 730)."
    )
    quarter_end_retention_days: int = Field(
        default=730, ge=1, description="How long a quarter-end snapshot is held (>= 730)."
    )
    closed: list[str] = Field(
        default_factory=list,
        description="Closing days of the practice: dates or 'a..b' ranges.",
        examples=[["2026-12-24..2026-12-31"]],
    )
    wrong_medium: Literal["warn", "refuse"] = Field(
        default="warn",
        description="Another registered medium attached: 'warn' writes to it (yellow), "
        "'refuse' does not (red).",
    )
    override_reason: str = Field(
        default="",
        description="Accept a plan that breaks a rotation rule, in writing; every protocol "
        "repeats the reason.",
    )
    max_days_unseen: dict[str, int] = Field(
        default_factory=lambda: {"daily": 14, "biweekly": 21, "month_end": 45, "quarter_end": 120},
        description="Days a medium of a role may stay unused before a warning.",
    )


class SmtpSection(_Section):
    """The practice's mail provider (seed S5). The password comes from the OS credential store
    (service 'praxisbackup-smtp', user = username), the environment variable, or the file."""

    host: str = Field(min_length=1, examples=["smtp.example.de"])
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="'starttls' (port 587), 'tls' (port 465) or 'none'."
    )
    username: str = Field(default="", examples=["praxis@example.de"])
    password_env: str = Field(
        default="PRAXISBACKUP_SMTP_PASSWORD",
        description="Environment variable that may hold the password.",
    )
    password_file: str | None = Field(
        default=None,
        description="Private file holding the password (first line).",
        examples=["C:\\ProgramData\\praxisbackup\\smtp-password.txt"],
    )
    password: str | None = Field(
        default=None,
        description="Discouraged: the password in this file; 'config check' warns.",
    )
    sender: str = Field(min_length=3, examples=["praxis@example.de"])
    verify_certificate: bool = True
    ca_file: str | None = Field(
        default=None,
        description="Own CA certificate (PEM), for a server with a private certificate.",
        examples=["C:\\ProgramData\\praxisbackup\\mail-ca.pem"],
    )
    timeout_seconds: float = Field(default=30, gt=0)
    max_attempts: int = Field(
        default=20,
        ge=1,
        description="An alert not delivered after this many attempts is given up: it becomes "
        "a red finding instead of being retried for ever.",
    )
    give_up_after_hours: float = Field(
        default=72, gt=0, description="... or when it is this many hours old."
    )


class RecipientsSection(_Section):
    """Who is told what (addresses)."""

    responsible: list[str] = Field(
        default_factory=list,
        description="The person who checks the backup daily.",
        examples=[["empfang@example.de"]],
    )
    deputy: list[str] = Field(
        default_factory=list,
        description="Takes over when the responsible person is absent or does not confirm.",
        examples=[["vertretung@example.de"]],
    )
    service_partner: list[str] = Field(
        default_factory=list,
        description="Gets every red alarm.",
        examples=[["support@it-partner.example"]],
    )
    owner: list[str] = Field(
        default_factory=list,
        description="The practice owner: told when nobody confirms by midday.",
        examples=[["dr.muster@example.de"]],
    )


class NotifySection(_Section):
    """E-mail alerts and monitoring."""

    smtp: SmtpSection | None = None
    recipients: RecipientsSection = RecipientsSection()
    on_green: bool = Field(default=False, description="Also send a mail after green nights.")
    heartbeat_url: str | None = Field(
        default=None,
        description="healthchecks-style base URL; /start and /fail are appended.",
        examples=["https://hc-ping.com/your-uuid"],
    )


class Person(_Section):
    """A person the practice's papers name (emergency sheet, protocols)."""

    name: str = Field(default="", description="Name as staff know the person.")
    phone: str = Field(default="", description="Telephone number.")


class ContactsSection(_Section):
    """Who is responsible, with names and telephone numbers (printed on the emergency sheet,
    used in messages; the e-mail addresses are under [notify.recipients])."""

    def responsible_name(self, lang: str = "de") -> str:
        return self.responsible.name or (
            "Verantwortliche Person" if lang == "de" else "Responsible person"
        )

    def deputy_name(self, lang: str = "de") -> str:
        return self.deputy.name or ("Vertretung" if lang == "de" else "Deputy")

    responsible: Person = Field(
        default=Person(),
        description="Checks the backup every morning and changes the medium.",
        examples=[{"name": "Anna Schmidt (Empfang)", "phone": "0211 123456-10"}],
    )
    deputy: Person = Field(
        default=Person(),
        description="Takes over when the responsible person is absent.",
        examples=[{"name": "Bernd Meier", "phone": "0211 123456-11"}],
    )
    owner: Person = Field(
        default=Person(),
        description="The practice owner (legally responsible).",
        examples=[{"name": "Dr. med. Eva Muster", "phone": "0171 2345678"}],
    )
    service_partner: Person = Field(
        default=Person(),
        description="The IT service partner (installation, restores).",
        examples=[{"name": "IT-Partner GmbH, Herr Kurz", "phone": "0211 987654"}],
    )


class DailyCheckSection(_Section):
    """The morning check (seed S6): one person confirms; a deputy takes over."""

    missed_by: str = Field(
        default="07:00",
        pattern=HHMM,
        description="No finished green/yellow run by this time on a working day: "
        "'no backup last night'.",
    )
    ack_by: str = Field(
        default="10:00", pattern=HHMM, description="Not confirmed by then: the deputy is told."
    )
    escalate_by: str = Field(
        default="12:00",
        pattern=HHMM,
        description="Not confirmed by then: the owner and the service partner are told.",
    )


class ScheduleSection(_Section):
    """When the nightly run starts."""

    at: str = Field(default="22:30", pattern=HHMM, description="Time of the nightly run.")


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8765"`` / ``"[::1]:8765"`` / ``"0.0.0.0:8765"`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected ADDRESS:PORT (e.g. 127.0.0.1:8765), got {value!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def is_local_address(host: str) -> bool:
    """Only this computer can reach the address (loopback): the page may go without login."""
    if host.casefold() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebSection(_Section):
    """The status page for the staff (Heute, Kontrolle bestätigen, Protokolle, Medien,
    Abwesenheit), served by 'praxisbackup serve'. Staff open it in a browser on the server:
    http://127.0.0.1:8765/"""

    enabled: bool = Field(
        default=True, description="Serve the status page while 'praxisbackup serve' runs."
    )
    listen: str = Field(
        default="127.0.0.1:8765",
        description="Address and port of the page. 127.0.0.1 means only this computer. "
        "Another address (e.g. '0.0.0.0:8765' for the practice network) needs login = true.",
        examples=["127.0.0.1:8765"],
    )
    login: bool = Field(
        default=False,
        description="Ask for a name and password (accounts: 'praxisbackup web user add "
        "NAME'). Required when the page is reachable from the network.",
    )
    session_minutes: int = Field(
        default=480,
        ge=5,
        le=7 * 24 * 60,
        description="A login ends after this many minutes without use.",
    )

    @model_validator(mode="after")
    def _network_needs_login(self) -> WebSection:
        host, _port = split_listen(self.listen)
        if self.enabled and not self.login and not is_local_address(host):
            raise ValueError(
                f"listen = '{self.listen}' makes the page reachable from the network: "
                "set login = true and add accounts with 'praxisbackup web user add NAME'"
            )
        return self


class Config(_Section):
    """praxisbackup configuration (TOML). Check it with: praxisbackup config check"""

    state_dir: str | None = Field(
        default=None,
        description="Catalog, logs and run lock (default: C:\\ProgramData\\praxisbackup, "
        "/var/lib/praxisbackup).",
        examples=["C:\\ProgramData\\praxisbackup"],
    )
    practice: PracticeSection
    repository: RepositorySection = RepositorySection()
    sources: list[SourceConfig] = Field(
        min_length=1,
        description="The whole CompuMED folder (the vendor's recommendation), the ifap "
        "database, and the practice's other data.",
        examples=[
            [
                {"label": "CGM M1 PRO", "path": "C:\\CompuMED", "profile": "cgm-m1-pro"},
                {"label": "ifap praxisCENTER", "path": "C:\\ifapDB"},
                {
                    "label": "Praxisarchiv und Korrespondenz",
                    "path": "D:\\Praxisdaten",
                    "exclude": ["*.tmp", "~$*"],
                },
            ]
        ],
    )
    services: list[ServiceConfig] = Field(
        default_factory=list,
        description="Stopped before the backup in this order, started again in reverse order.",
        examples=[
            [
                {"name": "M1Hintergrunddienst", "kind": "windows"},
                {
                    "name": "OracleServiceM1",
                    "kind": "windows",
                    "check_closed": ["C:\\CompuMED\\M1\\Orant\\DB_M1\\Database"],
                },
            ]
        ],
    )
    hooks: list[HookConfig] = Field(
        default_factory=list,
        description="Commands of your own around the night.",
        json_schema_extra={"x-example": "commented"},
        examples=[
            [
                {
                    "name": "NAS aufwecken",
                    "when": "before",
                    "stage": "night",
                    "command": "C:\\Tools\\wake-nas.cmd",
                }
            ]
        ],
    )
    media: MediaSection = MediaSection()
    verify: VerifySection = VerifySection()
    schedule: ScheduleSection = ScheduleSection()
    rotation: RotationSection | None = Field(
        default=None, json_schema_extra={"x-example": "active"}
    )
    notify: NotifySection = NotifySection()
    daily_check: DailyCheckSection = DailyCheckSection()
    contacts: ContactsSection = ContactsSection()
    web: WebSection = WebSection()

    #: Where the file was read from (not part of the file).
    path: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _unique_labels(self) -> Config:
        labels = [s.label for s in self.sources]
        if len(set(labels)) != len(labels):
            raise ValueError("every source needs its own label")
        return self


def default_config_path() -> Path:
    """``%ProgramData%\\praxisbackup\\praxisbackup.toml`` on Windows,
    ``/etc/praxisbackup/praxisbackup.toml`` for root elsewhere, else the user config dir."""
    if sys.platform == "win32":
        base = platform.program_data()
        return Path(base) / "praxisbackup" / "praxisbackup.toml"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/etc/praxisbackup/praxisbackup.toml")
    import platformdirs  # noqa: PLC0415 - only needed for a non-root user

    return Path(platformdirs.user_config_dir("praxisbackup")) / "praxisbackup.toml"


def resolve_config_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_CONFIG)
    return Path(env) if env else default_config_path()


def _describe(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def parse_config(text: str, path: str = "<config>") -> Config:
    """Parse and validate config text; errors name the line, the key and what is allowed."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    lines = key_lines(text)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p != "__root__")
            line = line_of(lines, loc)
            where = f"line {line}" if line else "top level"
            allowed = ""
            ctx = err.get("ctx") or {}
            if "expected" in ctx:
                allowed = f" (allowed: {ctx['expected']})"
            elif "pattern" in ctx:
                allowed = " (expected the form HH:MM)" if loc[-1:] == ("at",) else ""
            messages.append(f"{path}, {where}, key '{_describe(loc)}': {err['msg']}{allowed}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(messages)) from None
    return config.model_copy(update={"path": path})


def load_config(explicit: str | None = None) -> Config:
    path = resolve_config_path(explicit)
    try:
        # utf-8-sig: Windows editors may save a byte-order mark first.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration file at {path}; create one with 'praxisbackup setup' or "
            "'praxisbackup config example'",
            code="error.no_config",
            path=str(path),
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    return parse_config(text, str(path))
