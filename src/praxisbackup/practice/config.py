"""The configuration file: one TOML file, validated with pydantic.

Every error names the file, the line, the key and what is allowed, because the person reading
it is a service partner at a practice server, not the author of this code.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from praxisbackup.errors import PraxisError
from praxisbackup.practice.tomllines import key_lines, line_of

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


class PracticeSection(_Section):
    name: str = Field(min_length=1, description="Shown in protocols and e-mails.")
    language: Literal["de", "en"] = "de"
    #: Federal state: its public holidays are not working days (rotation, daily check).
    state: GermanState = "NW"


class RepositorySection(_Section):
    folder: str = Field(
        default="praxisbackup", description="Folder on each medium that holds the repository."
    )
    password_file: str | None = Field(
        default=None, description="File with the repository passphrase (first line)."
    )
    password_env: str = "PRAXISBACKUP_PASSWORD"


class SourceConfig(_Section):
    label: str = Field(min_length=1, description="Human name used in the protocol.")
    path: str = Field(min_length=1)
    profile: Literal["cgm-m1-pro"] | None = None
    mode: Literal["full", "minimal"] = "full"
    exclude: list[str] = Field(default_factory=list)


class ServiceConfig(_Section):
    name: str = Field(min_length=1)
    kind: Literal["windows", "systemd", "command"]
    stop: str | None = None
    start: str | None = None
    is_running: str | None = None
    timeout_seconds: float = Field(default=120, gt=0, le=3600)
    #: Files or folders whose files must not be held open once the service is stopped.
    check_closed: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _command_kind_needs_commands(self) -> ServiceConfig:
        if self.kind == "command" and not (self.stop and self.start and self.is_running):
            raise ValueError("kind 'command' needs 'stop', 'start' and 'is_running' commands")
        return self


class MediaSection(_Section):
    candidates: list[str] = Field(
        default_factory=list, description="Where to look for attached media (globs allowed)."
    )
    allow_same_disk: bool = False
    #: Required free space as a multiple of the last run's new data (plus 1 GiB).
    free_space_factor: float = Field(default=2.0, ge=1.0)


class VerifySection(_Section):
    level: Literal["new-data", "full"] = "new-data"
    #: Days in which every pack of a medium is read at least once (rotating share).
    full_cycle_days: int = Field(default=30, ge=1, le=366)


class RotationSection(_Section):
    """The media rotation plan (see media/rotation.py). Omit the section for a single medium.
    Working days follow ``practice.state``."""

    daily: list[str] = Field(min_length=1)
    biweekly: list[str] = Field(default_factory=list)
    month_end: list[str] = Field(default_factory=list)
    quarter_end: list[str] = Field(default_factory=list)
    month_end_retention_days: int = Field(default=365, ge=1)
    quarter_end_retention_days: int = Field(default=730, ge=1)
    closed: list[str] = Field(
        default_factory=list, description="Closing days: dates or a..b ranges."
    )
    wrong_medium: Literal["warn", "refuse"] = "warn"
    override_reason: str = ""
    #: Days a medium of a role may stay unseen before `today` and the protocol warn.
    max_days_unseen: dict[str, int] = Field(
        default_factory=lambda: {"daily": 14, "biweekly": 21, "month_end": 45, "quarter_end": 120}
    )


class SmtpSection(_Section):
    host: str = Field(min_length=1)
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    #: Where the password comes from, in this order: the OS keyring (service
    #: "praxisbackup-smtp", user = username), this environment variable, this file.
    password_env: str = "PRAXISBACKUP_SMTP_PASSWORD"
    password_file: str | None = None
    #: Accepted but discouraged: `config check` and every protocol warn about it.
    password: str | None = None
    sender: str = Field(min_length=3)
    verify_certificate: bool = True
    ca_file: str | None = None
    timeout_seconds: float = Field(default=30, gt=0)
    #: An alert not delivered after this many attempts, or this many hours, is given up
    #: (a red finding) instead of being retried for ever.
    max_attempts: int = Field(default=20, ge=1)
    give_up_after_hours: float = Field(default=72, gt=0)


class RecipientsSection(_Section):
    responsible: list[str] = Field(default_factory=list)
    deputy: list[str] = Field(default_factory=list)
    service_partner: list[str] = Field(default_factory=list)
    owner: list[str] = Field(default_factory=list)


class NotifySection(_Section):
    smtp: SmtpSection | None = None
    recipients: RecipientsSection = RecipientsSection()
    on_green: bool = False
    weekly_digest: bool = False
    heartbeat_url: str | None = Field(
        default=None, description="healthchecks-style base URL; /start and /fail are appended."
    )


class DailyCheckSection(_Section):
    responsible_name: str = "Verantwortliche Person"
    deputy_name: str = "Vertretung"
    #: No finished green/yellow run by this time on a working day: "no backup last night".
    missed_by: str = Field(default="07:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    #: Not confirmed by then: the deputy is told; by the second deadline, owner/service partner.
    ack_by: str = Field(default="10:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    escalate_by: str = Field(default="12:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")


class ScheduleSection(_Section):
    at: str = Field(default="22:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")


class Config(_Section):
    practice: PracticeSection
    repository: RepositorySection = RepositorySection()
    sources: list[SourceConfig] = Field(min_length=1)
    services: list[ServiceConfig] = Field(default_factory=list)
    media: MediaSection = MediaSection()
    verify: VerifySection = VerifySection()
    schedule: ScheduleSection = ScheduleSection()
    rotation: RotationSection | None = None
    notify: NotifySection = NotifySection()
    daily_check: DailyCheckSection = DailyCheckSection()
    state_dir: str | None = Field(default=None, description="Catalog, logs (default: platform).")

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
        base = os.environ.get("PROGRAMDATA", r"C:\ProgramData")
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration file at {path}; create one with 'praxisbackup setup' or "
            "'praxisbackup config example'"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    return parse_config(text, str(path))


EXAMPLE = """\
# praxisbackup configuration (TOML). Check it with: praxisbackup config check

