"""Configuration errors name the key, the line and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from praxisbackup.model.config import EXAMPLE, ConfigError, parse_config

BASE = """\
[practice]
name = "Praxis Dr. Muster"

[[sources]]
label = "M1"
path = "/srv/CompuMED"
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "praxis.toml")
    return str(info.value)


def test_example_config_is_valid() -> None:
    config = parse_config(EXAMPLE)
    assert config.practice.language == "de"
    assert config.sources[0].label == "CGM M1 PRO"
    assert config.services[1].check_closed


def test_wrong_value_names_line_key_and_allowed_values() -> None:
    msg = error_of(BASE + 'mode = "everything"\n')
    assert "praxis.toml, line 7, key 'sources[0].mode'" in msg
    assert "'full' or 'minimal'" in msg


def test_unknown_key_is_named_with_its_line() -> None:
    msg = error_of(BASE + "\n[media]\ncandidate = ['E:']\n")
    assert "line 9, key 'media.candidate'" in msg and "Extra inputs are not permitted" in msg


def test_second_source_error_points_to_the_second_table() -> None:
    msg = error_of(BASE + '\n[[sources]]\nlabel = "Archiv"\npath = 5\n')
    assert "line 10, key 'sources[1].path'" in msg and "valid string" in msg


def test_command_service_needs_its_commands_and_schedule_format() -> None:
    msg = error_of(BASE + '\n[[services]]\nname = "db"\nkind = "command"\nstop = "x"\n')
    assert "line 8, key 'services[0]'" in msg and "needs 'stop', 'start' and 'is_running'" in msg
    msg = error_of(BASE + '\n[schedule]\nat = "25:00"\n')
    assert "line 9, key 'schedule.at'" in msg and "HH:MM" in msg


def test_missing_sections_and_toml_syntax() -> None:
    assert "key 'sources': Field required" in error_of('[practice]\nname = "x"\n')
    assert "not valid TOML" in error_of("[practice\nname=1")


def test_cli_reports_config_errors_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "praxis.toml"
    cfg.write_text(BASE + "\n[verify]\nlevel = 'sometimes'\n")
    out = run_cli("-c", str(cfg), "config", "check")
    assert out.returncode == 2
    assert "line 9, key 'verify.level'" in out.stderr and "Traceback" not in out.stderr
    missing = run_cli("-c", str(tmp_path / "nope.toml"), "run")
    assert missing.returncode == 2 and "no configuration file" in missing.stderr
    example = run_cli("config", "example")
    assert example.returncode == 0 and parse_config(example.stdout).practice.name