[practice]
name = "Praxis Dr. Muster"        # shown in protocols and e-mails
language = "de"                   # de or en: language of protocols and e-mails
state = "NW"                      # federal state (holidays): BW BY BE BB HB HH HE MV NI NW ...

[repository]
folder = "praxisbackup"           # folder on every backup medium
password_file = 'C:\\ProgramData\\praxisbackup\\passphrase.txt'   # or set PRAXISBACKUP_PASSWORD

# The whole CompuMED folder (the vendor's recommendation). mode = "minimal" backs up only the
# essential folders and files of the vendor's list.
[[sources]]
label = "CGM M1 PRO"
profile = "cgm-m1-pro"
path = 'C:\\CompuMED'
mode = "full"

[[sources]]
label = "ifap praxisCENTER"
path = 'C:\\ifapDB'

[[sources]]
label = "Praxisarchiv und Korrespondenz"
path = 'D:\\Praxisdaten'
exclude = ["*.tmp", "~$*"]

# Stopped before the backup in this order, started again afterwards in reverse order.
[[services]]
name = "M1Hintergrunddienst"
kind = "windows"
timeout_seconds = 120

[[services]]
name = "OracleServiceM1"
kind = "windows"
check_closed = ['C:\\CompuMED\\M1\\Orant\\DB_M1\\Database']

[media]
candidates = ['E:\\', 'F:\\', 'G:\\', '\\\\nas\\sicherung']   # Linux: ["/media/*", "/mnt/*"]
allow_same_disk = false

[verify]
level = "new-data"                # or "full": read back everything every night
full_cycle_days = 30

[schedule]
at = "22:30"

# Which medium is due on which night. Working days follow the state's public holidays.
[rotation]
daily = ["Mo", "Di", "Mi", "Do", "Fr"]
biweekly = ["Freitag A", "Freitag B"]
month_end = ["Jan", "Feb", "Apr", "Mai", "Jul", "Aug", "Okt", "Nov"]   # reused after a year
quarter_end = ["Q1 A", "Q2 A", "Q3 A", "Q4 A", "Q1 B", "Q2 B", "Q3 B", "Q4 B"]   # two years
quarter_end_retention_days = 730  # at least two years
closed = ["2026-12-24..2026-12-31"]   # practice holidays
wrong_medium = "warn"             # or "refuse"
"""
